"""One account, on every machine: the team ledger on a real PostgreSQL server (issue 19).

"Laptops" are real processes with their own HOME and data folder, sharing only the team
ledger's URL, as operators on several machines do. The semantics the two ledgers share are
tested against both in tests/test_ledger.py; these are what only a team ledger has."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from importer.exceptions import LedgerUnreachableError
from importer.ledger import Ledger, TeamURL, target_name
from importer.sandbox import DEFAULT_API_KEY

from .conftest import PHONES, people, read_results, wait_until
from .postgres import PostgresServer

ACCOUNT = target_name(channel="whatsapp", phone_id="123456789")


@pytest.fixture
def ledger_kind() -> str:
    return "team"


def laptop(tmp_path: Path, name: str, config: Path, source: Path, *options: str,
           url: str | None = None) -> subprocess.Popen:
    """``vambe-import run`` on a "laptop": its own HOME, data folder and working directory;
    only the team ledger's URL in common."""
    home = tmp_path / name
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "VAMBE_IMPORT_DATA": str(home / "data"),
           "VAMBE_API_KEY": DEFAULT_API_KEY}
    if url is not None:
        env["VAMBE_IMPORT_LEDGER"] = url
    return subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
         "--quiet", "--out", str(home / "out"), *options],
        env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _write(tmp_path: Path, name: str, rows: list[list[str]]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(",".join(row) for row in rows) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- choosing the team ledger


@pytest.mark.parametrize(("where", "value"), [
    ("config", "postgresql://ops:secreto@127.0.0.1:1/vambe"),
    ("config", "postgresql://127.0.0.1:1/vambe?password=secreto"),
    ("env", "postgresql://ops:secreto@127.0.0.1:1/vambe"),
    ("env", "postgresql://127.0.0.1:1/vambe?sslpassword=secreto"),
])
def test_a_password_in_the_url_is_refused_and_never_echoed(write_config, write_csv, invoke,
                                                           monkeypatch, where, value):
    """Like api_key: a password never goes in the config (libpq reads PGPASSWORD, ~/.pgpass
    or a service file); refused before any connection, without repeating it."""
    if where == "config":
        config = write_config(ledger={"url": value})
    else:
        monkeypatch.setenv("VAMBE_IMPORT_LEDGER", value)
        config = write_config()
    result = invoke("validate", write_csv(people(1)), "--config", config)
    assert result.exit_code == 2
    assert "a password never goes in the config or the URL" in result.stderr
    assert "PGPASSWORD" in result.stderr and "secreto" not in result.output + result.stderr


def test_a_libpq_keyword_string_is_refused_never_taken_as_a_file(write_config, write_csv,
                                                                 invoke, monkeypatch, tmp_path):
    """Found by review: "host=... password=..." became a ledger file named after it in
    the working directory, its password printed on the Ledger line."""
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", "host=127.0.0.1 port=1 dbname=v password=secreto")
    result = invoke("validate", write_csv(people(1)), "--config", write_config())
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: VAMBE_IMPORT_LEDGER: looks like a PostgreSQL connection string (keyword=value):"
        " write the team ledger as a postgresql:// URL, never with a password; a ledger file"
        " needs a path\n")
    assert "secreto" not in result.output and not list(tmp_path.glob("host=*"))


@pytest.mark.parametrize(("settings", "message"), [
    ({"path": "postgresql://127.0.0.1:1/vambe"}, ("[ledger] path: a postgresql:// URL goes in"
                                                  " [ledger] url")),
    ({"url": "ledger.sqlite"}, "[ledger] url: must be a postgresql:// URL"),
    ({"url": "redis://127.0.0.1:1/0"}, ("[ledger] url: redis:// is not a ledger this release"
                                        " can use")),
    ({"url": "postgresql://127.0.0.1:1/v", "path": "l.sqlite"}, ("[ledger] path and url: set"
                                                                 " one of them")),
])
def test_ledger_settings_that_cannot_be_a_ledger_stop_with_exit_2(write_config, write_csv,
                                                                  invoke, settings, message):
    config = write_config(ledger=settings)
    result = invoke("validate", write_csv(people(1)), "--config", config)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {config.name}: {message}")
    assert result.stderr.count("\n") == 1


def test_run_names_the_team_ledger_without_credentials(sandbox, write_config, write_csv,
                                                       invoke, team_database, monkeypatch):
    url = TeamURL(team_database)
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", "")
    config = write_config(sandbox.url, ledger={"url": url})
    result = invoke("run", write_csv(people(3)), "--config", config)
    assert result.exit_code == 0, result.output
    assert f"Ledger: {url.display} (team)\n" in result.stdout
    assert "postgres@" not in result.stdout and url.display.startswith("postgresql://127.0.0.1:")


