"""The run's durable memory: what was sent, to whom, with what outcome.

Two tables in one SQLite file (WAL) in the output folder:

``requests``
    one line per request content key (what would be sent: phone, stage, message, phone ID,
    occurrence), across every run into this folder. A key is written ``in_flight`` and
    committed before its request goes out, and its outcome goes in the next group commit,
    so a crash leaves at most the requests in flight (or just answered) undecided;
    :meth:`Journal.open` turns those into ``unknown``, which never sends anyone twice.
``results``
    the current run's verdict for every row of the input, in row order, read back to write
    the reports. It is rebuilt by each run, so it is written in large batches.

Commits use ``synchronous=NORMAL``: in WAL mode a committed transaction survives the
process being killed (``kill -9``); only a power cut may lose the last ones.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .exceptions import OutputFolderError
from .report import RowResult

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
    has_message INTEGER NOT NULL DEFAULT 0,
    sent_at REAL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
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


class PriorRequest(NamedTuple):
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
    """Open with :meth:`open`. Writes are group-committed: statements queue up and one
    transaction per turn of the event loop commits them all, so eight requests in flight
    cost one commit, not eight. Only :meth:`begin` waits for its commit, because a request
    may not go out before its ``in_flight`` record is durable. WAL checkpoints (the only
    fsyncs under ``synchronous=NORMAL``) run in a background thread, off the event loop."""

    _BATCH = 2000
    _CHECKPOINT_SECONDS = 1.0

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._pending_results: list[tuple] = []
        self._had_requests = False
        self._queued: list[tuple[str, object]] = []
        self._waiting: list[asyncio.Future] = []
        self._commit_scheduled = False
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop,
                                              name="journal-checkpoints", daemon=True)

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
            connection.execute("PRAGMA wal_autocheckpoint=0")
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
        journal._execute_all([
            ("INSERT OR REPLACE INTO meta VALUES ('identity', ?)", (json.dumps(identity),)),
            ("UPDATE requests SET state='unknown', error_code='outcome_unknown',"
             " error='the run stopped while this request was in flight: the ticket may"
             " exist', updated_at=? WHERE state='in_flight'", (time.time(),)),
            ("DELETE FROM results", ()),
        ])
        journal._had_requests = existing
        journal._checkpointer.start()
        return journal

    def _meta(self, name: str) -> str | None:
        found = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if found is None else found[0]

    # ------------------------------------------------------------ committing

    def _execute_all(self, statements: list[tuple[str, object]]) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN")
                for sql, parameters in statements:
                    if isinstance(parameters, list):
                        self._db.executemany(sql, parameters)
                    else:
                        self._db.execute(sql, parameters)
        except sqlite3.Error as error:
            raise OutputFolderError(f"{self.path}: cannot write the journal ({error})") from None

    def _queue(self, *statements: tuple[str, object]) -> None:
        self._queued.extend(statements)
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit_queued)

    def _commit_queued(self) -> None:
        statements, self._queued = self._queued, []
        waiting, self._waiting = self._waiting, []
        self._commit_scheduled = False
        try:
            self._execute_all(statements)
        except OutputFolderError as error:
            for future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        for future in waiting:
            if not future.done():
                future.set_result(None)

    def _checkpoint_loop(self) -> None:
        """Fold the WAL into the database now and then, with its fsync, off the event loop."""
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._closing.wait(self._CHECKPOINT_SECONDS):
                db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:
            pass  # a checkpoint is housekeeping; the writer's own errors are what count
        finally:
            db.close()

    # ------------------------------------------------------------ requests

    def prior(self, key: str) -> PriorRequest | None:
        if not self._had_requests:  # a fresh run: no earlier outcome to find
            return None
        found = self._db.execute(
            "SELECT row, state, attempts, http_status, ai_contact_id, error_code, error"
            " FROM requests WHERE key=?",
            (key,),
        ).fetchone()
        return None if found is None else PriorRequest(*found)

    async def begin(self, key: str, row: int, phone: str, has_message: bool = False) -> None:
        """Record, durably, that this request is about to go out; returns once committed."""
        committed = asyncio.get_running_loop().create_future()
        self._waiting.append(committed)
        now = time.time()
        self._queue((
            "INSERT INTO requests (key, row, phone, state, attempts, has_message, sent_at,"
            " updated_at) VALUES (?, ?, ?, 'in_flight', 1, ?, ?, ?) ON CONFLICT(key) DO UPDATE"
            " SET row=excluded.row, state='in_flight', attempts=attempts+1,"
            " sent_at=excluded.sent_at, updated_at=excluded.updated_at",
            (key, row, phone, int(has_message), now, now),
        ))
        await committed

    def message_times(self, since: float) -> list[float]:
        """When messages went out since ``since``, oldest first: sent, or maybe delivered
        (unknown, in flight); requests the API did not process (failed) sent nothing."""
        return [at for (at,) in self._db.execute(
            "SELECT sent_at FROM requests WHERE has_message=1 AND sent_at>=?"
            " AND state IN ('sent', 'unknown', 'in_flight') ORDER BY sent_at", (since,))]

    def settle(self, key: str, state: str, error_code: str, error: str,
               http_status: int | None) -> None:
        """Record that a request was not processed and will be tried again (429, 503)."""
        self._queue((
            "UPDATE requests SET state=?, error_code=?, error=?, http_status=?, updated_at=?"
            " WHERE key=?",
            (state, error_code, error, http_status, time.time(), key),
        ))

    def finish(self, key: str, state: str, result: RowResult) -> None:
        """Record a request's outcome, committed with the next group, without waiting: if
        the process dies first, the request stays ``in_flight`` and resume counts it
        ``unknown``, which never sends anyone a second message. The row's result joins the
        batched results: that table is rebuilt by every run, so it needs no durability."""
        self._queue(
            ("UPDATE requests SET state=?, http_status=?, ai_contact_id=?, error_code=?,"
             " error=?, updated_at=? WHERE key=?",
             (state, result.http_status, result.ai_contact_id, result.error_code,
              result.error, time.time(), key)),
        )
        self.add_result(result)

    # ------------------------------------------------------------ results

    def add_result(self, result: RowResult) -> None:
        """Buffer a result that no request stands behind (invalid, duplicate, skipped...)."""
        self._pending_results.append(result)  # a NamedTuple is already a table row
        if len(self._pending_results) >= self._BATCH:
            self.flush()

    def flush(self) -> None:
        """Commit everything queued or buffered so far."""
        statements, self._queued = self._queued, []
        rows, self._pending_results = self._pending_results, []
        if rows:
            statements.append(("INSERT OR REPLACE INTO results VALUES (?,?,?,?,?,?,?,?)", rows))
        if statements:
            self._execute_all(statements)

    def results(self) -> Iterator[RowResult]:
        """This run's results in row order."""
        self.flush()
        cursor = self._db.execute("SELECT * FROM results ORDER BY row")
        while batch := cursor.fetchmany(1000):
            for found in batch:
                yield RowResult(*found)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._closing.set()
            if self._checkpointer.is_alive():
                self._checkpointer.join()
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._db.close()

