"""An output folder: its lock (one run at a time) and its journal (the run's plan and record).

``journal.sqlite`` holds the plan: every data row's verdict, decided once when the input was
read (:mod:`importer.plan`), with the cells of the rows that may go to errors.csv and, for
each row to send, the exact request (endpoint, body, content key). Sending reads the planned
requests from here, never the input file, so a file changed, replaced or grown after the
plan can never reach anyone. It also holds the fingerprint of the file that was planned
(``--resume`` checks it), which account the run sends to, which ledger records its requests,
and each row's outcome; the reports are written from it.

What was sent is in the ledger (:mod:`importer.ledger`), not here: an emptied, deleted or
replaced journal can never lead to a second send. One that is empty, unreadable or not ours
stops the run before any request.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import marshal
import os
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from .codes import ERROR_STATUSES, ErrorCode, RowStatus
from .database import JOURNAL_APPLICATION_ID, create_database, open_database
from .exceptions import InputFileError, OutputFolderError
from .files import private_fd, private_folder
from .read import SourceRow, Table
from .report import RowResult

JOURNAL_NAME = "journal.sqlite"
_CHUNK = 1000  # rows of cells and bodies compressed together
LOCK_NAME = ".vambe-import.lock"
SCHEMA_VERSION = "2"  # 1 (before the plan): results only, the file read again to send

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plan (
    row INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    phone TEXT NOT NULL,
    error_code TEXT NOT NULL,
    error TEXT NOT NULL,
    key TEXT,
    has_message INTEGER,
    origin INTEGER,
    written TEXT,
    phone_column TEXT,
    name TEXT,
    country TEXT
);
CREATE TABLE IF NOT EXISTS plan_data (first INTEGER PRIMARY KEY, data BLOB NOT NULL);
-- Every request sent (report.html's charts): when it left and when its answer came, in
-- this machine's wall clock, and the HTTP status (NULL: no answer).
CREATE TABLE IF NOT EXISTS requests (
    started REAL NOT NULL,
    ended REAL NOT NULL,
    row INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status INTEGER
);
CREATE TABLE IF NOT EXISTS pauses (started REAL NOT NULL, ended REAL NOT NULL);
CREATE TABLE IF NOT EXISTS outcomes (
    row INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    ai_contact_id TEXT NOT NULL,
    http_status INTEGER,
    attempts INTEGER NOT NULL,
    error_code TEXT NOT NULL,
    error TEXT NOT NULL
);
"""


# A planned row a run never reached (it stopped first), as the reports show it.
NOT_REACHED = RowResult(0, RowStatus.SKIPPED, error_code=ErrorCode.NOT_ATTEMPTED,
                        error="not sent: the run stopped before this row; --resume sends it")


class FolderLock:
    """One run (or validation) per output folder at a time: an OS lock, released when the
    process ends however it ends, so ``kill -9`` never leaves a folder locked."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        _refuse_foreign_folder(folder)
        try:
            private_folder(folder)
            self._fd = private_fd(folder / LOCK_NAME)
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


def _refuse_foreign_folder(folder: Path) -> None:
    """The importer writes only into a folder that does not exist yet, is empty, or holds
    its lock file or a journal (it wrote there before): never among a user's own files, whose
    results.csv or journal.sqlite-wal it would overwrite or remove, and never into the root
    or the home folder."""
    try:
        resolved = folder.resolve()
        if resolved == Path(resolved.anchor) or resolved == Path.home().resolve():
            raise OutputFolderError(f"{folder}: the root or home folder is never an output"
                                    " folder; choose a new --out folder")
        if not folder.is_dir() or (folder / LOCK_NAME).exists() or (
                folder / JOURNAL_NAME).exists():  # (a journal not ours is refused later)
            return
        other = next(iter(sorted(entry.name for entry in folder.iterdir())), None)
    except OSError as error:
        raise OutputFolderError(f"{folder}: cannot use this output folder"
                                f" ({error.strerror or error})") from None
    if other is not None:
        raise OutputFolderError(f"{folder} holds files that are not this importer's ({other!r}"
                                " among them): its reports would overwrite yours; choose an"
                                " empty or new --out folder")


class Fingerprint(NamedTuple):
    """What identifies the bytes a plan was made from."""

    size: int
    mtime_ns: int
    sha256: str

    def describe(self) -> str:
        return f"{self.size} bytes, sha256 {self.sha256[:12]}"


def file_identity(path: Path) -> tuple[int, int, int, int]:
    """(device, inode, size, modification time): what changes when a file is replaced,
    overwritten or appended to."""
    found = path.stat()
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def fingerprint(path: Path, before: tuple[int, int, int, int]) -> Fingerprint:
    """The file's fingerprint, if it is still the file ``before`` (taken before it was
    read): a file changed while it was read is refused, since the plan would mix two files."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            if file_identity(path) != before or _identity(os.fstat(handle.fileno())) != before:
                raise _changed(path)
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        if file_identity(path) != before:
            raise _changed(path)
    except FileNotFoundError:
        raise _changed(path) from None
    return Fingerprint(before[2], before[3], digest.hexdigest())