def test_without_psycopg_a_team_url_says_how_to_install_it(write_config, write_csv, invoke,
                                                           monkeypatch, team_database):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    result = invoke("validate", write_csv(people(1)), "--config", write_config())
    assert result.exit_code == 2
    assert result.stderr == ("Error: a team ledger (postgresql://) needs psycopg: pip install"
                             " 'vambe-import[team]'; nothing was sent\n")


def test_an_unreachable_team_ledger_stops_before_any_request(sandbox, write_config, write_csv,
                                                             invoke, monkeypatch, tmp_path):
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", "postgresql://127.0.0.1:1/vambe")
    result = invoke("run", write_csv(people(3)), "--config", write_config(sandbox.url))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: team ledger unreachable: postgresql://127.0.0.1:1/vambe: ")
    assert result.stderr.endswith("; nothing was sent\n")
    assert sandbox.state.tickets == []
    assert not (tmp_path / "clientes-import" / "results.csv").exists()


def test_the_ledger_keeps_to_its_own_schema_whatever_else_the_database_holds(
        sandbox, write_config, write_csv, invoke, team_database, monkeypatch):
    """Another application's requests, runs and budget tables, and a schema named after
    each operator (first in PostgreSQL's default search path), are left alone: two operators
    with schemas of their own still share one ledger (found by review: each got its own)."""
    import psycopg

    database = team_database.rsplit("/", 1)[1]
    with psycopg.connect(team_database, autocommit=True) as db:
        for table in ("requests", "runs", "budget"):
            db.execute(f"CREATE TABLE public.{table} (id integer)")
        for role in ("ana", "beto"):
            db.execute(f"CREATE ROLE {role} LOGIN")
            db.execute(f"CREATE SCHEMA {role} AUTHORIZATION {role}")
        db.execute(f"GRANT CREATE ON DATABASE {database} TO ana")  # she makes the ledger
    config = write_config(sandbox.url)
    for role in ("ana", "beto"):
        if role == "beto":  # as the README says a DBA does for the rest of the team
            with psycopg.connect(team_database, autocommit=True) as db:
                db.execute("GRANT USAGE ON SCHEMA vambe_import TO beto")
                db.execute("GRANT ALL ON ALL TABLES IN SCHEMA vambe_import TO beto")
        monkeypatch.setenv("VAMBE_IMPORT_LEDGER", team_database.replace("postgres@", f"{role}@"))
        result = invoke("run", write_csv(people(3)), "--config", config, "--out", role)
        assert result.exit_code == 0, result.output
    assert len(sandbox.state.tickets) == 3  # beto's run found ana's three customers sent
    assert [r["status"] for r in read_results(Path("beto"))] == ["duplicate"] * 3
    with psycopg.connect(team_database, autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM public.requests").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM vambe_import.requests").fetchone()[0] == 3


def test_a_vambe_import_schema_holding_something_else_is_refused(write_config, write_csv,
                                                                 invoke, team_database):
    import psycopg

    with psycopg.connect(team_database, autocommit=True) as db:
        db.execute("CREATE SCHEMA vambe_import; CREATE TABLE vambe_import.otra (id integer)")
    result = invoke("validate", write_csv(people(1)), "--config", write_config())
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {TeamURL(team_database).display}: its schema"
                             " vambe_import holds tables that are not a vambe-import ledger;"
                             " nothing was sent\n")


# ---------------------------------------------------------------- the schema, leases, budget


