"""Never twice, whatever the operator does: the cases that once messaged customers twice or
reached people who had opted out, replayed through real processes against the sandbox.

The ledger's semantics suite: every test runs against the ledger file and against the team
ledger on a real PostgreSQL server (a fresh database each), but for the few that are about
a file."""

from __future__ import annotations

import csv
import sqlite3
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from .conftest import PHONES, STAGE_NEW, people, read_errors, read_results, start_run, wait_until


@pytest.fixture(params=["file", "team"])
def ledger_kind(request) -> str:
    return request.param


FILE_ONLY = pytest.mark.parametrize("ledger_kind", ["file"])


def _statuses(out: Path) -> Counter:
    return Counter(row["status"] for row in read_results(out))


def _once_each(server, count: int) -> None:
    """The sandbox opened exactly one ticket for each of ``count`` customers."""
    per_phone = server.state.tickets_per_phone()
    assert len(per_phone) == count
    assert set(per_phone.values()) == {1}


def _slow(make_sandbox, write_config, **api):
    """A sandbox that answers after 0.05 s, and a run whose requests may wait long in flight
    (a test may hold them with ``paused`` while a loaded machine starts other processes)."""
    server = make_sandbox(latency=0.05)
    config = write_config(server.url, api={"rate_limit_per_second": 0, "max_concurrency": 4,
                                           "timeout_seconds": 120, **api})
    return server, config


# ---------------------------------------------------------------- 1. two terminals


def test_second_run_into_a_folder_in_use_exits_2_at_once(make_sandbox, write_config, write_csv,
                                                         invoke, tmp_path):
    """A double click: the second run, --resume or validate on a busy folder stops at once."""
    server, config = _slow(make_sandbox, write_config)
    source, out = write_csv(people(60)), tmp_path / "out"
    server.state.paused = True  # the first run's requests wait in flight
    first = start_run(config, source, "--out", out)
    try:
        wait_until(lambda: server.state.active >= 1)
        for options in ([], ["--resume"]):
            second = start_run(config, source, "--out", out, *options)
            _, stderr = second.communicate(timeout=60)
            assert second.returncode == 2
            assert stderr == (f"Error: another run (PID {first.pid}) is using {out}; wait for it"
                              " to end, or choose another --out folder\n")
        checked = invoke("validate", source, "--config", config, "--out", out)
        assert checked.exit_code == 2 and "is using" in checked.stderr
    finally:
        server.state.paused = False
        first.communicate(timeout=60)
    assert first.returncode == 0
    _once_each(server, 60)


def test_two_runs_into_different_folders_send_each_customer_once(make_sandbox, write_config,
                                                                 write_csv, tmp_path):
    """Two terminals, two folders, one file: every key is claimed once in the ledger, so the
    account gets one ticket per customer, and every row of both reports says why."""
    server, config = _slow(make_sandbox, write_config)
    source = write_csv(people(60))
    runs = [start_run(config, source, "--out", tmp_path / name) for name in ("a", "b")]
    for process in runs:
        _, stderr = process.communicate(timeout=60)
        assert process.returncode in (0, 5), stderr
    _once_each(server, 60)
    results = {name: {r["phone"]: r for r in read_results(tmp_path / name)} for name in "ab"}
    for phone in PHONES[:60]:
        a, b = results["a"][phone], results["b"][phone]
        assert sorted([a["status"], b["status"]]) in (
            ["duplicate", "sent"], ["sent", "skipped"]), (a, b)
        held = a if a["status"] != "sent" else b
        assert held["error_code"] in ("sent_before", "in_progress")
    for name, process in zip("ab", runs, strict=True):
        # exit 0 only when every row was sent or is a duplicate of one that was
        assert process.returncode == (5 if _statuses(tmp_path / name)["skipped"] else 0)


# ---------------------------------------------------------------- 2. an emptied journal


