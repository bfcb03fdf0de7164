"""The team ledger: the send ledger in a PostgreSQL database, shared by every operator and
machine that sends to one account (docs/ledger-and-teams.md, "Teams").

Same states, same judgement and same group commits as the ledger file
(:class:`importer.ledger.Ledger`); what differs is what a file on one machine cannot do:

- **Liveness by lease.** OS locks do not cross machines: a run is alive while it renews its
  row in ``runs`` (every :data:`HEARTBEAT_SECONDS`, by the database's clock, from a thread of
  its own). A run whose lease is older than :data:`LEASE_SECONDS` is dead, and so is one on
  this host whose process is gone: its requests in flight become ``unknown`` for everyone,
  its reservations free, as for a killed run on one machine.
- **Claims across machines.** A claim batch takes a transaction-scoped advisory lock on the
  account, so two machines judging the same key take turns; it is committed (durably) before
  any of its requests goes out.
- **One rate budget, by the database's clock.** ``vambe_import_reserve`` takes the account's
  next slot in one statement (its own connection, ``synchronous_commit = off``: a slot lost
  in a crash costs nothing); machines' clocks never matter.
- **The schema is made on first use**, under an advisory lock, so two machines starting at
  once make it once; its version is in ``meta``.

psycopg 3 is an optional extra: ``pip install 'vambe-import[team]'``.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .codes import RequestState
from .exceptions import LedgerUnreachableError, OutputFolderError
from .ledger import _CLAIM, _PRIOR, Ledger, Policy, Prior, TeamURL

LEASE_SECONDS = 30.0  # a run whose lease is older than this is dead
HEARTBEAT_SECONDS = 5.0  # how often a live run renews its lease
SCHEMA_VERSION = "1"
# The ledger's own schema in the database: every connection works in it, whatever the
# user's search_path (a schema named after the user comes first by default: two operators
# would each get a ledger of their own in one database).
SCHEMA = "vambe_import"
# A transaction left open by a run that froze (a laptop asleep mid-commit) is ended by the
# server after this long, so it cannot hold the account's claims for hours; our own
# transactions last milliseconds.
IDLE_IN_TRANSACTION_SECONDS = 60
_SCHEMA_LOCK = 0x56424C47  # "VBLG": one advisory lock id for making the schema
_INSTALL = "pip install 'vambe-import[team]'"

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (name text PRIMARY KEY, value text NOT NULL)",
    """CREATE TABLE IF NOT EXISTS requests (
        target text NOT NULL,
        key text NOT NULL,
        state text NOT NULL,
        row integer NOT NULL,
        phone text NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        http_status integer,
        ai_contact_id text NOT NULL DEFAULT '',
        error_code text NOT NULL DEFAULT '',
        error text NOT NULL DEFAULT '',
        has_message integer NOT NULL DEFAULT 0,
        message text,
        sent_at double precision,
        skew_low double precision,
        skew_high double precision,
        folder text NOT NULL,
        origin text NOT NULL,
        run text NOT NULL,
        updated_at double precision NOT NULL,
        PRIMARY KEY (target, key))""",
    "CREATE INDEX IF NOT EXISTS requests_by_state ON requests (state)",
    "CREATE INDEX IF NOT EXISTS requests_by_send_time ON requests (target, sent_at)",
    "CREATE INDEX IF NOT EXISTS requests_by_run ON requests (run)",
    ("CREATE INDEX IF NOT EXISTS requests_with_messages ON requests (target, sent_at)"
     " WHERE has_message = 1"),
    # The account's next free slot and its last slots (seconds since the epoch, by the
    # database's clock).
    """CREATE TABLE IF NOT EXISTS budget (
        target text PRIMARY KEY,
        next_at double precision NOT NULL,
        recent double precision[] NOT NULL DEFAULT '{}',
        held_until double precision NOT NULL DEFAULT 0)""",
    # Each run's lease: alive while heartbeat_at is recent.
    """CREATE TABLE IF NOT EXISTS runs (
        run text PRIMARY KEY,
        target text NOT NULL,
        host text NOT NULL,
        pid integer NOT NULL,
        folder text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now())""",
    # importer.ledger.take_slot, in one statement, by the database's clock. Returns the slot
    # and how long from now it is.
    """CREATE OR REPLACE FUNCTION vambe_import_reserve(
        p_target text, p_interval double precision, p_count integer,
        p_window double precision, p_horizon double precision,
        OUT slot double precision, OUT wait double precision)
    LANGUAGE plpgsql SET search_path = vambe_import AS $$
    DECLARE
        now_at double precision;
        last double precision[];
        free_at double precision;
        held double precision;
    BEGIN
        INSERT INTO budget (target, next_at) VALUES (p_target, 0)
            ON CONFLICT (target) DO NOTHING;
        SELECT next_at, recent, held_until INTO free_at, last, held FROM budget
            WHERE target = p_target FOR UPDATE;
        now_at := extract(epoch FROM clock_timestamp());
        IF free_at > now_at + greatest(60, 10 * p_interval) THEN
            free_at := now_at;
            last := '{}';
        END IF;
        IF held > now_at + p_horizon THEN
            held := 0;
        END IF;
        slot := greatest(free_at, now_at, held);
        IF cardinality(last) >= p_count THEN
            slot := greatest(slot, last[cardinality(last) - p_count + 1] + p_window);
        END IF;
        last := last || slot;
        UPDATE budget SET next_at = slot + p_interval, held_until = held,
            recent = last[greatest(1, cardinality(last) - p_count + 1):]
            WHERE target = p_target;
        wait := slot - now_at;
    END $$""",
]


# importer.ledger's claim, for a whole batch: the same columns, cleared the same way.
_CLAIM_BATCH = (
    "INSERT INTO requests (target, state, folder, origin, run, updated_at, key, row, phone,"
    " attempts) SELECT %s, %s, %s, %s, %s, %s, batch.key, batch.row, batch.phone,"
    " batch.attempts FROM unnest(%s::text[], %s::integer[], %s::text[], %s::integer[])"
    " AS batch (key, row, phone, attempts)" + _CLAIM[_CLAIM.index(" ON CONFLICT"):])


def _psycopg() -> Any:
    """psycopg, or a one-line error saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise OutputFolderError(f"a team ledger (postgresql://) needs psycopg: {_INSTALL};"
                                " nothing was sent") from None
    return psycopg


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _database_error(url: TeamURL, error: Exception, doing: str = "use",
                    tail: str = "") -> OutputFolderError:
    """One line for a failure of the team ledger's database: unreachable (the connection
    failed or broke), locked too long by another run, or refused what was asked
    (permissions, a damaged schema)."""
    if getattr(error, "sqlstate", None) == "55P03":  # lock_not_available: lock_timeout
        return OutputFolderError(
            f"{url.display}: the team ledger stayed locked by another run longer than"
            f" timeout_seconds ({_first_line(error)}): a run that froze (a laptop asleep) holds"
            f" it until the server ends its transaction, within"
            f" {IDLE_IN_TRANSACTION_SECONDS} s; try again{tail}")
    if isinstance(error, _psycopg().OperationalError):
        return LedgerUnreachableError(f"team ledger unreachable: {url.display}:"
                                      f" {_first_line(error)}{tail}")
    return OutputFolderError(f"{url.display}: cannot {doing} the team ledger"
                             f" ({_first_line(error)}){tail}")


