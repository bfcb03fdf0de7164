"""Our SQLite files (the ledger and each folder's journal): made whole or not at all, and
opened only when they are ours, marked by SQLite's application id."""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

from .exceptions import OutputFolderError
from .files import create_private

LEDGER_APPLICATION_ID = 0x56424C47  # "VBLG": a ledger written by vambe-import
JOURNAL_APPLICATION_ID = 0x56424A4E  # "VBJN"


def open_database(path: Path, what: str) -> sqlite3.Connection:
    """Open one of our SQLite files, refusing one that is missing (FileNotFoundError),
    empty, unreadable or not ours."""
    if not path.exists():
        raise FileNotFoundError(path)
    if path.is_file() and path.stat().st_size == 0:
        raise OutputFolderError(f"{path}: the {what} is empty (0 bytes): it may have been"
                                " emptied by a sync tool or a bad copy; nothing was sent")
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=30)
        found = connection.execute("PRAGMA application_id").fetchone()[0]
        tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.Error as error:
        raise OutputFolderError(f"{path}: the {what} cannot be read ({error}); nothing was"
                                " sent") from None
    expected = LEDGER_APPLICATION_ID if what == "ledger" else JOURNAL_APPLICATION_ID
    if found != expected or not tables:
        connection.close()
        raise OutputFolderError(f"{path}: not a vambe-import {what}; nothing was sent")
    return connection


def create_database(path: Path, application_id: int, schema: str,
                    meta: dict[str, str] | None = None) -> None:
    """Make one of our SQLite files whole under another name, then link it into place: a
    process stopped while making it never leaves a half-made one, and of two runs making it
    at once the second simply uses the first's."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.new")
    try:
        create_private(staging)
        connection = sqlite3.connect(staging, isolation_level=None)
        try:
            connection.execute(f"PRAGMA application_id={application_id}")
            connection.executescript(schema)
            connection.executemany("INSERT INTO meta VALUES (?, ?)", (meta or {}).items())
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            connection.close()
        try:
            os.link(staging, path)
        except FileExistsError:
            pass  # another run made it first
    finally:
        staging.unlink(missing_ok=True)
