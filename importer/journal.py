"""An output folder: its lock (one run at a time) and its journal (the run's own record).

``journal.sqlite`` holds which account the run in this folder sends to, which ledger
recorded its requests, and this run's verdict for every row (with the cells of rows that go
to errors.csv), read back to write the reports without reading the input again. What was
sent is in the ledger (:mod:`importer.ledger`), not here: an emptied, deleted or replaced
journal can never lead to a second send. One that is empty, unreadable or not ours stops the
run before any request.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .exceptions import OutputFolderError
from .codes import ERROR_STATUSES
from .ledger import JOURNAL_APPLICATION_ID, open_database
from .read import SourceRow, Table
from .report import RowResult

JOURNAL_NAME = "journal.sqlite"
LOCK_NAME = ".vambe-import.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    row INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    phone TEXT NOT NULL,
    ai_contact_id TEXT NOT NULL,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    error TEXT NOT NULL,
    source TEXT,
    key TEXT
);
"""


class FolderLock:
    """One run (or validation) per output folder at a time: an OS lock, released when the
    process ends however it ends, so ``kill -9`` never leaves a folder locked."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputFolderError(f"{folder}: cannot use this output folder"
                                    f" ({error.strerror or error})") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(self._fd)
            raise OutputFolderError(f"another run (PID {holder}) is using {folder}; wait for"
                                    " it to end, or choose another --out folder") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        os.close(self._fd)  # closing the descriptor drops the lock


class JournalRecord(NamedTuple):
    """What a folder's journal says about the run in it."""

    identity: dict[str, str]
    ledger_id: str | None
    ledger_path: str | None
    started: bool


def read_journal(out_dir: Path) -> JournalRecord | None:
    """The run recorded in ``out_dir``, None when there is no journal; a journal that is
    empty, unreadable or not ours stops with :class:`OutputFolderError`, naming it."""
    path = out_dir / JOURNAL_NAME
    if not path.exists():
        return None
    connection = open_database(path, "journal", create=False)
    try:
        meta = dict(connection.execute("SELECT name, value FROM meta"))
    except sqlite3.Error as error:
        raise OutputFolderError(f"{path}: the journal cannot be read ({error}); nothing was"
                                " sent") from None
    finally:
        connection.close()
    return JournalRecord(json.loads(meta.get("identity", "{}")), meta.get("ledger_id"),
                         meta.get("ledger_path"), meta.get("started") == "1")


class Journal:
    """The folder's record of one run; open with :meth:`open`."""

    _BATCH = 2000

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._pending: list[tuple] = []
        self.failed: OutputFolderError | None = None  # a write failed: the record is partial

    @classmethod
    def open(cls, out_dir: Path, *, identity: dict[str, str], ledger_id: str,
             ledger_path: Path, table: Table) -> Journal:
        """Start this run's record in ``out_dir`` (the folder lock is already held)."""
        journal = cls.reopen(out_dir, create=True)
        journal._execute([
            ("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
                ("identity", json.dumps(identity)), ("ledger_id", ledger_id),
                ("ledger_path", str(ledger_path)),
                ("table", json.dumps([str(table.path.resolve()), table.kind,
                                      list(table.headers), table.encoding, table.delimiter,
                                      table.sheet, table.origin_column]))]),
            ("DELETE FROM results", []),
        ])
        return journal

    @classmethod
    def reopen(cls, out_dir: Path, *, create: bool = False) -> Journal:
        """The folder's journal as it is (``reconcile`` reads and amends its results)."""
        path = out_dir / JOURNAL_NAME
        try:
            connection = open_database(path, "journal", create=create)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA application_id={JOURNAL_APPLICATION_ID}")
        except FileNotFoundError:
            raise OutputFolderError(f"{out_dir} holds no run (no journal)") from None
        except (OSError, sqlite3.Error) as error:
            raise OutputFolderError(f"{out_dir}: cannot write the journal ({error})") from None
        return cls(connection, path)

    def table(self) -> Table:
        """The input the run read, as the reports need it (headers, encoding, delimiter)."""
        found = self._db.execute("SELECT value FROM meta WHERE name='table'").fetchone()
        if found is None:
            raise OutputFolderError(f"{self.path}: the journal does not say which file the run"
                                    " read; run it again with --resume")
        path, kind, headers, encoding, delimiter, sheet, origin = json.loads(found[0])
        return Table(Path(path), kind, tuple(headers), encoding, delimiter, sheet, origin)

    def unknown_rows(self) -> dict[str, int]:
        """Key -> row of this run's rows left unknown."""
        return dict(self._db.execute(
            "SELECT key, row FROM results WHERE status='unknown' AND key IS NOT NULL"))

    def amend(self, row: int, status: str, ai_contact_id: str, error_code: str,
              error: str) -> None:
        self._execute([("UPDATE results SET status=?, ai_contact_id=?, error_code=?, error=?"
                        " WHERE row=?", [(status, ai_contact_id, error_code, error, row)])])

    def mark_started(self) -> None:
        """From now on the folder holds a run: running into it again needs --resume."""
        self._execute([("INSERT OR REPLACE INTO meta VALUES ('started', '1')", [()])])

    def _execute(self, statements: list[tuple[str, list]]) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN")
                for sql, rows in statements:
                    self._db.executemany(sql, rows)
        except sqlite3.Error as error:
            self.failed = self.failed or OutputFolderError(
                f"{self.path}: cannot write the journal ({error})")
            raise self.failed from None

    def add_result(self, result: RowResult, source: SourceRow | None = None,
                   key: str | None = None) -> None:
        """Buffer a row's result; the ``source`` row is kept for rows that go to errors.csv,
        and the request ``key`` for rows ``reconcile`` may decide later."""
        kept = None
        if source is not None and result.status in ERROR_STATUSES:
            kept = json.dumps((source.cells, source.origin), ensure_ascii=False)
        self._pending.append((*result, kept, key))
        if len(self._pending) >= self._BATCH:
            self.flush()

    def flush(self) -> None:
        rows, self._pending = self._pending, []
        if rows:
            self._execute([("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?,?,?)",
                            rows)])

    def results(self) -> Iterator[tuple[RowResult, SourceRow | None]]:
        """This run's results in row order, with the source rows kept for error rows."""
        self.flush()
        if self.failed is not None:
            raise self.failed  # a partial record would make reports with rows missing
        cursor = self._db.execute("SELECT * FROM results ORDER BY row")
        while batch := cursor.fetchmany(1000):
            for *fields, kept, _ in batch:
                source = None
                if kept is not None:
                    cells, origin = json.loads(kept)
                    source = SourceRow(fields[0], tuple(cells), origin)
                yield RowResult(*fields), source

    def close(self) -> None:
        try:
            self.flush()
        finally:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._db.close()