class TeamLedger(Ledger):
    """The send ledger in a PostgreSQL database (see the module)."""

    kind = "team"

    def __init__(self, connection: Any, url: TeamURL, *, target: str, folder: Path,
                 policy: Policy, origin: str | None = None, timeout: float = 30.0) -> None:
        psycopg = _psycopg()
        self._db = connection
        self._url = url
        self._timeout = timeout
        self._errors = (psycopg.Error,)
        self._alive_cache: dict[str, bool] = {}
        self._host = _this_machine()
        self._budget_db: Any = None
        self._leasing = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._registered = False
        self._renewed = time.monotonic()  # the lease's last renewal
        super().__init__(location=url, target=target, folder=folder, policy=policy,
                         origin=origin)

    # ------------------------------------------------------------ opening

    @classmethod
    def _connect(cls, url: TeamURL, timeout: float) -> Any:
        psycopg = _psycopg()
        try:
            connection = psycopg.connect(
                url, autocommit=True, application_name="vambe-import",
                connect_timeout=max(2, int(timeout)),
                # A database that stops answering (a network gone) fails a statement
                # within the timeout, never hangs the run.
                tcp_user_timeout=int(timeout * 1000), keepalives=1, keepalives_idle=5,
                keepalives_interval=2, keepalives_count=3)
        except psycopg.Error as error:
            raise _database_error(url, error, tail="; nothing was sent") from None
        try:
            # A lock another run holds longer than the timeout (a frozen laptop): an error
            # naming it, never a silent wait.
            connection.execute(
                f"SET search_path TO {SCHEMA}; SET lock_timeout = '{int(timeout * 1000)}ms';"
                f" SET idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION_SECONDS}s'")
        except psycopg.Error as error:
            connection.close()
            raise _database_error(url, error, tail="; nothing was sent") from None
        return connection

    # open and peek take a team ledger's URL only (hence [override]): Ledger.open and Ledger.peek
    # take either kind of location and call the kind's own.
    @classmethod
    def open(cls, url: TeamURL, *, target: str, folder: Path,  # type: ignore[override]
             policy: Policy = Policy(), origin: str | None = None,
             timeout: float = 30.0) -> TeamLedger:
        """Connect, make the schema if this is its first use, and register this run."""
        psycopg = _psycopg()
        connection = cls._connect(url, timeout)
        try:
            _make_schema(connection, url)
            ledger = cls(connection, url, target=target, folder=folder, policy=policy,
                         origin=origin, timeout=timeout)
            # Its own session for the budget and the lease (synchronous_commit off: a slot
            # or a heartbeat lost in a server crash costs nothing).
            ledger._budget_db = cls._connect(url, timeout)
            ledger._budget_db.execute("SET synchronous_commit = off")
            ledger._register()
            ledger._settle_dead_runs()
        except (psycopg.Error, OutputFolderError) as error:
            connection.close()
            if isinstance(error, OutputFolderError):
                raise
            raise _database_error(url, error, tail="; nothing was sent") from None
        ledger._heartbeat = threading.Thread(target=ledger._renew_lease, name="ledger-lease",
                                             daemon=True)
        ledger._heartbeat.start()
        return ledger

    @classmethod
    def peek(cls, url: TeamURL, *, target: str, folder: Path,  # type: ignore[override]
             policy: Policy, origin: str | None = None) -> TeamLedger | None:
        """The team ledger for reading only (``validate``), or None if its schema is not
        made yet."""
        psycopg = _psycopg()
        connection = cls._connect(url, 30.0)
        try:
            if connection.execute("SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname"
                                  " = %s)", (SCHEMA,)).fetchone()[0]:
                _check_schema(connection, url)
                return cls(connection, url, target=target, folder=folder, policy=policy,
                           origin=origin)
            connection.close()
            return None
        except psycopg.Error as error:
            connection.close()
            raise _database_error(url, error, "read") from None
        except OutputFolderError:
            connection.close()
            raise

    def _register(self) -> None:
        self._db.execute("INSERT INTO runs (run, target, host, pid, folder) VALUES"
                         " (%s, %s, %s, %s, %s)",
                         (self.run_id, self.target, self._host, os.getpid(), self.folder))
        self._registered = True
        self._renewed = time.monotonic()

    def _renew_lease(self) -> None:
        """Renew this run's lease until it closes, from a thread (a plan being written or a
        long wait keeps the run alive), on the budget's session (psycopg serializes the
        two). A renewal that fails is tried again; :meth:`check_identity` stops the run
        before its lease could expire."""
        while not self._leasing.wait(HEARTBEAT_SECONDS):
            try:
                self._budget_db.execute("UPDATE runs SET heartbeat_at = now() WHERE run = %s",
                                        (self.run_id,))
                self._renewed = time.monotonic()
            except self._errors:  # psycopg.Error: said by check_identity, in the run's thread
                continue

    # ------------------------------------------------------------ the interface

    @property
    def description(self) -> str:
        return f"{self.name} (team)"

    @property
    def index_name(self) -> str:
        return f"{self.name}#{self.id}"

    def _execute(self, sql: str, params: tuple | list = ()) -> Any:
        return self._db.execute(sql.replace("?", "%s"), params)

    def _priors(self, keys: list[str]) -> dict[str, Prior]:
        """One statement with one array, looked up by the primary key (with ``key = ANY``
        the planner scanned the account's whole index by send time)."""
        found = self._db.execute(
            f"SELECT key, {_PRIOR} FROM requests WHERE (target, key) IN"
            " (SELECT %s, wanted FROM unnest(%s::text[]) AS wanted)", (self.target, keys))
        return {key: Prior(RequestState(fields[0]), *fields[1:]) for key, *fields in found}

    def _write_claims(self, claims: list[tuple[str, int, str, int]], now: float) -> None:
        """The whole batch in one statement (one round trip, not one per key)."""
        if not claims:
            return
        keys, rows, phones, attempts = (list(column) for column in zip(*claims, strict=True))
        self._db.execute(_CLAIM_BATCH, (self.target, RequestState.CLAIMED.value, self.folder,
                                        self.origin, self.run_id, now, keys, rows, phones,
                                        attempts))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._alive_cache = {}  # liveness is read afresh in each transaction
        with self._db.transaction():
            yield

    def _serialize_claims(self) -> None:
        # Claims of one account take turns across machines (a claim judges, then writes:
        # two machines must not both judge a key free); held until the commit.
        self._db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                         (self.target,))

    def _run_alive(self, run: str) -> bool:
        if run not in self._alive_cache:
            found = self._db.execute(
                "SELECT host, pid, heartbeat_at > now() - make_interval(secs => %s)"
                " FROM runs WHERE run = %s", (LEASE_SECONDS, run)).fetchone()
            alive = found is not None and bool(found[2])
            if alive and found[0] == self._host and not _process_exists(found[1]):
                alive = False  # on this machine, a process that is gone is dead at once
            self._alive_cache[run] = alive
        return self._alive_cache[run]

    def held_many(self, keys: list[str]) -> dict:
        self._alive_cache = {}
        return super().held_many(keys)

    def _failure(self, error: Exception, doing: str) -> OutputFolderError:
        return _database_error(self._url, error, doing)

    def check_identity(self) -> None:
        """Stop before this run's lease could expire unrenewed: other runs would take it for
        dead and settle what it has in flight."""
        unrenewed = time.monotonic() - self._renewed
        if self.error is None and self._registered and unrenewed > LEASE_SECONDS / 2:
            self.error = LedgerUnreachableError(
                f"team ledger unreachable: {self.name}: this run could not renew its lease for"
                f" {unrenewed:.0f} s; stopping before other runs take it for dead")
        if self.error is not None:
            raise self.error

    def other_live_runs(self) -> int:
        try:
            found = self._db.execute(
                "SELECT host, pid FROM runs WHERE target = %s AND run <> %s"
                " AND heartbeat_at > now() - make_interval(secs => %s)",
                (self.target, self.run_id, LEASE_SECONDS)).fetchall()
        except self._errors:
            return 0
        return sum(host != self._host or _process_exists(pid) for host, pid in found)

    def reserve(self, interval: float, count: int = 1, window: float = 0.0,
                horizon: float = 3600.0) -> float:
        _, wait = self.reserve_slot(interval, count, window, horizon)
        return self._clock.time() + wait

    def reserve_slot(self, interval: float, count: int = 1, window: float = 0.0,
                     horizon: float = 3600.0) -> tuple[float, float]:
        """The slot by the database's clock, and how far ahead of now it is."""
        try:
            found = self._budget_db.execute(
                "SELECT slot, wait FROM vambe_import_reserve(%s, %s, %s, %s, %s)",
                (self.target, interval, count, window, horizon)).fetchone()
        except self._errors + (OutputFolderError,) as error:
            self.error = self.error or (error if isinstance(error, OutputFolderError)
                                        else self._failure(error, "write"))
            raise self.error from None
        return found[0], found[1]

    def hold_budget(self, until: float) -> None:
        ahead = until - self._clock.time()
        self._queue(lambda: self._db.execute(
            "INSERT INTO budget (target, next_at, held_until) VALUES"
            " (%s, 0, extract(epoch FROM clock_timestamp()) + %s) ON CONFLICT (target) DO"
            " UPDATE SET held_until = greatest(budget.held_until, excluded.held_until)",
            (self.target, ahead)), None)

    def finish(self) -> None:
        super().finish()
        try:
            if self._execute("SELECT value FROM meta WHERE name='id'").fetchone() is None:
                raise OutputFolderError(f"{self.name}: the team ledger was emptied while the"
                                        " run was using it; stopping (restore it and --resume)")
        except self._errors as error:
            self.error = self.error or self._failure(error, "read")
            raise self.error from None

    def close(self) -> None:
        try:
            if self._registered and self.error is None and not self._finished:
                self.flush()
        finally:
            self._leasing.set()
            if self._heartbeat is not None:
                self._heartbeat.join()
            try:
                if self._registered:  # what it left in flight is unknown for everyone now
                    self._db.execute("DELETE FROM runs WHERE run = %s", (self.run_id,))
            except self._errors:
                pass  # a lease not renewed expires by itself
            for connection in (self._db, self._budget_db):
                if connection is not None:
                    connection.close()