def test_emptied_or_foreign_journal_stops_before_any_request(sandbox, write_config, write_csv,
                                                             invoke, tmp_path):
    """A journal emptied by a sync tool, or replaced by another file, stops the run with exit
    2 naming it; without it, the ledger still reports every row sent, and sends nothing."""
    source, config = write_csv(people(30)), write_config(sandbox.url)
    assert invoke("run", source, "--config", config).exit_code == 0
    journal = Path("clientes-import") / "journal.sqlite"  # as the user named the folder
    journal.write_bytes(b"")
    emptied = invoke("run", source, "--config", config, "--resume")
    assert emptied.exit_code == 2
    assert emptied.stderr == (f"Error: {journal}: the journal is empty (0 bytes): it may have"
                              " been emptied by a sync tool or a bad copy; nothing was sent\n")
    journal.write_bytes(b"SQLite format 3\x00 but then garbage" * 100)
    garbage = invoke("run", source, "--config", config)
    assert (garbage.exit_code, garbage.stderr) == (2, (
        f"Error: {journal}: the journal cannot be read (file is not a database); nothing was"
        " sent\n"))
    journal.unlink()
    journal.with_name("journal.sqlite-wal").unlink(missing_ok=True)
    sqlite3.connect(journal).execute("CREATE TABLE other (a)").connection.commit()
    foreign = invoke("run", source, "--config", config, "--resume")
    assert (foreign.exit_code, foreign.stderr) == (
        2, f"Error: {journal}: not a vambe-import journal; nothing was sent\n")
    journal.unlink()
    again = invoke("run", source, "--config", config)
    assert again.exit_code == 0, again.output
    assert _statuses(tmp_path / "clientes-import") == Counter({"sent": 30})
    _once_each(sandbox, 30)


def test_a_moved_ledger_is_refused_on_resume(sandbox, write_config, write_csv, invoke, tmp_path,
                                             ledger, monkeypatch):
    """Resuming against another (or a new, empty) ledger would forget what was sent: refused."""
    source, config = write_csv(people(3)), write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--limit", "1").exit_code == 5
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", str(tmp_path / "elsewhere.sqlite"))
    result = invoke("run", source, "--config", config, "--resume")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: clientes-import was recorded in the ledger at {ledger}, not in"
        f" {tmp_path / 'elsewhere.sqlite'} (moved, deleted or another one): set [ledger] path"
        " or VAMBE_IMPORT_LEDGER to it; nothing was sent\n")
    assert len(sandbox.state.tickets) == 1


# ---------------------------------------------------------------- 3. errors.csv imported again


def test_reimported_errors_file_never_resends_unknown_rows(make_sandbox, write_config,
                                                           write_csv, invoke, tmp_path):
    """The closing line no longer invites a blind re-import of unknown rows, and doing it
    anyway sends none of them again; --retry-unknown is the operator's explicit choice."""
    server = make_sandbox(fail_500=0.4, seed=5)
    config = write_config(server.url)
    source = write_csv(people(30) + [["Sin teléfono", "", ""]])
    first = invoke("run", source, "--config", config)
    assert first.exit_code == 5
    out = tmp_path / "clientes-import"
    unknown = [r["row"] for r in read_results(out) if r["status"] == "unknown"]
    assert unknown, "the seed gives some 500s"
    assert (f"{len(unknown)} rows have an unknown outcome (rows {', '.join(unknown[:10])}"
            f"{', ...' if len(unknown) > 10 else ''}): the customer may have got the ticket."
            f" vambe-import reconcile --out clientes-import --config {config} checks them in"
            " the account; re-importing does not send them again; --resume --retry-unknown"
            " does.") in first.stdout
    tickets = len(server.state.tickets)
    server.state.faults.fail_500 = 0.0
    errors = out / "errors.csv"
    again = invoke("run", errors, "--config", config)
    assert again.exit_code == 5
    rows = read_results(tmp_path / "errors-import")
    assert Counter(r["status"] for r in rows) == Counter({"unknown": len(unknown), "invalid": 1})
    assert len(server.state.tickets) == tickets
    # The next error file keeps the original rows, and our columns once.
    header, *lines = read_errors(tmp_path / "errors-import")
    assert header == ["Nombre", "Teléfono", "Correo", "_row", "_status", "_error_code", "_error"]
    assert sorted(line[3] for line in lines) == sorted(unknown + ["32"])
    retried = invoke("run", errors, "--config", config, "--out", "retry", "--retry-unknown")
    assert retried.exit_code == 1  # the row without a phone is still invalid
    assert len(server.state.tickets) == tickets + len(unknown)


