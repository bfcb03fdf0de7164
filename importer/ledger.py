"""The send ledger: one durable record, on this machine, of every request that was sent or
may have been, per account target, whatever folder, file or terminal sent it.

An output folder's journal says what one run did; the ledger says what the account has
received from this machine. A request's content key (phone, stage, message, phone ID,
occurrence) is *claimed* in the ledger, atomically, before its request goes out: two
processes, in the same folder or in different ones, can never both send the same key. So an
emptied or deleted journal, a second terminal, another working directory or an error file
imported again cannot message anyone twice.

=============  ========================================================================
state          what a later run does with the key
=============  ========================================================================
``sent``       from the same folder: reported ``sent``; from another folder within
               ``[dedupe] across_runs_days``: ``duplicate`` (``sent_before``)
``unknown``    stays ``unknown`` unless ``--retry-unknown``
``claimed``    reserved by a live run (to send next): ``skipped`` (``in_progress``); by a
               dead one: sent (it never left this machine)
``in_flight``  held by a live run: ``skipped`` (``in_progress``); by a dead one: ``unknown``
``failed``     not processed: sent again
=============  ========================================================================

Where it lives: ``[ledger] path``, else ``$VAMBE_IMPORT_LEDGER``, else the user's data folder
(``platformdirs``). A run is alive while it holds an OS lock on its own file in
``<ledger>.runs/``; the lock dies with the process, so ``kill -9`` never leaves a key held.

A run claims its planned requests in batches (one transaction each: the ledger's verdict on
every key, and a reservation of those it may send), then marks each one ``in_flight``,
durably, just before its request goes out. The ledger file is held open and checked before
each batch: one deleted, replaced or moved mid-run stops the run (exit 4), never silently
recreated.

Writes are group-committed: everything queued during one turn of the event loop goes into
one SQLite transaction, so eight requests in flight cost one commit, not eight. Only a claim
waits for its commit. WAL checkpoints (the only fsyncs under ``synchronous=NORMAL``) run in
a background thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import logging
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qs, urlsplit

from .codes import ErrorCode, RequestState, RowStatus
from .config import Config
from .database import LEDGER_APPLICATION_ID, create_database, open_database
from .exceptions import ConfigError, LedgerMovedError, OutputFolderError
from .files import open_private, private_fd, private_folder
from .report import RowResult
from .timing import ARRIVAL_JITTER, Clock, Pacer, clock, format_time

log = logging.getLogger(__name__)

LEDGER_ENV = "VAMBE_IMPORT_LEDGER"
DATA_ENV = "VAMBE_IMPORT_DATA"  # the user's data folder (tests point it at a temporary one)
INDEX_FILE = "ledgers.json"
LEDGER_FILE = "ledger.sqlite"
DAY = 86400.0

SCHEMA_VERSION = "2"  # 1: targets named by base URL too (0.1.0)
_REQUESTS_TABLE = """CREATE TABLE IF NOT EXISTS requests (
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    row INTEGER NOT NULL,
    phone TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    http_status INTEGER,
    ai_contact_id TEXT NOT NULL DEFAULT '',
    error_code TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    has_message INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    sent_at REAL,
    skew_low REAL,
    skew_high REAL,
    folder TEXT NOT NULL,
    origin TEXT NOT NULL,
    run TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (target, key)
) WITHOUT ROWID"""
# The account's next request slot, shared by every run using this ledger (wall-clock time).
_BUDGET_TABLE = ("CREATE TABLE IF NOT EXISTS budget (target TEXT PRIMARY KEY,"
                 " next_at REAL NOT NULL, recent TEXT NOT NULL DEFAULT '[]',"
                 " held_until REAL NOT NULL DEFAULT 0) WITHOUT ROWID")
_MESSAGES_INDEX = ("CREATE INDEX IF NOT EXISTS requests_with_messages ON requests"
                   " (target, sent_at) WHERE has_message = 1")  # the daily limit's count
_INDEXES = (_MESSAGES_INDEX, "CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state)",
            "CREATE INDEX IF NOT EXISTS requests_by_send_time ON requests (target, sent_at)")
_SCHEMA = ";\n".join([
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    _REQUESTS_TABLE, _BUDGET_TABLE, *_INDEXES]) + ";"


class TeamURL(str):
    """A team ledger's ``postgresql://`` URL, as written (never with a password: libpq's own
    sources supply it). ``str()`` is the URL; :attr:`display` names it without credentials."""

    @property
    def display(self) -> str:
        parts = urlsplit(self)
        host = parts.hostname or "localhost"
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"postgresql://{host}{port}{parts.path or '/'}"


Location = Path | TeamURL  # where a ledger is: a file, or a team ledger's database


def ledger_location(config: Config, override: str | Path | None = None) -> Location:
    """Where the ledger is: ``override``, ``[ledger] url`` or ``path``,
    ``$VAMBE_IMPORT_LEDGER`` (a file path or a ``postgresql://`` URL), or the user's data
    folder. Any other URL is refused, never taken as a file path in the working directory
    (each laptop would keep a ledger of its own)."""
    if override is not None:
        return _location(str(override), "ledger_path")
    settings = config.ledger
    if settings.url is not None and settings.path is not None:
        raise ConfigError(f"{config.source}: [ledger] path and url: set one of them")
    if settings.url is not None:
        found = _location(settings.url, f"{config.source}: [ledger] url")
        if not isinstance(found, TeamURL):
            raise ConfigError(f"{config.source}: [ledger] url: must be a postgresql:// URL"
                              " (a ledger file goes in [ledger] path)")
        return found
    if settings.path is not None:
        if isinstance(_location(settings.path, f"{config.source}: [ledger] path"), TeamURL):
            raise ConfigError(f"{config.source}: [ledger] path: a postgresql:// URL goes in"
                              " [ledger] url")
        return config.ledger_path() or default_ledger_path()
    return default_ledger_path()


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


_CONNINFO = re.compile(r"^\s*[A-Za-z_]+\s*=")  # libpq's "host=... dbname=..." form


def _location(value: str, where: str) -> Location:
    found = _URL.match(value.strip())
    if found is None:
        if _CONNINFO.match(value):  # never echoed: it may hold a password
            raise ConfigError(f"{where}: looks like a PostgreSQL connection string"
                              " (keyword=value): write the team ledger as a postgresql:// URL,"
                              " never with a password; a ledger file needs a path")
        return Path(value).expanduser()
    scheme = found.group()[:-3].lower()
    if scheme not in ("postgres", "postgresql"):
        raise ConfigError(f"{where}: {scheme}:// is not a ledger this release can use: set a"
                          " file path, or a postgresql:// URL for a team ledger")
    url = "postgresql://" + value.strip()[found.end():]  # libpq knows the scheme in lower case
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as error:
        raise ConfigError(f"{where}: not a valid postgresql:// URL ({error})") from None
    if parts.password is not None or any("password" in name.lower()
                                         for name in parse_qs(parts.query)):
        raise ConfigError(f"{where}: a password never goes in the config or the URL: libpq"
                          " reads it from PGPASSWORD, ~/.pgpass or a service file")
    return TeamURL(url)


def identity_of(config: Config, account: str | None = None) -> dict[str, str]:
    """The account a run sends to, as the journal records it (``account`` names the base URL
    where it changes, as the sandbox's port does)."""
    api = config.api
    return {"base_url": account or api.base_url, "channel": api.channel,
            "phone_id": api.phone_id}


def default_ledger_path() -> Location:
    """``$VAMBE_IMPORT_LEDGER``, else ``ledger.sqlite`` in the user's data folder."""
    if os.environ.get(LEDGER_ENV):
        return _location(os.environ[LEDGER_ENV], LEDGER_ENV)
    return data_folder() / LEDGER_FILE


def data_folder() -> Path:
    """``$VAMBE_IMPORT_DATA``, else the user's data folder (``platformdirs``)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("vambe-import", appauthor=False))


def location_name(location: Location) -> str:
    """How the index of ledgers names a ledger: a file's full path, a team ledger's URL
    without credentials."""
    return location.display if isinstance(location, TeamURL) else str(location.resolve())


def other_ledgers(target: str, me: str) -> list[str]:
    """The other ledgers on this machine (files still there, team ledgers) that have sent
    to ``target``, from the index of ledgers (``me``: this ledger's :attr:`Ledger.index_name`):
    two ledgers for one account do not know of each other, so a customer sent from one is
    sent again from the other. A team ledger is known by its id (one database reached by
    two URLs is one ledger), and named by its URL."""
    mine = me.rpartition("#")[2] if _URL.match(me) else me
    others = []
    for name in _ledger_index().get(target, []):
        if _URL.match(name):
            if name.rpartition("#")[2] != mine:
                others.append(name.rpartition("#")[0] or name)
        elif name != me and Path(name).exists():
            others.append(name)
    return others


def remember_ledger(target: str, ledger: str) -> None:
    """Record in this machine's index that ``ledger`` sends to ``target`` (before the first
    request: a run killed mid-way has sent). Failing to record it stops the run."""
    index = data_folder() / INDEX_FILE
    private_folder(index.parent)
    me = ledger
    fd = private_fd(index.with_name(f"{INDEX_FILE}.lock"))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two runs ending at once both get in
        known = _ledger_index()
        if me in known.get(target, []):
            return
        known[target] = known.get(target, []) + [me]
        staging = index.with_name(f".{INDEX_FILE}.new")
        with open_private(staging) as handle:
            handle.write(json.dumps(known, indent=1, sort_keys=True))
        os.replace(staging, index)
    finally:
        os.close(fd)


def _ledger_index() -> dict[str, list[str]]:
    """Target -> the ledger files that have sent to it. An index that cannot be read stops
    the run: read as empty, it would let a second ledger send again, and be overwritten."""
    index = data_folder() / INDEX_FILE
    try:
        known = json.loads(index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise OutputFolderError(f"{index}: the index of send ledgers cannot be read ({error});"
                                " restore it, or delete it knowing that it is what tells one"
                                " ledger from another for an account; nothing was sent") from None
    if not isinstance(known, dict) or not all(
            isinstance(paths, list) and all(isinstance(path, str) for path in paths)
            for paths in known.values()):
        raise OutputFolderError(f"{index}: not an index of send ledgers; restore it or delete"
                                " it; nothing was sent")
    return known


class Prior(NamedTuple):
    """What the ledger holds for one key."""

    state: RequestState
    attempts: int
    http_status: int | None
    ai_contact_id: str
    error_code: str
    error: str
    folder: str
    run: str
    sent_at: float | None
    origin: str


class FolderActivity(NamedTuple):
    """What a ledger knows of one output folder's requests."""

    folder: str
    requests: int
    sent: int
    unknown: int
    last: float  # when one was last recorded (this machine's clock)


class Unknown(NamedTuple):
    """A request whose outcome is unknown, as reconcile needs it."""

    key: str
    phone: str
    sent_at: float | None
    message: str | None
    skew_low: float | None  # the account's clock minus ours when it was sent, at least...
    skew_high: float | None  # ... and at most (None: not measured, an earlier release)


class Held(NamedTuple):
    """Why a key is not sent by this run: the row's result, ready for the reports."""

    status: RowStatus
    attempts: int
    ai_contact_id: str = ""
    http_status: int | None = None
    error_code: ErrorCode | str = ""
    error: str = ""

    def result(self, row: int, phone: str) -> RowResult:
        """The row's line in results.csv."""
        return RowResult(row, self.status, phone, self.ai_contact_id, self.http_status,
                         self.attempts, self.error_code, self.error)


@dataclass(frozen=True)
class Policy:
    """What a run may send again: set by the config and the command line."""

    across_runs_days: float = 30
    retry_unknown: bool = False


def _format_day(moment: float | None) -> str:
    return "an earlier run" if moment is None else format_time(moment)


class _RunLock:
    """This run's liveness: an OS lock on its own file, released when the process dies."""

    def __init__(self, folder: Path, run_id: str) -> None:
        self.path = folder / f"{run_id}.lock"
        private_folder(folder)
        self._fd = private_fd(self.path)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self._fd)

    @staticmethod
    def alive(folder: Path, run_id: str) -> bool:
        """Whether run ``run_id`` still holds its lock (a dead run's lock is gone)."""
        try:
            fd = os.open(folder / f"{run_id}.lock", os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock taken just now
        return False


_T = TypeVar("_T")


def _reading(method: Callable[..., _T]) -> Callable[..., _T]:
    """A read of the ledger that fails (a file with zeroed pages, a bad copy, a team
    ledger's database gone): one line naming it, never "unexpected error"; a run stops
    there (exit 2 before sending, 4 after)."""
    @functools.wraps(method)
    def read(self: Ledger, *args: object, **kwargs: object) -> _T:
        try:
            return method(self, *args, **kwargs)
        except self._errors as error:
            raise self._failure(error, "read") from None
    return read


# A claim, as both ledgers write it: the key reserved for this run, anything recorded of an
# earlier attempt cleared (the attempt count goes on).
_CLAIM = ("INSERT INTO requests (target, key, state, row, phone, attempts, folder, origin, run,"
          " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, key) DO"
          " UPDATE SET state=excluded.state, row=excluded.row, phone=excluded.phone,"
          " attempts=excluded.attempts, http_status=NULL, ai_contact_id='', error_code='',"
          " error='', has_message=0, message=NULL, sent_at=NULL, skew_low=NULL,"
          " skew_high=NULL, folder=excluded.folder,"
          " origin=excluded.origin, run=excluded.run, updated_at=excluded.updated_at")
_PRIOR = ("state, attempts, http_status, ai_contact_id, error_code, error, folder, run, sent_at,"
          " origin")


class Ledger:
    """The ledger's one interface, with its judgement (the module's table) and its group
    commits; :class:`FileLedger` keeps it in a SQLite file on this machine,
    :class:`importer.team.TeamLedger` in a PostgreSQL database shared by a team. Open with
    :meth:`open`; one per run. ``target`` names the account (channel, phone ID) and
    ``folder`` the run's output folder, both recorded with every claim."""

    kind = "file"
    _errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, *, location: Location, target: str, folder: Path, policy: Policy,
                 origin: str | None = None) -> None:
        self.path = location
        self.target = target
        self.folder = str(folder.resolve())
        # What makes a run's folder the same folder: the id its journal keeps (a folder moved
        # or renamed is still itself); for a folder 0.1.0 wrote, its path.
        self.origin = origin or self.folder
        self.policy = policy
        self.run_id = uuid.uuid4().hex
        self._clock: Clock = clock()
        self._queued: list[tuple[Callable[[], object], asyncio.Future | None]] = []
        self.error: OutputFolderError | None = None  # a write failed: no more claims
        self._commit_scheduled = False
        self._finished = False  # finish() ran: what it could not do was said then
        self._target_known = self._execute(
            "SELECT 1 FROM requests WHERE target=? LIMIT 1", (target,)).fetchone() is not None

    @staticmethod
    def open(location: Location, *, target: str, folder: Path, policy: Policy = Policy(),
             origin: str | None = None, timeout: float = 30.0) -> Ledger:
        """Open (creating it if needed) the ledger at ``location`` for one run; a team
        ledger's statements fail within ``timeout`` seconds when its database is gone."""
        if isinstance(location, TeamURL):
            from .team import TeamLedger

            return TeamLedger.open(location, target=target, folder=folder, policy=policy,
                                   origin=origin, timeout=timeout)
        return FileLedger.open(location, target=target, folder=folder, policy=policy,
                               origin=origin)

    @staticmethod
    def peek(location: Location, *, target: str, folder: Path, policy: Policy,
             origin: str | None = None) -> Ledger | None:
        """The ledger for reading only (``validate``), or None if there is none yet."""
        if isinstance(location, TeamURL):
            from .team import TeamLedger

            return TeamLedger.peek(location, target=target, folder=folder, policy=policy,
                                   origin=origin)
        return FileLedger.peek(location, target=target, folder=folder, policy=policy,
                               origin=origin)

    # ------------------------------------------------------------ what each kind provides

    @property
    def name(self) -> str:
        """The ledger as messages, the journal and the index of ledgers name it: a file's
        path, a team ledger's URL without credentials."""
        return location_name(self.path)

    @property
    def description(self) -> str:
        """The ledger as ``run`` names it: its name, and "(team)" for a team ledger."""
        return self.name

    @property
    def index_name(self) -> str:
        """How the index of ledgers knows this ledger: a file's path; a team ledger's URL
        and id."""
        return self.name

    def _execute(self, sql: str, params: tuple | list = ()) -> Any:
        """One statement (``?`` placeholders); its cursor."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[None]:
        """One transaction, taken for writing: other runs' claims wait for it."""
        raise NotImplementedError

    def _run_alive(self, run: str) -> bool:
        """Whether run ``run`` is alive (its reservations and requests in flight are held)."""
        raise NotImplementedError

    def _serialize_claims(self) -> None:
        """Inside a claim's transaction: no other run judges this account's keys until it
        commits (a file ledger's write transaction already does that)."""

    def _failure(self, error: Exception, doing: str) -> OutputFolderError:
        """The one-line error for a failed read or write of this ledger."""
        raise NotImplementedError

    def check_identity(self) -> None:
        """Stop if the ledger was replaced since it was opened."""

    def other_live_runs(self) -> int:
        """How many other runs use this ledger now (they share the account's rate)."""
        raise NotImplementedError

    def reserve(self, interval: float, count: int = 1, window: float = 0.0,
                horizon: float = 3600.0) -> float:
        """The account's next request slot (this machine's wall-clock time), reserved for
        this run in one short statement: runs using this ledger take turns ``interval``
        apart, and no ``count + 1`` slots fall within ``window`` seconds. A slot more than
        ``horizon`` seconds ahead (longer than any pause this run allows: a clock set back,
        a test's virtual time) is stale and starts afresh."""
        raise NotImplementedError

    def hold_budget(self, until: float) -> None:
        """No run on this account takes a slot before ``until`` (a 429's pause)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ reading

    @property
    def knows_target(self) -> bool:
        """Whether this ledger had recorded any request to the account when it was opened."""
        return self._target_known

    @property
    @_reading
    def id(self) -> str:
        return self._execute("SELECT value FROM meta WHERE name='id'").fetchone()[0]

    def _settle_dead_runs(self) -> None:
        """Requests left in flight by runs that died (crash, kill -9) may have arrived:
        they become ``unknown``, which never sends anyone twice; their reservations are
        free (never sent)."""
        in_flight = self._execute(
            "SELECT DISTINCT run FROM requests WHERE state IN (?, ?)",
            (RequestState.IN_FLIGHT, RequestState.CLAIMED)).fetchall()
        dead = [run for (run,) in in_flight if run != self.run_id and not self._run_alive(run)]
        if not dead:
            return
        now = self._clock.time()
        with self._transaction():
            for run in dead:
                self._execute(
                    "UPDATE requests SET state=?, error_code=?, error=?, updated_at=?"
                    " WHERE run=? AND state=?",
                    (RequestState.UNKNOWN, ErrorCode.OUTCOME_UNKNOWN,
                     "the run stopped while this request was in flight: the ticket may exist",
                     now, run, RequestState.IN_FLIGHT))
                self._execute("UPDATE requests SET state=?, updated_at=? WHERE run=? AND state=?",
                              (RequestState.FAILED, now, run, RequestState.CLAIMED))

    @_reading
    def lookup(self, key: str) -> Prior | None:
        found = self._execute(f"SELECT {_PRIOR} FROM requests WHERE target=? AND key=?",
                              (self.target, key)).fetchone()
        return None if found is None else Prior(RequestState(found[0]), *found[1:])

    def _priors(self, keys: list[str]) -> dict[str, Prior]:
        """What the ledger holds for ``keys``, one query per 500."""
        priors: dict[str, Prior] = {}
        for start in range(0, len(keys), 500):
            part = keys[start:start + 500]
            marks = ",".join("?" * len(part))
            for key, *fields in self._execute(
                    f"SELECT key, {_PRIOR} FROM requests WHERE target=? AND key IN ({marks})",
                    (self.target, *part)):
                priors[key] = Prior(RequestState(fields[0]), *fields[1:])
        return priors

    def judge(self, prior: Prior | None) -> Held | None:
        """None when this run may send the key; else the row's result (see the module's table)."""
        if prior is None or prior.state == RequestState.FAILED:
            return None
        state = prior.state
        if state == RequestState.CLAIMED:
            if prior.run == self.run_id or self._run_alive(prior.run):
                return Held(RowStatus.SKIPPED, prior.attempts, error_code=ErrorCode.IN_PROGRESS,
                            error=f"being sent right now by another run (into {prior.folder});"
                                  " --resume sends it if that run does not")
            return None  # a dead run's reservation: it never left that machine
        if state == RequestState.IN_FLIGHT:
            if prior.run != self.run_id and self._run_alive(prior.run):
                return Held(RowStatus.SKIPPED, prior.attempts, error_code=ErrorCode.IN_PROGRESS,
                            error=f"being sent right now by another run (into {prior.folder});"
                                  " --resume sends it if that run does not")
            state = RequestState.UNKNOWN
            prior = prior._replace(
                error_code=ErrorCode.OUTCOME_UNKNOWN,
                error="the run that sent it stopped while it was in flight: the ticket may exist")
        if state == RequestState.SENT:
            if self._mine(prior):
                return Held(RowStatus.SENT, prior.attempts, prior.ai_contact_id,
                            prior.http_status)
            days = self.policy.across_runs_days
            if days and (prior.sent_at or 0) >= self._clock.time() - days * DAY:
                return Held(RowStatus.DUPLICATE, prior.attempts, prior.ai_contact_id,
                            prior.http_status, ErrorCode.SENT_BEFORE,
                            f"sent before, on {_format_day(prior.sent_at)} by the run into"
                            f" {prior.folder}; not sent again within {days:g} days"
                            " ([dedupe] across_runs_days)")
            return None
        if self.policy.retry_unknown:
            return None
        where = "an earlier run" if self._mine(prior) else f"the run into {prior.folder}"
        return Held(RowStatus.UNKNOWN, prior.attempts, prior.ai_contact_id, prior.http_status,
                    prior.error_code or ErrorCode.OUTCOME_UNKNOWN,
                    f"{prior.error} ({where}; --retry-unknown sends it again)")

    def _mine(self, prior: Prior) -> bool:
        """Whether this folder's run recorded ``prior``: by the folder's own id (a folder
        moved or renamed is still itself) or by its path (a folder whose journal was
        deleted is still there)."""
        return prior.origin == self.origin or prior.folder == self.folder

    @_reading
    def held_many(self, keys: list[str]) -> dict[str, Held]:
        """What the ledger holds back of ``keys`` now, read in one query a batch (the plan's
        summary and ``validate``); for an account this ledger had never sent to when the
        run began, nothing, without a look-up. The claim stays the one check that counts."""
        if not self._target_known or not keys:
            return {}
        held: dict[str, Held] = {}
        for key, prior in self._priors(keys).items():
            verdict = self.judge(prior)
            if verdict is not None:
                held[key] = verdict
        return held

    @_reading
    def message_times(self, since: float) -> list[float]:
        """When messages went to this target since ``since``, oldest first: sent, or maybe
        delivered (unknown, in flight); requests the API did not process sent nothing."""
        return [at for (at,) in self._execute(
            "SELECT sent_at FROM requests WHERE target=? AND has_message=1 AND sent_at>=?"
            " AND state IN (?, ?, ?) ORDER BY sent_at",
            (self.target, since, RequestState.SENT, RequestState.UNKNOWN,
             RequestState.IN_FLIGHT))]

    @_reading
    def folder_has_outcomes(self, target: str) -> bool:
        """Whether a request from this folder to ``target`` was (or may have been) processed."""
        return self._execute(
            "SELECT 1 FROM requests WHERE target=? AND (origin=? OR folder=?)"
            " AND state IN (?, ?, ?) LIMIT 1",
            (target, self.origin, self.folder, RequestState.SENT, RequestState.UNKNOWN,
             RequestState.IN_FLIGHT)).fetchone() is not None

    @_reading
    def folders(self, limit: int = 100) -> list[FolderActivity]:
        """The output folders that sent through this ledger, to any account, the latest
        first (the local page's Runs)."""
        return [FolderActivity(*found) for found in self._execute(
            "SELECT folder, count(*), sum(CASE WHEN state=? THEN 1 ELSE 0 END),"
            " sum(CASE WHEN state=? THEN 1 ELSE 0 END), max(updated_at) FROM requests"
            " GROUP BY folder ORDER BY max(updated_at) DESC LIMIT ?",
            (RequestState.SENT, RequestState.UNKNOWN, limit))]

    @_reading
    def phones_reached(self) -> set[str]:
        """The phones this folder's run has sent to, or may have (``--replan``: a changed
        row has a new content key, but its customer must not be reached twice)."""
        return {phone for (phone,) in self._execute(
            "SELECT DISTINCT phone FROM requests WHERE target=? AND (origin=? OR folder=?)"
            " AND state IN (?, ?, ?)", (self.target, self.origin, self.folder, RequestState.SENT,
                                        RequestState.UNKNOWN, RequestState.IN_FLIGHT))}

    @_reading
    def unknown_requests(self) -> list[Unknown]:
        """This folder's requests whose outcome is unknown."""
        return [Unknown(*found) for found in self._execute(
            "SELECT key, phone, sent_at, message, skew_low, skew_high FROM requests"
            " WHERE target=?"
            " AND (origin=? OR folder=?) AND state=? ORDER BY row",
            (self.target, self.origin, self.folder, RequestState.UNKNOWN)).fetchall()]

    def settle_unknown(self, key: str, state: RequestState, *, ai_contact_id: str = "",
                       error_code: str = "", error: str = "") -> None:
        """Record what reconcile decided for an unknown request (outside any run's claims)."""
        try:
            with self._transaction():
                self._execute(
                    "UPDATE requests SET state=?, ai_contact_id=?, error_code=?, error=?,"
                    " updated_at=? WHERE target=? AND key=? AND state=?",
                    (state, ai_contact_id, error_code, error, self._clock.time(), self.target,
                     key, RequestState.UNKNOWN))
        except self._errors as error:
            raise self._failure(error, "write") from None

    # ------------------------------------------------------------ writing

    async def claim(self, items: list[tuple[str, int, str]]) -> list[Held | None]:
        """Judge and reserve a batch of (key, row, phone), in one transaction: None for a key
        this run may now send (reserved ``claimed``: no other run takes it), else why it is
        held. Nothing is sent yet; :meth:`begin` marks each request just before it goes."""
        if self.error is not None:
            raise self.error  # something could not be recorded: claim nothing more
        self.check_identity()
        future = asyncio.get_running_loop().create_future()

        def work() -> list[Held | None]:
            self._serialize_claims()
            now = self._clock.time()
            priors = self._priors([key for key, _, _ in items])
            verdicts: list[Held | None] = []
            claims = []
            for key, row, phone in items:
                prior = priors.get(key)
                held = self.judge(prior)
                verdicts.append(held)
                if held is None:
                    claims.append((key, row, phone, prior.attempts if prior else 0))
            self._write_claims(claims, now)
            return verdicts

        self._queue(work, future)
        return await future

    def _write_claims(self, claims: list[tuple[str, int, str, int]], now: float) -> None:
        """Reserve (key, row, phone, attempts so far) for this run, in the open transaction."""
        raise NotImplementedError

    async def begin(self, key: str, has_message: bool, message: str | None,
                    skew: tuple[float, float] | None = None,
                    daily_limit: int | None = None) -> int:
        """Mark a claimed key ``in_flight``, durably, before its request goes out, with the
        account's clock skew as known then (reconcile needs it); returns its attempt number.
        If the process dies now, the key becomes ``unknown``. With ``daily_limit``, a
        message is counted against every run's messages to the account in the last 24 hours
        in the same transaction (runs take turns): 0, and nothing marked, when none is left."""
        if self.error is not None:
            raise self.error
        self.check_identity()
        future = asyncio.get_running_loop().create_future()

        # A failure inside the group commit would roll back every outcome queued with it
        # (found by review): a key no longer ours is said after the commit.
        def work() -> int | None:
            now = self._clock.time()
            if has_message and daily_limit is not None:
                self._serialize_claims()
                sent = self._execute(
                    "SELECT count(*) FROM requests WHERE target=? AND has_message=1"
                    " AND sent_at>=? AND state IN (?, ?, ?) AND key<>?",
                    (self.target, now - DAY, RequestState.SENT, RequestState.UNKNOWN,
                     RequestState.IN_FLIGHT, key)).fetchone()[0]
                if sent >= daily_limit:
                    return 0
            found = self._execute(
                "UPDATE requests SET state=?, attempts=attempts+1, has_message=?, message=?,"
                " sent_at=?, skew_low=?, skew_high=?, updated_at=? WHERE target=? AND key=?"
                " AND run=? AND state=? RETURNING attempts",
                (RequestState.IN_FLIGHT, int(has_message), message, now,
                 *(skew or (None, None)), now, self.target, key, self.run_id,
                 RequestState.CLAIMED)).fetchone()
            return None if found is None else found[0]

        self._queue(work, future)
        attempts = await future
        if attempts is None:
            self.error = self.error or OutputFolderError(
                f"{self.description}: request {key} is no longer reserved for this run in the"
                " send ledger (another run took this one for dead); stopping")
            raise self.error
        return attempts

    def release(self, key: str) -> None:
        """Give back a claimed key this run will not send now (``--limit``, a closed window,
        a stop): it was never sent, so any run may send it later."""
        now = self._clock.time()
        self._queue(lambda: self._execute(
            "UPDATE requests SET state=?, updated_at=? WHERE target=? AND key=? AND run=?"
            " AND state=?", (RequestState.FAILED, now, self.target, key, self.run_id,
                             RequestState.CLAIMED)), None)

    def record(self, key: str, state: RequestState, *, http_status: int | None = None,
               ai_contact_id: str = "", error_code: str = "", error: str = "",
               skew: tuple[float, float] | None = None) -> None:
        """Record a claimed request's outcome with the next group commit, without waiting:
        if the process dies first, the key stays in flight and becomes ``unknown``. ``skew``:
        the clock skew narrowed since the request went out (else the one known then stays)."""
        now = self._clock.time()
        low, high = skew or (None, None)
        self._queue(lambda: self._execute(
            "UPDATE requests SET state=?, http_status=?, ai_contact_id=?, error_code=?, error=?,"
            " skew_low=coalesce(?, skew_low), skew_high=coalesce(?, skew_high), updated_at=?"
            " WHERE target=? AND key=? AND run=?",
            (state, http_status, ai_contact_id, error_code, error, low, high, now, self.target,
             key, self.run_id)), None)

    def _queue(self, work: Callable[[], object], future: asyncio.Future | None) -> None:
        self._queued.append((work, future))
        if not self._commit_scheduled:
            self._commit_scheduled = True
            asyncio.get_running_loop().call_soon(self._commit_queued)

    def _commit_queued(self) -> None:
        """Everything queued during one turn of the event loop, in one transaction."""
        queued, self._queued = self._queued, []
        self._commit_scheduled = False
        results = []
        try:
            with self._transaction():
                results = [work() for work, _ in queued]
        except self._errors + (OSError, OutputFolderError) as error:
            failure = error if isinstance(error, OutputFolderError) else self._failure(
                error, "write")
            self.error = self.error or failure
            for _, future in queued:
                if future is not None and not future.done():
                    future.set_exception(failure)
            return
        for (_, future), result in zip(queued, results, strict=True):
            if future is not None and not future.done():
                future.set_result(result)

    def flush(self) -> None:
        """Commit what is queued now (outside the event loop's turn)."""
        if self._queued:
            self._commit_queued()
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """The end of a run's sending: give back every key it reserved but did not send,
        commit, and check that all it recorded is where the next run will look."""
        now = self._clock.time()
        self._queued.append((lambda: self._execute(
            "UPDATE requests SET state=?, updated_at=? WHERE run=? AND state=?",
            (RequestState.FAILED, now, self.run_id, RequestState.CLAIMED)), None))
        self._finished = True
        self.flush()
        self.check_identity()


def take_slot(next_at: float | None, recent: list[float], held_until: float, now: float,
              interval: float, count: int, window: float,
              horizon: float) -> tuple[float, float, list[float], float]:
    """The account's next slot from its budget (the next free time, the last ``count``
    slots, a 429's pause): at or after ``next_at`` and the pause, never before ``now``, and
    never a ``count + 1``-th slot within ``window`` seconds (a late wake-up must not crowd
    the account). Returns the slot, the next free time, the slots to keep and the pause.

    Times further ahead than they can be are stale (a clock set back, a test's virtual
    time) and start afresh: a next free time more than a minute (or ten intervals) ahead, a
    pause more than ``horizon`` (the longest this run allows). The team ledger does the same
    in SQL, by the database's clock (:mod:`importer.team`)."""
    if next_at is None or next_at > now + max(60.0, 10 * interval):
        next_at, recent = now, []
    if held_until > now + horizon:
        held_until = 0.0
    slot = max(next_at, now, held_until)
    if len(recent) >= count:
        slot = max(slot, recent[-count] + window)
    return slot, slot + interval, (recent + [slot])[-count:], held_until


class FileLedger(Ledger):
    """The ledger in a SQLite file on this machine. A run is alive while it holds an OS lock
    on its own file in ``<ledger>.runs/``; writes are group-committed (WAL, checkpoints in a
    background thread)."""

    _CHECKPOINT_SECONDS = 1.0
    path: Path  # its location is always its file

    def __init__(self, connection: sqlite3.Connection, path: Path, *, target: str,
                 folder: Path, policy: Policy, origin: str | None = None) -> None:
        self._db = connection
        super().__init__(location=path, target=target, folder=folder, policy=policy,
                         origin=origin)
        self._runs = Path(f"{path}.runs")
        self._lock: _RunLock | None = None  # taken by open(): a peek claims nothing
        self._identity = _file_identity(path)
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop,
                                              name="ledger-checkpoints", daemon=True)

    # open and peek take a file's path only (hence [override]): Ledger.open and Ledger.peek
    # take either kind of location and call the kind's own.
    @classmethod
    def open(cls, path: Path, *, target: str, folder: Path,  # type: ignore[override]
             policy: Policy = Policy(), origin: str | None = None) -> FileLedger:
        """Open (creating it if needed) the ledger file at ``path`` for one run."""
        try:
            private_folder(path.parent)
            if not path.exists():
                _create(path)
            connection = open_database(path, "ledger")
            connection.execute("PRAGMA busy_timeout=30000")
            migrate(connection, path)
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA wal_autocheckpoint=0")
            ledger = cls(connection, path, target=target, folder=folder, policy=policy,
                         origin=origin)
            ledger._lock = _RunLock(ledger._runs, ledger.run_id)
        except (OSError, sqlite3.Error) as error:
            raise OutputFolderError(f"{path}: cannot open the send ledger ({error});"
                                    " nothing was sent") from None
        try:
            ledger._settle_dead_runs()
        except sqlite3.Error as error:
            ledger.close()
            raise ledger._failure(error, "read") from None
        ledger._checkpointer.start()
        return ledger

    @classmethod
    def peek(cls, path: Path, *, target: str, folder: Path,  # type: ignore[override]
             policy: Policy, origin: str | None = None) -> FileLedger | None:
        """The ledger file for reading only (``validate``), or None if there is none yet."""
        if not path.exists():
            return None
        try:
            connection = open_database(path, "ledger")
            connection.execute("PRAGMA busy_timeout=30000")
            migrate(connection, path)
            return cls(connection, path, target=target, folder=folder, policy=policy,
                       origin=origin)
        except (OSError, sqlite3.Error) as error:
            raise OutputFolderError(f"{path}: cannot read the send ledger ({error})") from None

    def _execute(self, sql: str, params: tuple | list = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def _write_claims(self, claims: list[tuple[str, int, str, int]], now: float) -> None:
        self._db.executemany(_CLAIM, [
            (self.target, key, RequestState.CLAIMED, row, phone, attempts, self.folder,
             self.origin, self.run_id, now) for key, row, phone, attempts in claims])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            yield

    def _run_alive(self, run: str) -> bool:
        return _RunLock.alive(self._runs, run)

    def _failure(self, error: Exception, doing: str) -> OutputFolderError:
        if doing == "read":
            return OutputFolderError(f"{self.path}: the send ledger cannot be read ({error}):"
                                     " restore it from a backup; nothing more was sent")
        return OutputFolderError(f"{self.path}: cannot write the send ledger ({error})")

    def other_live_runs(self) -> int:
        try:
            names = [entry.stem for entry in self._runs.glob("*.lock")]
        except OSError:
            return 0
        return sum(name != self.run_id and _RunLock.alive(self._runs, name) for name in names)

    def reserve(self, interval: float, count: int = 1, window: float = 0.0,
                horizon: float = 3600.0) -> float:
        try:
            with self._transaction():
                now = self._clock.time()  # once the write lock is ours: another run's wait
                found = self._db.execute(
                    "SELECT next_at, recent, held_until FROM budget WHERE target=?",
                    (self.target,)).fetchone()
                slot, next_at, recent, held_until = take_slot(
                    None if found is None else found[0],
                    [] if found is None else json.loads(found[1]),
                    0.0 if found is None else found[2], now, interval, count, window, horizon)
                self._db.execute("INSERT OR REPLACE INTO budget VALUES (?, ?, ?, ?)",
                                 (self.target, next_at, json.dumps(recent), held_until))
        except sqlite3.Error as error:
            self.error = self.error or self._failure(error, "write")
            raise self.error from None
        return slot

    def hold_budget(self, until: float) -> None:
        self._queue(lambda: self._db.execute(
            "INSERT INTO budget (target, next_at, held_until) VALUES (?, 0, ?) ON CONFLICT"
            " (target) DO UPDATE SET held_until = max(held_until, excluded.held_until)",
            (self.target, until)), None)

    def check_identity(self) -> None:
        """Stop if the ledger file was deleted, replaced or moved since it was opened: this
        run's claims would go to a file nobody reads, and the next run would send again."""
        if _file_identity(self.path) != self._identity:
            self.error = self.error or LedgerMovedError(
                f"{self.path}: the send ledger was deleted, replaced or moved while the run"
                " was using it; stopping so that no customer is messaged twice (restore it"
                " and --resume)")
            raise self.error

    def _checkpoint_loop(self) -> None:
        """Fold the WAL into the database now and then, with its fsync, off the event loop.
        A checkpoint is housekeeping (the writer's own errors are what stop a run): one that
        fails is said once, as a warning, and tried again at the next turn."""
        db: sqlite3.Connection | None = None
        warned = False
        try:
            while not self._closing.wait(self._CHECKPOINT_SECONDS):
                try:
                    db = db or sqlite3.connect(self.path, isolation_level=None,
                                               check_same_thread=False)
                    self._checkpoint(db)
                except sqlite3.Error as error:
                    if not warned:
                        warned = True
                        log.warning("%s: folding the ledger's write-ahead log failed (%s);"
                                    " the run goes on and tries again", self.path, error)
        finally:
            if db is not None:
                db.close()

    @staticmethod
    def _checkpoint(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        try:
            if self._lock is not None and self.error is None and not self._finished:
                self.flush()
        finally:
            self._closing.set()
            if self._checkpointer.is_alive():
                self._checkpointer.join()
            self._db.close()
            if self._lock is not None:
                self._lock.release()


def _create(path: Path) -> None:
    """A new ledger, with its id and schema version."""
    create_database(path, LEDGER_APPLICATION_ID, _SCHEMA, {"id": uuid.uuid4().hex,
                                                    "schema": SCHEMA_VERSION})


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


def target_name(base_url: str = "", channel: str = "whatsapp", phone_id: str = "") -> str:
    """The account a request goes to, as the ledger names it: the channel and the phone ID.
    A WhatsApp Business phone number ID belongs to one business number worldwide (a WhatsApp
    Web ID is taken as the account's own), so the base URL, however it is spelt (a host's
    other name, a default port written out, case, Vambe's two documented hosts), is never
    part of it; the journal records it for information."""
    return json.dumps({"channel": channel, "phone_id": phone_id}, sort_keys=True)


def _target_from_v1(target: str) -> str:
    """A schema-1 target (base URL, channel, phone ID) as schema 2 names it."""
    found = json.loads(target)
    return target_name(channel=found.get("channel", "whatsapp"),
                       phone_id=str(found.get("phone_id", "")))


# Which of two records of one key a merge keeps: the one that protects the customer most.
_STRENGTH = ("CASE state WHEN 'failed' THEN 0 WHEN 'claimed' THEN 1 WHEN 'in_flight' THEN 2"
             " WHEN 'unknown' THEN 3 ELSE 4 END")


def migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Bring a ledger written by an earlier release to this schema, in place, in one
    transaction: never refused, never ignored, since it is the memory that protects
    customers. Schema 1 named targets by base URL too; the same key recorded under two
    spellings of one account is merged, keeping its most protective record (sent, then
    unknown, in flight, claimed, failed; the latest of equals)."""
    def version() -> str:
        found = connection.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        return found[0] if found else "1"

    connection.execute(_BUDGET_TABLE)  # the account's shared rate budget (new in schema 2)
    columns = {column[1] for column in connection.execute("PRAGMA table_info(requests)")}
    for name in ("skew_low", "skew_high"):  # the clock skew at sending, added in schema 2
        if columns and name not in columns:
            connection.execute(f"ALTER TABLE requests ADD COLUMN {name} REAL")
    if columns:
        connection.execute(_MESSAGES_INDEX)
    if "held_until" not in {column[1] for column in connection.execute(
            "PRAGMA table_info(budget)")}:
        connection.execute("DROP TABLE budget")  # its last slots and pause, added in schema 2
        connection.execute(_BUDGET_TABLE)
    if version() == SCHEMA_VERSION:
        return
    with connection:
        connection.execute("BEGIN IMMEDIATE")
        current = version()
        if current == SCHEMA_VERSION:
            return  # another run migrated it meanwhile
        if current != "1":
            raise OutputFolderError(f"{path}: a send ledger of schema {current}, written by a"
                                    " newer release of vambe-import: upgrade to use it")
        connection.create_function("v2_target", 1, _target_from_v1, deterministic=True)
        connection.execute(_REQUESTS_TABLE.replace("requests (", "requests_v2 (", 1))
        copied = ("key, state, row, phone, attempts, http_status, ai_contact_id, error_code,"
                  " error, has_message, message, sent_at, folder, run, updated_at")
        connection.execute(  # 0.1.0 told a run's folder by its path: that is its origin
            f"INSERT OR REPLACE INTO requests_v2 (target, origin, {copied})"
            f" SELECT v2_target(target), folder, {copied} FROM requests"
            f" ORDER BY {_STRENGTH}, updated_at")
        connection.execute("DROP TABLE requests")
        connection.execute("ALTER TABLE requests_v2 RENAME TO requests")
        for statement in _INDEXES:
            connection.execute(statement)
        connection.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                           (SCHEMA_VERSION,))


def account_pacer(rate: float, ledger: Ledger, clock: Clock,
                  horizon: float = 3600.0) -> Pacer | None:
    """A pacer for the account's other requests (stage and contact look-ups): they count
    against the same limit as the tickets, so they take their slots from the same budget in
    the ledger. None without a rate."""
    if not rate:
        return None
    return Pacer(rate, clock, shared=lambda interval, count, window: ledger.reserve(
        interval, count, window + ARRIVAL_JITTER, horizon))