def _this_machine() -> str:
    """This machine, as the lease names it: its host name and machine id (two laptops may
    share a host name; the process check is only for runs on this very machine)."""
    for source in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            found = Path(source).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if found:
            return f"{socket.gethostname()}/{found}"
    return f"{socket.gethostname()}/{uuid.getnode():012x}"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _has(connection: Any, table: str) -> bool:
    """Whether the ledger's schema holds ``table`` (read from the catalog as of this
    statement: ``to_regclass`` may answer from a cache made before another machine made it)."""
    return connection.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s)",
        (SCHEMA, table)).fetchone()[0]


def _check_schema(connection: Any, url: TeamURL) -> None:
    """Refuse a database that holds tables of something else, or a newer release's ledger."""
    found = dict(connection.execute("SELECT name, value FROM meta").fetchall()
                 ) if _has(connection, "meta") else {}
    if found.get("application") != "vambe-import":
        raise OutputFolderError(f"{url.display}: its schema {SCHEMA} holds tables that are not"
                                " a vambe-import ledger; nothing was sent")
    if found.get("schema") != SCHEMA_VERSION:
        raise OutputFolderError(f"{url.display}: a team ledger of schema {found.get('schema')},"
                                " written by a newer release of vambe-import: upgrade to use"
                                " it; nothing was sent")


def _make_schema(connection: Any, url: TeamURL) -> None:
    """Make the schema on first use: under an advisory lock, so that two machines starting
    at once make it once."""
    if _has(connection, "meta"):
        _check_schema(connection, url)
        return
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if not _has(connection, "meta"):
            if connection.execute("SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname"
                                  " = %s)", (SCHEMA,)).fetchone()[0]:
                raise OutputFolderError(f"{url.display}: its schema {SCHEMA} holds tables"
                                        " that are not a vambe-import ledger; nothing was"
                                        " sent")
            if not connection.execute("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE"
                                      " nspname = %s)", (SCHEMA,)).fetchone()[0]:
                connection.execute(f"CREATE SCHEMA {SCHEMA}")
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute("INSERT INTO meta VALUES ('application', 'vambe-import'),"
                               " ('schema', %s), ('id', %s) ON CONFLICT DO NOTHING",
                               (SCHEMA_VERSION, uuid.uuid4().hex))
    _check_schema(connection, url)
