"""The run's durable memory: what was sent, to whom, with what outcome.

Two tables in one SQLite file (WAL) in the output folder:

``requests``
    one line per request content key (what would be sent: phone, stage, message, phone ID,
    occurrence), across every run into this folder. A key is written ``in_flight`` and
    committed right before its request goes out, and its outcome is committed right after,
    so a crash leaves at most the requests in flight undecided; :meth:`Journal.open`
    turns those into ``unknown``.
``results``
    the current run's verdict for every row of the input, in row order, read back to write
    the reports. It is rebuilt by each run.

Commits use ``synchronous=NORMAL``: in WAL mode a committed transaction survives the
process being killed (``kill -9``); only a power cut may lose the last ones.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass
from pathlib import Path

from .exceptions import OutputFolderError

JOURNAL_NAME = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    key TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    phone TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    ai_contact_id TEXT NOT NULL DEFAULT '',
    error_code TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    row INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    phone TEXT NOT NULL,
    ai_contact_id TEXT NOT NULL,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    error TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class RowResult:
    """One line of results.csv."""

    row: int
    status: str
    phone: str = ""
    ai_contact_id: str = ""
    http_status: int | None = None
    attempts: int = 0
    error_code: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class PriorRequest:
    """What earlier runs (or this one) recorded for a content key."""

    row: int
    state: str
    attempts: int
    http_status: int | None
    ai_contact_id: str
    error_code: str
    error: str


def holds_run(out_dir: Path) -> bool:
    """Whether the folder holds a run: a journal in which at least one request was recorded."""
    path = out_dir / JOURNAL_NAME
    if not path.exists():
        return False
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return connection.execute("SELECT 1 FROM requests LIMIT 1").fetchone() is not None
        finally:
            connection.close()
    except sqlite3.Error:
        return True  # unreadable: treat as a run rather than risk starting it again


class Journal:
    """Open with :meth:`open`; every method commits before it returns unless it says not."""

    _BATCH = 2000

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._pending_results: list[tuple] = []

    @classmethod
    def open(cls, out_dir: Path, *, identity: dict[str, str], resume: bool) -> Journal:
        """Open the folder's journal for a run, refusing to start a second run by accident.

        ``identity`` (API base URL, channel, phone ID) must match the run being resumed:
        rows sent through one account or sandbox say nothing about another.
        """
        path = out_dir / JOURNAL_NAME
        existing = holds_run(out_dir)
        if existing and not resume:
            raise OutputFolderError(
                f"{out_dir} already holds a run; continue it with --resume (rows already sent"
                " are never sent again) or choose another --out folder"
            )
        if resume and not existing:
            raise OutputFolderError(f"--resume: {out_dir} holds no run to resume")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise OutputFolderError(f"{out_dir}: cannot write the journal ({error})") from None
        journal = cls(connection, path)
        recorded = journal._meta("identity")
        if recorded is not None and json.loads(recorded) != identity:
            before = json.loads(recorded)
            connection.close()
            raise OutputFolderError(
                f"{out_dir} holds a run sent to {before.get('base_url')} (phone ID"
                f" {before.get('phone_id')}), not to {identity.get('base_url')} (phone ID"
                f" {identity.get('phone_id')}); use another --out folder"
            )
        with journal._db:
            journal._db.execute("BEGIN")
            journal._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (json.dumps(identity),)
            )
            journal._db.execute(
                "UPDATE requests SET state='unknown', error_code='outcome_unknown',"
                " error='the run stopped while this request was in flight: the ticket may"
                " exist', updated_at=? WHERE state='in_flight'",
                (time.time(),),
            )
            journal._db.execute("DELETE FROM results")
        return journal

    def _meta(self, name: str) -> str | None:
        found = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if found is None else found[0]

    def prior(self, key: str) -> PriorRequest | None:
        found = self._db.execute(
            "SELECT row, state, attempts, http_status, ai_contact_id, error_code, error"
            " FROM requests WHERE key=?",
            (key,),
        ).fetchone()
        return None if found is None else PriorRequest(*found)

    def begin(self, key: str, row: int, phone: str) -> None:
        """Record, durably, that this request is about to go out."""
        self._db.execute(
            "INSERT INTO requests (key, row, phone, state, attempts, updated_at)"
            " VALUES (?, ?, ?, 'in_flight', 1, ?) ON CONFLICT(key) DO UPDATE SET"
            " row=excluded.row, state='in_flight', attempts=attempts+1,"
            " updated_at=excluded.updated_at",
            (key, row, phone, time.time()),
        )

    def settle(self, key: str, state: str, error_code: str, error: str,
               http_status: int | None) -> None:
        """Record that a request was not processed and will be tried again (429, 503)."""
        self._db.execute(
            "UPDATE requests SET state=?, error_code=?, error=?, http_status=?, updated_at=?"
            " WHERE key=?",
            (state, error_code, error, http_status, time.time(), key),
        )

    def finish(self, key: str, state: str, result: RowResult) -> None:
        """Record a request's final outcome and its row's result in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "UPDATE requests SET state=?, http_status=?, ai_contact_id=?, error_code=?,"
                " error=?, updated_at=? WHERE key=?",
                (state, result.http_status, result.ai_contact_id, result.error_code,
                 result.error, time.time(), key),
            )
            self._db.execute("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?)",
                             astuple(result))

    def attempts(self, key: str) -> int:
        found = self._db.execute("SELECT attempts FROM requests WHERE key=?", (key,)).fetchone()
        return 0 if found is None else found[0]

    def add_result(self, result: RowResult) -> None:
        """Buffer a result that no request stands behind (invalid, duplicate, skipped...)."""
        self._pending_results.append(astuple(result))
        if len(self._pending_results) >= self._BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending_results:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?)",
                                     self._pending_results)
            self._pending_results.clear()

    def results(self) -> Iterator[RowResult]:
        """This run's results in row order."""
        self.flush()
        cursor = self._db.execute("SELECT * FROM results ORDER BY row")
        while batch := cursor.fetchmany(1000):
            for found in batch:
                yield RowResult(*found)

    def close(self) -> None:
        self.flush()
        self._db.close()