def test_errors_xlsx_imports_again_with_the_same_config(sandbox, write_config, invoke, tmp_path):
    """errors.xlsx keeps the source sheet's name, so the config that read the workbook
    (with [input] sheet) reads it too; the fixed row is sent, under its original row."""
    source = tmp_path / "libro.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "Notas"
    sheet = workbook.create_sheet("Clientes")
    sheet.append(["Nombre", "Teléfono", "Correo"])
    sheet.append(["Ana", PHONES[0], ""])
    sheet.append(["Luis", PHONES[1], "luis@"])
    workbook.save(source)
    config = write_config(sandbox.url, input={"sheet": "Clientes"})
    assert invoke("run", source, "--config", config).exit_code == 1
    fixed = openpyxl.load_workbook(tmp_path / "libro-import" / "errors.xlsx")
    assert fixed.sheetnames == ["Clientes"]
    fixed.active["C2"] = "luis@example.com"
    fixed.save(tmp_path / "arreglado.xlsx")
    result = invoke("run", tmp_path / "arreglado.xlsx", "--config", config)
    assert result.exit_code == 0, result.output
    _once_each(sandbox, 2)
    # Numbered as in the file the user first imported (Luis was its row 3), not by position.
    assert read_results(tmp_path / "arreglado-import")[0]["row"] == "3"


# ---------------------------------------------------------------- 4. another working directory


def test_same_command_from_another_directory_sends_nobody_twice(sandbox, write_config,
                                                               write_csv, tmp_path):
    """The default folder is relative to the working directory; the ledger is not."""
    source, config = write_csv(people(20)), write_config(sandbox.url)
    for place in ("uno", "dos"):
        (tmp_path / place).mkdir()
        process = start_run(config, source, "--yes", cwd=tmp_path / place)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    _once_each(sandbox, 20)
    second = read_results(tmp_path / "dos" / "clientes-import")
    assert {r["status"] for r in second} == {"duplicate"}
    assert second[0]["error_code"] == "sent_before"
    assert second[0]["error"].endswith(
        f"by the run into {tmp_path / 'uno' / 'clientes-import'}; not sent again within 30"
        " days ([dedupe] across_runs_days)")


def test_a_customer_sent_to_days_ago_from_another_folder_is_not_sent_again(
        sandbox, write_config, write_csv, invoke, tmp_path):
    """Issue 22 mutant (``days * DAY`` as hours): with ``across_runs_days = 3``, a customer
    sent to two days ago (this machine's clock moved on two days) is held back as
    ``sent_before``; four days ago, the window is over and a new campaign reaches them."""
    from importer.timing import ShiftedClock, use_clock

    config = write_config(sandbox.url, dedupe={"across_runs_days": 3})
    source = write_csv(people(2))
    assert invoke("run", source, "--config", config, "--out", "lunes").exit_code == 0
    with use_clock(ShiftedClock(2 * 86400)):
        held = invoke("run", source, "--config", config, "--out", "miercoles")
    assert held.exit_code == 0, held.output
    assert [(r["status"], r["error_code"]) for r in read_results(tmp_path / "miercoles")] \
        == [("duplicate", "sent_before")] * 2
    _once_each(sandbox, 2)
    with use_clock(ShiftedClock(4 * 86400)):
        again = invoke("run", source, "--config", config, "--out", "viernes")
    assert again.exit_code == 0, again.output
    assert set(sandbox.state.tickets_per_phone().values()) == {2}


def test_across_runs_days_zero_sends_again_from_another_folder(sandbox, write_config, write_csv,
                                                              invoke):
    """``across_runs_days = 0``: a deliberate second campaign to the same people is sent."""
    source = write_csv(people(2))
    config = write_config(sandbox.url, dedupe={"across_runs_days": 0})
    assert invoke("run", source, "--config", config).exit_code == 0
    assert invoke("run", source, "--config", config, "--out", "otra").exit_code == 0
    assert set(sandbox.state.tickets_per_phone().values()) == {2}


# ---------------------------------------------------------------- 5. a broken row, no terminal


def test_a_broken_row_stops_the_run_before_any_request(sandbox, write_config, tmp_path):
    """Without a terminal the whole file is still read and checked first: row 301 cannot be
    read, so nothing is sent (it once sent 275 tickets first)."""
    rows = [["Nombre", "Teléfono", "Correo"]] + [
        [f"c{n}", f"+5698{n:07d}", ""] for n in range(400)]
    text = "\n".join(",".join(row) for row in rows) + "\n"
    lines = text.encode("utf-8").split(b"\n")
    lines[300] = "Begoña,+56980000299,".encode("cp1252")  # row 301: not UTF-8
    source = tmp_path / "clientes.csv"
    source.write_bytes(b"\n".join(lines))
    config = write_config(sandbox.url, input={"encoding": "utf-8"},
                          defaults={"phone_check": "possible"})
    process = start_run(config, source)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert stderr == ("Error: clientes.csv: row 301 is not valid utf-8 text; check [input]"
                      " encoding\n")
    assert sandbox.state.tickets == []
    assert not (tmp_path / "clientes-import" / "results.csv").exists()