def test_machines_starting_at_once_make_the_schema_once(team_database, tmp_path):
    """Eight runs opening a new team ledger at the same moment: one schema, one ledger id."""
    url, opened, failures = TeamURL(team_database), [], []
    start = threading.Barrier(8)

    def open_one(n: int) -> None:
        start.wait()
        try:
            opened.append(Ledger.open(url, target=ACCOUNT, folder=tmp_path / f"r{n}"))
        except Exception as error:  # noqa: BLE001 (collected, asserted below)
            failures.append(error)

    threads = [threading.Thread(target=open_one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert failures == []
        assert len({ledger.id for ledger in opened}) == 1 and len(opened) == 8
        assert opened[0].other_live_runs() == 7
    finally:
        for ledger in opened:
            ledger.close()


def _claim_and_begin(ledger: Ledger, keys: list[str], begun: int) -> list:
    async def work() -> list:
        verdicts = await ledger.claim([(key, n + 2, PHONES[n]) for n, key in enumerate(keys)])
        for key in keys[:begun]:
            await ledger.begin(key, False, None)
        ledger.flush()
        return verdicts

    return asyncio.run(work())


def test_a_run_on_another_machine_is_alive_while_its_lease_is_renewed(team_database, tmp_path):
    """OS locks do not cross machines: a run on another host holds its keys while its lease
    is fresh; once it is older than 30 s the run is dead, its request in flight unknown and
    its reservation free, for everyone."""
    import psycopg

    url = TeamURL(team_database)
    other = Ledger.open(url, target=ACCOUNT, folder=tmp_path / "laptop-2")
    assert _claim_and_begin(other, ["k1", "k2"], begun=1) == [None, None]
    other._leasing.set()  # "the other machine" renews its lease no more (it is ours to age)
    other._heartbeat.join()
    with psycopg.connect(team_database, autocommit=True) as db:
        db.execute("SET search_path TO vambe_import")
        db.execute("UPDATE runs SET host = 'laptop-2' WHERE run = %s", (other.run_id,))
        here = Ledger.open(url, target=ACCOUNT, folder=tmp_path / "laptop-1")
        try:
            held = here.held_many(["k1", "k2"])
            assert {key: (h.status, h.error_code) for key, h in held.items()} == {
                "k1": ("skipped", "in_progress"), "k2": ("skipped", "in_progress")}
        finally:
            here.close()
        db.execute("UPDATE runs SET heartbeat_at = now() - interval '31 seconds'"
                   " WHERE run = %s", (other.run_id,))
        later = Ledger.open(url, target=ACCOUNT, folder=tmp_path / "laptop-3")
        try:
            assert dict(db.execute("SELECT key, state FROM requests").fetchall()) == {
                "k1": "unknown", "k2": "failed"}
            assert _claim_and_begin(later, ["k1", "k2"], begun=0)[1] is None
        finally:
            later.close()
    other._db.close()  # the "other machine", gone
    other._budget_db.close()


def test_slots_are_one_interval_apart_and_never_crowd_a_window(team_database, tmp_path):
    """The account's slots, by the database's clock, from two runs in turn: 1/R apart, and
    never R + 1 of them in the window (R in any one second, with the pacer's 2% margin);
    a 429's pause held by one run holds the other."""
    url = TeamURL(team_database)
    first = Ledger.open(url, target=ACCOUNT, folder=tmp_path / "a")
    second = Ledger.open(url, target=ACCOUNT, folder=tmp_path / "b")
    try:
        slots = [ledger.reserve_slot(0.1, 10, 1.02)[0]
                 for ledger in [first, second] * 20]
        assert all(later - earlier >= 0.1 - 1e-6 for earlier, later in itertools.pairwise(slots))
        assert all(slots[n + 10] - slots[n] >= 1.02 - 1e-6 for n in range(len(slots) - 10))

        async def hold() -> None:
            first.hold_budget(first._clock.time() + 60)
            await asyncio.sleep(0)

        asyncio.run(hold())
        _, wait = second.reserve_slot(0.1, 10, 1.02)
        assert wait > 55
    finally:
        first.close()
        second.close()


def test_a_run_that_cannot_renew_its_lease_stops_before_others_take_it_for_dead(
        team_database, tmp_path):
    ledger = Ledger.open(TeamURL(team_database), target=ACCOUNT, folder=tmp_path / "a")
    try:
        ledger._renewed -= 16  # the heartbeat failed for half a lease
        with pytest.raises(LedgerUnreachableError) as stopped:
            _claim_and_begin(ledger, ["k1"], begun=0)
        assert str(stopped.value).startswith(
            f"team ledger unreachable: {TeamURL(team_database).display}: this run could not"
            " renew its lease for 16 s; stopping before other runs take it for dead")
    finally:
        ledger.close()


def test_a_lock_held_by_a_frozen_run_stops_the_next_with_one_line(
        sandbox, write_config, write_csv, invoke, team_database):
    """Found by review: a laptop frozen inside a transaction made every other laptop wait
    silently (until the server dropped it, hours later)."""
    import psycopg

    Ledger.open(TeamURL(team_database), target=ACCOUNT, folder=Path("x")).close()
    config = write_config(sandbox.url, api={"timeout_seconds": 1})
    with psycopg.connect(team_database) as frozen:  # a transaction left open
        frozen.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (ACCOUNT,))
        result = invoke("run", write_csv(people(3)), "--config", config)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        f"Error: {TeamURL(team_database).display}: the team ledger stayed locked by another"
        " run longer than timeout_seconds (")
    assert result.stderr.count("\n") == 1 and sandbox.state.tickets == []


# ---------------------------------------------------------------- laptops


