"""One account, however its URL is spelt, and an upgrade that forgets nothing.

``tests/fixtures/release-0.1.0`` holds a ledger and a run folder written by release 0.1.0
(see its README): the ledger names the same account twice (two spellings of the sandbox's
URL), and every key of the first run is in it twice.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from importer.ledger import target_name

from .conftest import people, read_results

FIXTURE = Path(__file__).parent / "fixtures" / "release-0.1.0"


@pytest.fixture
def old_release(tmp_path: Path, ledger: Path, monkeypatch) -> Path:
    """The fixture's ledger as this test's ledger, and its run folder in ``tmp_path``."""
    ledger.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / "ledger.sqlite", ledger)
    shutil.copytree(FIXTURE / "run-a", tmp_path / "run-a")
    shutil.copy(FIXTURE / "people.csv", tmp_path / "people.csv")
    return tmp_path


def _ledger_rows(ledger: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(ledger) as db:
        return db.execute("SELECT target, key, state FROM requests ORDER BY key").fetchall()


def test_a_ledger_of_the_earlier_release_is_migrated_in_place_keeping_every_protection(
        sandbox, write_config, invoke, old_release, ledger):
    """Schema 1 -> 2: one target for the account, each key once, its most protective
    record kept (sent over unknown, whichever spelling recorded it); nothing is lost."""
    with sqlite3.connect(ledger) as db:
        before = db.execute("SELECT key, state FROM requests").fetchall()
    strongest: dict[str, str] = {}
    for key, state in before:
        if strongest.get(key) != "sent":
            strongest[key] = state
    assert len(before) > len(strongest)  # the fixture holds keys twice
    config = write_config(sandbox.url, message={"content": "Hola {Nombre}"},
                          columns={"email": "Correo"})
    result = invoke("validate", old_release / "people.csv", "--config", config, "--out", "v")
    assert result.exit_code in (0, 1), result.output
    rows = _ledger_rows(ledger)
    account = target_name(channel="whatsapp", phone_id="123456789")
    assert {target for target, _, _ in rows} == {account}
    assert {key: state for _, key, state in rows} == strongest
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT value FROM meta WHERE name='schema'").fetchone() == ("2",)


@pytest.mark.parametrize("spelling", ["http://localhost:{port}", "HTTP://127.0.0.1:{port}/",
                                      "http://127.0.0.1:0{port}", "https://api.vambe.me"])
def test_another_spelling_of_the_account_sends_nobody_twice(sandbox, write_config, write_csv,
                                                            invoke, spelling):
    """The same account written another way (another name for the host, a case, a slash, a
    leading zero in the port, Vambe's other documented host): a second folder's run sends
    nobody again; the ledger says they were sent before."""
    source = write_csv(people(8))
    first = write_config(sandbox.url)
    assert invoke("run", source, "--config", first, "--out", "uno").exit_code == 0
    port = sandbox.url.rsplit(":", 1)[1]
    other = write_config(spelling.format(port=port), name="otro.toml")
    result = invoke("validate", source, "--config", other, "--out", "dos", api_key=None)
    assert result.exit_code == 0, result.output  # duplicates of rows sent count as done
    assert Counter(r["error_code"] for r in read_results(Path("dos"))) == {"sent_before": 8}
    if spelling.startswith("https://"):
        return  # no sandbox there: validate is the proof
    again = invoke("run", source, "--config", other, "--out", "dos")
    assert again.exit_code == 0, again.output
    assert len(sandbox.state.tickets) == 8


def test_an_output_folder_of_the_earlier_release_is_reported_reconciled_and_resumed(
        sandbox, write_config, invoke, old_release, ledger):
    """run-a (schema-1 journal: a --limit run with one unknown row) is reconciled against
    the account without --replan; --resume says it needs --replan; --resume --replan
    finishes it, sending only customers the ledger never recorded."""
    config = write_config(sandbox.url, message={"content": "Hola {Nombre}"})
    reconciled = invoke("reconcile", "--out", old_release / "run-a", "--config", config)
    assert reconciled.exit_code in (0, 5), reconciled.output
    rows = read_results(old_release / "run-a")
    assert [r["row"] for r in rows] == ["2", "3", "4", "5", "6", "7"]
    refused = invoke("run", old_release / "people.csv", "--config", config, "--out",
                     old_release / "run-a", "--resume")
    assert refused.exit_code == 2
    assert "--replan" in refused.stderr
    done = invoke("run", old_release / "people.csv", "--config", config, "--out",
                  old_release / "run-a", "--resume", "--replan")
    assert done.exit_code in (0, 5), done.output
    sent_now = {f"+{digits}" for digits in sandbox.state.tickets_per_phone()}
    assert max(sandbox.state.tickets_per_phone().values(), default=1) == 1
    # the ledger recorded every one of the six customers (sent or unknown) in 0.1.0
    assert sent_now == set()


@pytest.mark.parametrize("value", ["sqlite:///x.db", "mysql://db.example.com/vambe"])
def test_a_url_as_ledger_is_refused_never_taken_as_a_file(write_config, write_csv, invoke,
                                                          monkeypatch, tmp_path, value):
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", value)
    result = invoke("validate", write_csv(people(2)), "--config", write_config())
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: VAMBE_IMPORT_LEDGER: ")
    assert "is not a ledger this release can use" in result.stderr
    assert not any(tmp_path.glob("mysql*")) and not any(tmp_path.glob("sqlite*"))


def test_a_second_ledger_for_one_account_stops_before_sending(sandbox, write_config, write_csv,
                                                              invoke, monkeypatch, tmp_path):
    """Two VAMBE_IMPORT_LEDGER paths on one machine (issue 19, failure 2): the second run,
    without a terminal, stops with exit 2 naming the first ledger, nothing sent; a person
    at a terminal is told in the plan; [ledger] others_ok = true goes on as told."""
    source = write_csv(people(5))
    config = write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--out", "uno").exit_code == 0
    first = Path(str(tmp_path / "ledger" / "ledger.sqlite"))
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", str(tmp_path / "otro.sqlite"))
    refused = invoke("run", source, "--config", config, "--out", "dos")
    assert refused.exit_code == 2
    assert refused.stderr.startswith(f"Error: another send ledger on this machine, {first},")
    assert len(sandbox.state.tickets) == 5

    from importer import load_config, run_import
    from importer.sandbox import DEFAULT_API_KEY

    told = []
    summary = run_import(source, load_config(config), api_key=DEFAULT_API_KEY,
                         out_dir=tmp_path / "tres", interactive=True, handle_signals=False,
                         confirm=lambda plan: told.append(plan.describe()) and False)
    assert summary.stopped == "declined"
    assert f"another send ledger on this machine, {first}" in told[0]
    allowed = write_config(sandbox.url, name="permitido.toml", ledger={"others_ok": True})
    assert invoke("run", source, "--config", allowed, "--out", "cuatro").exit_code == 0
    assert len(sandbox.state.tickets) == 10  # as the operator chose: one ledger per account


def test_runs_sharing_a_ledger_share_the_account_rate(tmp_path, fake_clock):
    """Two runs (two ledger connections, as two terminals) reserve the account's slots in
    turn, 1/R apart whichever asks; a 429's pause held by one holds the other too."""
    import asyncio

    from importer.ledger import Ledger
    from importer.timing import Pacer

    path = tmp_path / "shared.sqlite"
    account = target_name(channel="whatsapp", phone_id="123456789")
    first = Ledger.open(path, target=account, folder=tmp_path / "a")
    second = Ledger.open(path, target=account, folder=tmp_path / "b")
    try:
        start = fake_clock.time()
        slots = [ledger.reserve(0.1) for ledger in (first, second, first, second, first)]
        assert [round(slot - start, 6) for slot in slots] == [0.0, 0.1, 0.2, 0.3, 0.4]

        async def hold_and_reserve() -> float:
            second.hold_budget(start + 5.0)
            await asyncio.sleep(0)  # the group commit
            return first.reserve(0.1)

        assert round(asyncio.run(hold_and_reserve()) - start, 6) == 5.0

        async def paced() -> list[float]:
            pacers = [Pacer(10, fake_clock, shared=ledger.reserve) for ledger in (first, second)]
            moments = []
            for n in range(6):
                await pacers[n % 2].wait()
                moments.append(round(fake_clock.time() - start, 3))
            return moments

        assert asyncio.run(paced()) == [5.1, 5.2, 5.3, 5.4, 5.5, 5.6]
    finally:
        first.close()
        second.close()


def test_the_plan_says_how_many_runs_share_the_rate(sandbox, write_config, write_csv, tmp_path,
                                                    ledger):
    from importer import load_config, run_import
    from importer.ledger import Ledger
    from importer.sandbox import DEFAULT_API_KEY

    account = target_name(channel="whatsapp", phone_id="123456789")
    other = Ledger.open(ledger, target=account, folder=tmp_path / "otra")  # a live run
    try:
        told = []
        run_import(write_csv(people(2)), load_config(write_config(sandbox.url)),
                   api_key=DEFAULT_API_KEY, out_dir=tmp_path / "out", handle_signals=False,
                   confirm=lambda plan: told.append(plan.describe()) and False)
    finally:
        other.close()
    assert "1 other run is using this ledger now: they share the account's 200/s" in told[0]


def test_a_migrated_ledger_sends_and_never_resends_an_upgraded_runs_own_rows(
        sandbox, write_config, write_csv, invoke, old_release, ledger):
    """Found by review: the merge credits a key sent by both 0.1.0 runs to one folder only,
    so with across_runs_days = 0 (or 30 days later) the other run's resume re-sent it. Its
    journal is its own record: nobody it reached is sent again. And a migrated ledger sends
    (its shared rate budget is created by the migration)."""
    config = write_config(sandbox.url, message={"content": "Hola {Nombre}"},
                          dedupe={"across_runs_days": 0})
    done = invoke("run", old_release / "people.csv", "--config", config, "--out",
                  old_release / "run-a", "--resume", "--replan")
    assert done.exit_code in (0, 5), done.output
    assert sandbox.state.tickets == []
    statuses = {r["row"]: r["status"] for r in read_results(old_release / "run-a")}
    assert statuses == {"2": "unknown", "3": "sent", "4": "sent", "5": "sent",
                        "6": "unknown", "7": "unknown"}
    fresh = write_csv(people(3, start=50), name="nuevos.csv")
    assert invoke("run", fresh, "--config", config, "--out", "nuevos").exit_code == 0
    assert len(sandbox.state.tickets) == 3


def test_the_index_of_ledgers_is_written_before_the_first_request_and_never_guessed(
        sandbox, write_config, write_csv, invoke, monkeypatch, tmp_path, ledger):
    """Found by review: a run killed mid-way had left no trace in the index, and an index that
    could not be read was taken as empty and overwritten."""
    from importer import load_config, run_import
    from importer.sandbox import DEFAULT_API_KEY

    index = tmp_path / "data" / "ledgers.json"
    seen = []
    run_import(write_csv(people(2)), load_config(write_config(sandbox.url)),
               api_key=DEFAULT_API_KEY, out_dir=tmp_path / "uno", handle_signals=False,
               on_result=lambda result: seen.append(index.read_text(encoding="utf-8")))
    assert str(ledger) in seen[0]  # there when the first result came in
    index.write_text('{"x": [', encoding="utf-8")
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", str(tmp_path / "otro.sqlite"))
    refused = invoke("run", write_csv(people(2, start=10), name="b.csv"), "--config",
                     write_config(sandbox.url), "--out", "dos")
    assert refused.exit_code == 2
    assert "the index of send ledgers cannot be read" in refused.stderr
    assert index.read_text(encoding="utf-8") == '{"x": ['
    assert len(sandbox.state.tickets) == 2


@pytest.mark.parametrize("value", [" postgresql://127.0.0.1:1/vambe",
                                   "\tPOSTGRES://127.0.0.1:1/vambe"])
def test_a_url_with_spaces_around_it_is_still_a_url(write_config, write_csv, invoke,
                                                    monkeypatch, tmp_path, value):
    """A team ledger's URL, however written (nothing listens on port 1: unreachable)."""
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", value)
    result = invoke("validate", write_csv(people(1)), "--config", write_config())
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: team ledger unreachable: postgresql://127.0.0.1:1/vambe: ")
    assert [path.name for path in tmp_path.iterdir() if "gres" in path.name.lower()] == []


def test_a_pause_longer_than_an_hour_holds_every_run(tmp_path, fake_clock):
    """Found by review: a Retry-After over an hour (max_throttle_seconds allows a day) was
    taken for a stale reservation and overwritten by the other run."""
    import asyncio

    from importer.ledger import Ledger

    account = target_name(channel="whatsapp", phone_id="123456789")
    first = Ledger.open(tmp_path / "l.sqlite", target=account, folder=tmp_path / "a")
    second = Ledger.open(tmp_path / "l.sqlite", target=account, folder=tmp_path / "b")
    try:
        start = fake_clock.time()

        async def hold() -> None:
            first.hold_budget(start + 5000)
            await asyncio.sleep(0)

        first.reserve(0.1)
        asyncio.run(hold())
        assert second.reserve(0.1, horizon=86400 + 3600) == start + 5000
    finally:
        first.close()
        second.close()


def test_a_budget_without_its_last_slots_gains_them(tmp_path, fake_clock):
    """A ledger file written before the budget kept its last slots (one second's window) is
    brought up to date when opened, and reserves as a new one does."""
    import sqlite3

    from importer.ledger import Ledger

    account = target_name(channel="whatsapp", phone_id="123456789")
    path = tmp_path / "l.sqlite"
    Ledger.open(path, target=account, folder=tmp_path / "a").close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE budget")
        db.execute("CREATE TABLE budget (target TEXT PRIMARY KEY, next_at REAL NOT NULL)"
                   " WITHOUT ROWID")
    ledger = Ledger.open(path, target=account, folder=tmp_path / "a")
    try:
        start = fake_clock.time()
        slots = [round(ledger.reserve(0.1, 2, 0.5) - start, 6) for _ in range(4)]
        assert slots == [0.0, 0.1, 0.5, 0.6]  # never a third slot within 0.5 s
    finally:
        ledger.close()


def test_a_planned_folder_of_an_earlier_build_resumes_and_reports_without_names(
        sandbox, write_config, write_csv, invoke, tmp_path):
    """A 0.2 development journal (a plan without the report columns results.csv now shows)
    gains them on --resume: its rows are sent once and reported under their own numbers,
    the phone as written empty where the plan never stored it."""
    source = write_csv(people(3))
    config = write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--limit", "1").exit_code == 5
    journal = sqlite3.connect(tmp_path / "clientes-import" / "journal.sqlite")
    for column in ("origin", "written", "phone_column", "name"):
        journal.execute(f"ALTER TABLE plan DROP COLUMN {column}")
    journal.commit()
    journal.close()
    resumed = invoke("run", source, "--config", config, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert max(sandbox.state.tickets_per_phone().values()) == 1
    assert len(sandbox.state.tickets) == 3
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["row"], r["status"], r["name"]) for r in rows] == [
        ("2", "sent", ""), ("3", "sent", ""), ("4", "sent", "")]