# ---------------------------------------------------------------- 6. opt-out lists fail closed


def test_opt_out_entry_without_a_country_stops_the_run(sandbox, write_config, write_csv,
                                                       invoke, tmp_path):
    """An opt-out entry that cannot be read as a phone (no country code, no default country)
    stops the run before any request, naming the file, the row and the cell."""
    (tmp_path / "bajas.csv").write_text("Celular\n+56 9 8765 4321\n9 8765 4322\n",
                                        encoding="utf-8")
    config = write_config(sandbox.url, defaults={"stage_id": STAGE_NEW, "country": None},
                          dedupe={"exclude": ["bajas.csv"]})
    result = invoke("run", write_csv(people(3)), "--config", config)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: config.toml: [dedupe] exclude: bajas.csv: 1 entries cannot be read as a phone,"
        " so nobody is contacted until they are fixed: row 3 'Celular': phone '9 8765 4322'"
        " has no country code and [defaults] country is not set\n")
    assert sandbox.state.received == []


def test_opt_out_lists_that_hold_nothing_or_junk_stop_the_run(sandbox, write_config, write_csv,
                                                              invoke, tmp_path):
    """A list with no phone at all, or more than five bad entries, is refused whole."""
    (tmp_path / "vacia.csv").write_text("Celular;Motivo\n;pidió baja\n", encoding="utf-8")
    junk = "\n".join(["Teléfono"] + [f"x{n}" for n in range(7)]) + "\n"
    (tmp_path / "basura.csv").write_text(junk, encoding="utf-8")
    source = write_csv(people(2))
    empty = invoke("run", source, "--config",
                   write_config(sandbox.url, dedupe={"exclude": ["vacia.csv"]}))
    assert (empty.exit_code, empty.stderr) == (2, (
        "Error: config.toml: [dedupe] exclude: vacia.csv: holds no phone number, so nobody is"
        " contacted until it does (an empty opt-out list is almost always the wrong file)\n"))
    bad = invoke("run", source, "--config",
                 write_config(sandbox.url, dedupe={"exclude": ["basura.csv"]}))
    assert bad.exit_code == 2
    assert bad.stderr.startswith("Error: config.toml: [dedupe] exclude: basura.csv: 7 entries"
                                 " cannot be read as a phone, so nobody is contacted until"
                                 " they are fixed: row 2 'Teléfono': phone 'x0' holds letters:"
                                 " write the number in digits (letters are never turned into"
                                 " digits); row 3")
    assert bad.stderr.endswith(" and 2 more\n")
    assert sandbox.state.received == []


# ---------------------------------------------------------------- resume, as a new user met it


def test_resume_with_the_corrected_phone_id_after_a_fatal_first_answer(sandbox, write_config,
                                                                        write_csv, invoke):
    """A wrong phone ID stops the run at its first answer (nothing processed); the plan was
    made for that phone ID, so --resume says so, and --resume --replan with the right one
    sends everything once."""
    source = write_csv(people(5))
    wrong = write_config(sandbox.url, api={"phone_id": "999", "max_concurrency": 1})
    assert invoke("run", source, "--config", wrong).exit_code == 3
    right = write_config(sandbox.url, name="right.toml")
    refused = invoke("run", source, "--config", right, "--resume")
    assert refused.exit_code == 2
    assert "the config changed since the run was planned" in refused.stderr
    assert "--replan" in refused.stderr
    result = invoke("run", source, "--config", right, "--resume", "--replan")
    assert result.exit_code == 0, result.output
    _once_each(sandbox, 5)


def test_validate_says_what_the_ledger_holds_back(sandbox, write_config, write_csv, invoke,
                                                  tmp_path, ledger):
    """validate marks rows sent before from another folder as run would, and says so."""
    config = write_config(sandbox.url)
    assert invoke("run", write_csv(people(2)), "--config", config).exit_code == 0
    result = invoke("validate", write_csv(people(4), name="nuevos.csv"), "--config", config)
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in read_results(tmp_path / "nuevos-import")] == [
        "duplicate", "duplicate", "valid", "valid"]
    assert (f"Note: The ledger holds back 2 rows: 2 sent before from another folder (ledger:"
            f" {ledger})") in result.stdout