def test_four_laptops_on_overlapping_lists_give_one_ticket_per_customer(
        make_sandbox, write_config, tmp_path, team_database):
    """Issue 19, failure 3, replayed: four machines, one team ledger, lists overlapping by
    half: exactly one ticket per customer; every row of every report says why."""
    server = make_sandbox(latency=0.01, rate_limit=40)
    config = write_config(server.url, api={"rate_limit_per_second": 40, "max_concurrency": 4,
                                           "max_throttle_seconds": 60})
    lists = [_write(tmp_path, f"lista-{n}.csv", people(30, start=n * 15)) for n in range(4)]
    runs = [laptop(tmp_path, f"laptop-{n}", config, lists[n], url=team_database)
            for n in range(4)]
    for run in runs:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode in (0, 5), stderr  # 5: a row another laptop was sending
    per_phone = server.state.tickets_per_phone()
    assert len(per_phone) == 75 and set(per_phone.values()) == {1}
    statuses = Counter(row["status"] for n in range(4)
                       for row in read_results(tmp_path / f"laptop-{n}" / "out"))
    assert sum(statuses.values()) == 120 and statuses["sent"] == 75
    assert set(statuses) <= {"sent", "duplicate", "skipped"}


def test_a_laptop_killed_mid_run_leaves_its_requests_unknown_for_the_others(
        make_sandbox, write_config, tmp_path, team_database):
    """kill -9 on one laptop: what it had in flight is unknown to the next laptop (never sent
    again without --retry-unknown); what it had only reserved is sent."""
    server = make_sandbox(latency=0.05)
    config = write_config(server.url, api={"rate_limit_per_second": 0, "max_concurrency": 4,
                                           "timeout_seconds": 120})
    source = _write(tmp_path, "lista.csv", people(40))
    server.state.paused = True  # requests wait in flight
    first = laptop(tmp_path, "laptop-1", config, source, url=team_database)
    try:
        wait_until(lambda: server.state.active >= 4, limit=60)
    finally:
        first.kill()
        first.communicate(timeout=30)
        server.state.paused = False
    server.state.wait_idle()
    second = laptop(tmp_path, "laptop-2", config, source, url=team_database)
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 5, stderr  # some rows unknown
    results = read_results(tmp_path / "laptop-2" / "out")
    unknown = [row for row in results if row["status"] == "unknown"]
    assert len(unknown) == 4
    assert all("stopped while" in row["error"] for row in unknown), unknown
    assert Counter(row["status"] for row in results) == Counter({"sent": 36, "unknown": 4})
    assert set(server.state.tickets_per_phone().values()) == {1}
    assert len(server.state.tickets_per_phone()) == 40


def test_the_database_stopped_mid_run_stops_sending_and_resume_completes(
        make_sandbox, write_config, tmp_path):
    """The team ledger gone mid-run: no request goes out without a committed claim, the run
    stops with exit 4 naming it and writes its reports; --resume, once the database is back,
    finishes with no customer twice."""
    try:
        database = PostgresServer.start()
    except Exception as error:  # noqa: BLE001 (the session's server started: this must too)
        pytest.fail(f"a second PostgreSQL server did not start: {error}")
    try:
        url = database.new_database()
        server = make_sandbox(latency=0.02)
        config = write_config(server.url, api={"rate_limit_per_second": 20,
                                               "max_concurrency": 2, "timeout_seconds": 10})
        source = _write(tmp_path, "lista.csv", people(100))
        run = laptop(tmp_path, "laptop", config, source, url=url)
        wait_until(lambda: len(server.state.tickets) >= 10, limit=60)
        database.stop(remove=False)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 4, stderr
        assert f"team ledger unreachable: {TeamURL(url).display}" in stderr
        out = tmp_path / "laptop" / "out"
        assert len(read_results(out)) == 100
        answered = {r["phone"] for r in read_results(out) if r["status"] == "sent"}
        sent_before = len(server.state.tickets)
        assert sent_before < 100
        database.restart()
        again = laptop(tmp_path, "laptop", config, source, "--resume", url=url)
        _, stderr = again.communicate(timeout=120)
        assert again.returncode in (0, 1), stderr  # 1: requests in flight when it stopped
        per_phone = server.state.tickets_per_phone()
        assert len(per_phone) == 100 and set(per_phone.values()) == {1}
        statuses = Counter(row["status"] for row in read_results(out))
        assert statuses["sent"] + statuses["unknown"] == 100
        # what the API answered before the database went is still sent (found by review: the
        # ledger, which could not record it, made it unknown, and --retry-unknown resent it)
        assert {r["phone"] for r in read_results(out) if r["status"] == "sent"} >= answered
        if statuses["unknown"]:  # settled against the account, never sent again
            settle = subprocess.run(
                [sys.executable, "-m", "importer", "reconcile", str(out), "--config",
                 str(config)], env={**os.environ, "VAMBE_IMPORT_LEDGER": url,
                                    "VAMBE_API_KEY": DEFAULT_API_KEY},
                capture_output=True, text=True, timeout=120, check=False)
            assert settle.returncode == 0, settle.stderr
        assert Counter(row["status"] for row in read_results(out)) == Counter({"sent": 100})
        assert set(server.state.tickets_per_phone().values()) == {1}
    finally:
        database.stop()
