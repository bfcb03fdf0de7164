"""Files that hold customers' data, created readable by their owner only, whatever the umask.

Reports, journals, the ledger and its run locks hold phone numbers and messages: each is
created 0600 (folders 0700). SQLite gives its ``-wal`` and ``-shm`` files the mode of the
database file, so creating the database file first is enough for those too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def private_folder(path: Path) -> None:
    """Make ``path`` a 0700 folder if it does not exist (missing parents are made as
    ``mkdir -p`` makes them); an existing one is kept as it is (it may be the user's own)."""
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        return
    os.chmod(path, FOLDER_MODE)  # mkdir's mode is cut by the umask, never widened


def private_fd(path: Path, flags: int = os.O_RDWR | os.O_CREAT) -> int:
    """An open descriptor on ``path``, created 0600 (an existing file is made 0600 too)."""
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (before SQLite opens it)."""
    os.close(private_fd(path, os.O_RDWR | os.O_CREAT))


def open_private(path: Path, mode: str = "w", **options: Any) -> IO:
    """``open(path, mode)`` for writing, the file created (or truncated) with mode 0600."""
    fd = private_fd(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    return os.fdopen(fd, mode, **options)