def test_the_folder_lock_is_released_by_a_killed_run(make_sandbox, write_config, write_csv,
                                                     invoke, tmp_path):
    """kill -9 never leaves a folder locked: --resume right after goes on."""
    server, config = _slow(make_sandbox, write_config)
    source, out = write_csv(people(40)), tmp_path / "out"
    process = start_run(config, source, "--out", out)
    wait_until(lambda: len(server.state.tickets) >= 4)
    process.kill()
    process.communicate(timeout=30)
    server.state.wait_idle()
    result = invoke("run", source, "--config", config, "--out", out, "--resume")
    assert result.exit_code == (5 if _statuses(out)["unknown"] else 0), result.output
    assert max(server.state.tickets_per_phone().values()) == 1
    with (out / "results.csv").open(encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 40


@FILE_ONLY
def test_a_ledger_with_zeroed_pages_is_named_not_an_unexpected_error(sandbox, write_config,
                                                                     invoke, tmp_path, ledger):
    """Found in issue 20 (item 8): zeroed ledger pages gave "unexpected error:
    DatabaseError"."""
    source = tmp_path / "muchos.csv"
    source.write_text("Nombre,Teléfono,Correo\n" + "".join(
        f"C{n},+56988{n:06d},\n" for n in range(300)), encoding="utf-8")
    config = write_config(sandbox.url, api={"rate_limit_per_second": 0})
    assert invoke("run", source, "--config", config).exit_code == 0
    with sqlite3.connect(ledger) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = ledger.stat().st_size
    with ledger.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(bytes(size - size // 2))
    result = invoke("validate", source, "--config", config, "--out", "otra")
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {ledger}: the send ledger cannot be read (")


def test_the_daily_message_limit_counts_every_run_at_once(make_sandbox, write_config,
                                                          write_csv, tmp_path):
    """Found by review: two laptops started together each counted the day's messages down on
    their own (292 of 250). Each message is counted against every run's in the ledger, in
    the transaction that marks it: two runs of 8 under a limit of 10 send 10."""
    server, config = _slow(make_sandbox, write_config, daily_message_limit=10)
    config.write_text(config.read_text(encoding="utf-8") + '[message]\ncontent = "Hola"\n',
                      encoding="utf-8")
    runs = [start_run(config, write_csv(people(8, start=8 * n), name=f"l{n}.csv"),
                      "--out", tmp_path / f"run{n}") for n in range(2)]
    for process in runs:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode in (0, 5), stderr
    assert len(server.state.tickets) == 10
    rows = [row for n in range(2) for row in read_results(tmp_path / f"run{n}")]
    assert Counter(row["status"] for row in rows) == Counter({"sent": 10, "skipped": 6})
    assert {row["error_code"] for row in rows if row["status"] == "skipped"} == {"daily_limit"}


@FILE_ONLY
def test_a_failing_checkpoint_is_said_once_and_tried_again(tmp_path, monkeypatch, caplog):
    """Folding the WAL is housekeeping: a failure must neither stop the run nor end the
    checkpoints for the rest of it (it once ended them silently at the first error)."""
    import threading

    from importer.ledger import FileLedger, Ledger

    tries: list[int] = []
    enough = threading.Event()

    def checkpoint(db):
        tries.append(1)
        if len(tries) >= 4:
            enough.set()
        if len(tries) <= 2:
            raise sqlite3.OperationalError("disk I/O error")
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    monkeypatch.setattr(FileLedger, "_checkpoint", staticmethod(checkpoint))
    monkeypatch.setattr(FileLedger, "_CHECKPOINT_SECONDS", 0.001)
    with caplog.at_level("WARNING", logger="importer.ledger"):
        ledger = Ledger.open(tmp_path / "ledger.sqlite", target="https://x|whatsapp|1",
                             folder=tmp_path / "run")
        try:
            assert enough.wait(30), "the checkpoint thread stopped trying"
        finally:
            ledger.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "importer.ledger"]
    assert len(warnings) == 1
    assert "ledger.sqlite: folding the ledger's write-ahead log failed (disk I/O error)" \
        in warnings[0]