def _identity(found: os.stat_result) -> tuple[int, int, int, int]:
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def _changed(path: Path) -> InputFileError:
    return InputFileError(f"{path.name}: the file changed while it was being read (saved,"
                          " replaced or synced); nothing was sent: run again once it is still")


class JournalRecord(NamedTuple):
    """What a folder's journal says about the run in it."""

    identity: dict[str, str]
    ledger_id: str | None
    ledger_path: str | None
    started: bool
    planned: bool  # holds a whole plan (an earlier release's journal holds none)
    origin: str | None  # the folder's own id (None: written by 0.1.0, known by its path)


def read_journal(out_dir: Path) -> JournalRecord | None:
    """The run recorded in ``out_dir``, None when there is no journal; a journal that is
    empty, unreadable or not ours stops with :class:`OutputFolderError`, naming it."""
    path = out_dir / JOURNAL_NAME
    if not path.exists():
        return None
    connection = open_database(path, "journal")
    try:
        meta = dict(connection.execute("SELECT name, value FROM meta"))
    except sqlite3.Error as error:
        raise OutputFolderError(f"{path}: the journal cannot be read ({error}); nothing was"
                                " sent") from None
    finally:
        connection.close()
    return JournalRecord(json.loads(meta.get("identity", "{}")), meta.get("ledger_id"),
                         meta.get("ledger_path"), meta.get("started") == "1",
                         meta.get("schema") == SCHEMA_VERSION and meta.get("planned") == "1",
                         meta.get("origin"))


class Reached(NamedTuple):
    """A folder's run's own record of whom it reached: content key -> ``sent`` or
    ``unknown``, and the phones."""

    keys: dict[str, RowStatus]
    phones: set[str]


class Planned(NamedTuple):
    """One planned request, as sending reads it back."""

    row: int
    phone: str
    key: str
    path: str | None  # the template endpoint's path; None: the ticket endpoint
    body: str  # the exact JSON sent
    has_message: bool

    @property
    def message(self) -> str | None:
        """The text the customer gets, for ``reconcile`` to recognise as the last message."""
        message = json.loads(self.body).get("message")
        return message.get("content") if isinstance(message, dict) else None


def _migrate_v1(db: sqlite3.Connection) -> None:
    """A journal written before the plan (schema 1: a ``results`` table of each row's last
    result, with the cells of error rows and the content key of rows routed to send) as a
    plan without bodies: its rows are reported and reconciled as they were, and ``--resume
    --replan`` plans its file afresh (the ledger keeps anyone from being sent twice)."""
    if db.execute("SELECT value FROM meta WHERE name='schema'").fetchone() is not None:
        return
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='results'").fetchone() is None:
        return
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR REPLACE INTO plan (row, status, phone, error_code, error, key,"
            " has_message) SELECT row, CASE WHEN key IS NULL THEN status ELSE ? END,"
            " phone, CASE WHEN key IS NULL THEN error_code ELSE '' END,"
            " CASE WHEN key IS NULL THEN error ELSE '' END, key, NULL FROM results",
            (RowStatus.VALID,))
        db.execute("INSERT OR REPLACE INTO outcomes SELECT row, status, ai_contact_id,"
                   " http_status, attempts, error_code, error FROM results WHERE key IS NOT NULL")
        kept = []
        for row, source in db.execute("SELECT row, source FROM results WHERE source IS NOT NULL"
                                      " ORDER BY row"):
            cells, origin = json.loads(source)
            kept.append((row, tuple(cells), origin, None, None))
        db.executemany("INSERT OR REPLACE INTO plan_data VALUES (?, ?)", [
            (kept[start][0], zlib.compress(marshal.dumps(kept[start:start + _CHUNK]), 1))
            for start in range(0, len(kept), _CHUNK)])
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?), ('planned', '0')",
                   (SCHEMA_VERSION,))


# What results.csv shows of every row besides its verdict (added in 0.2.0: a journal
# written before holds NULL there, and its rows show their own number and no name).
_REPORT_COLUMNS = ("origin INTEGER", "written TEXT", "phone_column TEXT", "name TEXT",
                   "country TEXT")


def _add_report_columns(db: sqlite3.Connection) -> None:
    present = {column for _, column, *_ in db.execute("PRAGMA table_info(plan)")}
    with db:
        for column in _REPORT_COLUMNS:
            if column.split()[0] not in present:
                db.execute(f"ALTER TABLE plan ADD COLUMN {column}")


class _DataReader:
    """The cells and bodies of planned rows, read in row order a compressed chunk at a
    time: (row, cells, origin, path, body) for a row."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._rows: dict[int, tuple] = {}

    def get(self, row: int) -> tuple:
        found = self._rows.get(row)
        if found is None:
            chunk = self._db.execute("SELECT data FROM plan_data WHERE first<=?"
                                     " ORDER BY first DESC LIMIT 1", (row,)).fetchone()
            self._rows = {} if chunk is None else {
                item[0]: item for item in marshal.loads(zlib.decompress(chunk[0]))}
            found = self._rows.get(row)
            if found is None:
                raise OutputFolderError(f"the journal holds no cells for row {row}: it is"
                                        " damaged; --resume --replan plans the file again")
        return found


class Journal:
    """The folder's record of one run; open with :meth:`create` or :meth:`reopen`."""

    _BATCH = 1024  # rows a transaction: more, and they no longer fit the CPU's caches

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        self._plan: list[tuple] = []
        self._data: list[tuple] = []
        self._outcomes: list[tuple] = []
        self._requests: list[tuple] = []
        self._pauses: list[tuple] = []
        self.failed: OutputFolderError | None = None  # a write failed: the record is partial

    @classmethod
    def create(cls, out_dir: Path, *, identity: dict[str, str], ledger_id: str | None,
               ledger_path: str | Path | None, table: Table, config_digest: str,
               started: bool = False, origin: str | None = None) -> Journal:
        """Start a new plan in ``out_dir`` (the folder lock is already held), replacing the
        plan there (``started``: the folder holds a run, which this plan continues)."""
        journal = cls.reopen(out_dir, create=True)
        journal._execute([
            ("DELETE FROM plan", [()]), ("DELETE FROM plan_data", [()]),
            ("DELETE FROM outcomes", [()]), ("DELETE FROM meta", [()]),
            ("INSERT INTO meta VALUES (?, ?)", [
                ("schema", SCHEMA_VERSION), ("identity", json.dumps(identity)),
                ("ledger_id", ledger_id or ""), ("ledger_path", str(ledger_path or "")),
                ("config", config_digest), ("started", "1" if started else "0"),
                ("origin", origin or str(out_dir.resolve())),
                ("table", json.dumps([str(table.path.resolve()), table.kind,
                                      list(table.headers), table.encoding, table.delimiter,
                                      table.sheet, table.origin_column]))]),
        ])
        return journal

    @classmethod
    def reopen(cls, out_dir: Path, *, create: bool = False) -> Journal:
        """The folder's journal as it is."""
        path = out_dir / JOURNAL_NAME
        try:
            if create and not path.exists():
                create_database(path, JOURNAL_APPLICATION_ID, _SCHEMA)
            connection = open_database(path, "journal")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA application_id={JOURNAL_APPLICATION_ID}")
            _migrate_v1(connection)
            _add_report_columns(connection)
        except FileNotFoundError:
            raise OutputFolderError(f"{out_dir} holds no run (no journal)") from None
        except (OSError, sqlite3.Error) as error:
            raise OutputFolderError(f"{out_dir}: cannot write the journal ({error})") from None
        return cls(connection, path)

    # ------------------------------------------------------------ meta

    def meta(self, name: str) -> str | None:
        found = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if found is None else found[0]

    def set_meta(self, **values: str) -> None:
        self._execute([("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))])

    def table(self) -> Table:
        """The input the run read, as the reports need it (headers, encoding, delimiter)."""
        found = self.meta("table")
        if found is None:
            raise OutputFolderError(f"{self.path}: the journal does not say which file the run"
                                    " read; run it again with --resume --replan")
        path, kind, headers, encoding, delimiter, sheet, origin = json.loads(found)
        return Table(Path(path), kind, tuple(headers), encoding, delimiter, sheet, origin)

    def fingerprint(self) -> Fingerprint | None:
        found = self.meta("fingerprint")
        return None if found is None else Fingerprint(*json.loads(found))

    def mark_started(self, at: float) -> None:
        """From now on the folder holds a run: running into it again needs --resume. ``at``:
        when this run (or resume) starts sending, the start of report.html's charts."""
        self.set_meta(started="1", run_started=repr(at))

    # ------------------------------------------------------------ the plan

    def add_planned(self, verdict: tuple, data: tuple | None = None) -> None:
        """Buffer one row of the plan: its verdict (row, status, phone, error_code, error,
        key, has_message, origin, written, phone_column, name, country) and, for a row that
        may go to errors.csv or be sent, its data (row, cells, origin, path, body), written
        in large transactions."""
        self._plan.append(verdict)
        if data is not None:
            self._data.append(data)
        if len(self._plan) >= self._BATCH:
            self._flush_plan()

    def _flush_plan(self) -> None:
        verdicts, self._plan = self._plan, []
        data, self._data = self._data, []
        if not verdicts and not data:
            return
        # Cells and bodies repeat their shape row after row: compressed in chunks they take
        # a tenth of their size. (A writer thread of its own was tried: no faster, since
        # the rows' Python objects, not zlib or SQLite, are the cost.)
        chunks = [(data[start][0], zlib.compress(marshal.dumps(data[start:start + _CHUNK]), 1))
                  for start in range(0, len(data), _CHUNK)]
        self._execute([("INSERT INTO plan VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", verdicts),
                       ("INSERT INTO plan_data VALUES (?, ?)", chunks)])

    def supersede(self, rows: list[tuple[int, int]]) -> None:
        """``within_file = "last"``: each (row, last row) pair makes ``row`` a duplicate of
        the row holding its phone last, which is the one sent."""
        self._flush_plan()
        self._execute([(
            ("UPDATE plan SET status=?, error_code=?, error='same phone as row ' || ?,"
             " key=NULL, has_message=NULL WHERE row=?"),
            [(RowStatus.DUPLICATE, ErrorCode.DUPLICATE_PHONE, last, row)
             for row, last in rows])])

    def finish_plan(self, fingerprint: Fingerprint) -> None:
        """The plan is whole: sending may read it."""
        self._flush_plan()
        self.set_meta(fingerprint=json.dumps(fingerprint), planned="1")

    def plan_counts(self) -> dict[str, tuple[int, int]]:
        """Status -> (rows, rows with a message)."""
        return {status: (count, messages or 0) for status, count, messages in self._db.execute(
            "SELECT status, count(*), sum(has_message) FROM plan GROUP BY status")}

    def planned_requests(self, batch: int = 500, *, bodies: bool = True
                         ) -> Iterator[list[Planned]]:
        """The rows to send, in plan order, in batches (memory stays flat); without
        ``bodies``, their path and body are left empty (counting needs neither)."""
        after = 0
        data = _DataReader(self._db)
        while True:
            rows = self._db.execute(
                "SELECT row, phone, key, has_message FROM plan"
                " WHERE status=? AND row>? ORDER BY row LIMIT ?",
                (RowStatus.VALID, after, batch)).fetchall()
            if not rows:
                return
            planned = []
            for row, phone, key, has_message in rows:
                path, body = data.get(row)[3:] if bodies else (None, "")
                planned.append(Planned(row, phone, key, path, body, bool(has_message)))
            yield planned
            after = rows[-1][0]

    def request_of(self, row: int) -> tuple[str | None, str]:
        """A planned row's (path, body)."""
        return _DataReader(self._db).get(row)[3:]

    # ------------------------------------------------------------ outcomes

    def reached(self) -> Reached:
        """What this folder's run has sent, or may have: its own record, which a resumed run
        trusts whatever the ledger says (a ledger merged on upgrade may credit another
        folder with a key this run sent too)."""
        keys: dict[str, RowStatus] = {}
        phones: set[str] = set()
        for key, phone, status in self._db.execute(
                "SELECT plan.key, plan.phone, outcomes.status FROM outcomes JOIN plan USING (row)"
                " WHERE outcomes.status IN (?, ?)", (RowStatus.SENT, RowStatus.UNKNOWN)):
            phones.add(phone)
            if key is not None:
                keys[key] = RowStatus(status)
        return Reached(keys, phones)

    def add_result(self, result: RowResult) -> None:
        """Buffer a planned row's outcome."""
        self._outcomes.append((result.row, result.status, result.ai_contact_id,
                               result.http_status, result.attempts, result.error_code,
                               result.error))
        if len(self._outcomes) >= self._BATCH:
            self.flush()

    def add_request(self, started: float, ended: float, row: int, attempt: int,
                    status: int | None) -> None:
        """Buffer one request's times and HTTP status, for report.html's charts."""
        self._requests.append((started, ended, row, attempt, status))
        if len(self._requests) >= self._BATCH:
            self.flush()

    def add_pause(self, started: float, ended: float) -> None:
        """A run-wide pause the API asked for (429), for report.html."""
        self._pauses.append((started, ended))

    def flush(self) -> None:
        rows, self._outcomes = self._outcomes, []
        requests, self._requests = self._requests, []
        pauses, self._pauses = self._pauses, []
        if rows or requests or pauses:
            self._execute([("INSERT OR REPLACE INTO outcomes VALUES (?,?,?,?,?,?,?)", rows),
                           ("INSERT INTO requests VALUES (?,?,?,?,?)", requests),
                           ("INSERT INTO pauses VALUES (?, ?)", pauses)])

    def requests_since(self, moment: float) -> list[tuple[float, float, int | None]]:
        """(started, ended, HTTP status) of every request sent from ``moment`` on."""
        self.flush()
        return self._db.execute("SELECT started, ended, status FROM requests WHERE started>=?"
                                " ORDER BY started", (moment,)).fetchall()

    def pauses_since(self, moment: float) -> list[tuple[float, float]]:
        return self._db.execute("SELECT started, ended FROM pauses WHERE ended>=?"
                                " ORDER BY started", (moment,)).fetchall()

    def unknown_rows(self) -> dict[str, int]:
        """Key -> row of this run's rows left unknown."""
        return dict(self._db.execute(
            "SELECT plan.key, plan.row FROM outcomes JOIN plan USING (row)"
            " WHERE outcomes.status=? AND plan.key IS NOT NULL", (RowStatus.UNKNOWN,)))

    def amend(self, row: int, status: str, ai_contact_id: str, error_code: str,
              error: str) -> None:
        self._execute([(("UPDATE outcomes SET status=?, ai_contact_id=?, error_code=?, error=?"
                         " WHERE row=?"), [(status, ai_contact_id, error_code, error, row)])])

    def results(self, unreached: RowResult | None = None
                ) -> Iterator[tuple[RowResult, SourceRow | None]]:
        """Every planned row's result in row order, with its cells for rows that go to
        errors.csv. A row to send that has no outcome gets ``unreached`` (its row number
        and phone filled in): ``valid`` for ``validate``, ``skipped`` for a run that stopped
        before it."""
        self.flush()
        if self.failed is not None:
            raise self.failed  # a partial record would make reports with rows missing
        cursor = self._db.execute(
            "SELECT plan.row, plan.status, plan.phone, plan.error_code, plan.error,"
            " plan.origin, plan.written, plan.phone_column, plan.name, plan.country,"
            " outcomes.status, outcomes.ai_contact_id, outcomes.http_status,"
            " outcomes.attempts, outcomes.error_code, outcomes.error"
            " FROM plan LEFT JOIN outcomes USING (row) ORDER BY plan.row")
        default = unreached or RowResult(0, RowStatus.VALID)
        data = _DataReader(self._db)
        while batch := cursor.fetchmany(1000):
            for row, status, phone, code, error, origin, written, column, name, country, \
                    *outcome in batch:
                shown = {"row": origin or row, "written": written or "",
                         "column": column or "", "name": name or "", "country": country or ""}
                if outcome[0] is not None:
                    result = RowResult(row, RowStatus(outcome[0]), phone, *outcome[1:])
                elif status == RowStatus.VALID:
                    result = default._replace(phone=phone)
                else:
                    result = RowResult(row, RowStatus(status), phone, error_code=code,
                                       error=error)
                source = None
                if result.status in ERROR_STATUSES:
                    _, cells, cells_origin, _, _ = data.get(row)
                    source = SourceRow(row, tuple(cells), cells_origin)
                yield result._replace(**shown), source

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

    def close(self) -> None:
        try:
            if self.failed is None:
                self.flush()
        except OutputFolderError:
            pass  # said by whoever needed the record: the run's reports were written or not
        finally:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._db.close()

