"""The plan is the contract: what was checked and confirmed is exactly what is sent.

Replays, as an attacker or a careless colleague with a sync tool would, the ways the input,
the ledger and the process were changed under a run (issue 18), and checks that only the
planned rows reach the API, each once, and that every exit after the plan leaves whole
reports.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import string
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from importer import load_config, run_import
from importer.cli import exit_code
from importer.exceptions import OutputFolderError
from importer.ledger import Ledger
from importer.read import Table
from importer.sandbox import DEFAULT_API_KEY

from .conftest import PHONES, people, read_results, wait_until

ALL_PEOPLE = people(100)


def _sent_phones(sandbox) -> Counter:
    return Counter(f"+{digits}" for digits in sandbox.state.tickets_per_phone().elements())


def _planned(rows: list[list[str]]) -> Counter:
    return Counter(row[1] for row in rows[1:])


# ---------------------------------------------------------------- 1-3: the file changes


def test_a_file_replaced_at_the_prompt_never_reaches_anyone(sandbox, write_config, write_csv,
                                                             tmp_path):
    """Copy + rename over the input while the operator reads the plan: "y" sends the plan,
    every planned customer once, nobody from the other file."""
    planned, other = people(40), [ALL_PEOPLE[0]] + ALL_PEOPLE[41:81]
    source = write_csv(planned)
    replacement = write_csv(other, name="otra.csv")

    def confirm(plan) -> bool:
        assert plan.to_send == 40
        os.replace(replacement, source)  # a sync tool's atomic replace
        return True

    summary = run_import(source, load_config(write_config(sandbox.url)),
                         api_key=DEFAULT_API_KEY, out_dir=tmp_path / "out", confirm=confirm,
                         handle_signals=False)
    assert exit_code(summary) == 0
    assert _sent_phones(sandbox) == _planned(planned)
    assert [r["phone"] for r in read_results(tmp_path / "out")] == PHONES[:40]


@pytest.mark.parametrize("change", ["overwrite", "append"])
def test_a_file_changed_while_sending_changes_nothing_sent(sandbox, write_config, write_csv,
                                                           tmp_path, invoke, change):
    """Overwritten in place, or appended to, after the first ticket: the planned rows are
    sent exactly once, no unplanned row is, and the report has the plan's rows. --resume
    then sees the change and stops; --resume --replan sends only the new customers."""
    planned = people(30)
    source = write_csv(planned)
    changed = people(50) if change == "append" else [planned[0]] + ALL_PEOPLE[50:90]
    touched = []

    def change_the_file(result) -> None:
        if not touched:
            touched.append(True)
            with source.open("r+b" if change == "overwrite" else "ab") as handle:
                if change == "append":
                    handle.write(b"".join(f"{','.join(row)}\n".encode() for row in changed[31:]))
                else:
                    handle.write("\n".join(",".join(row) for row in changed).encode() + b"\n")
    config = write_config(sandbox.url, api={"max_concurrency": 1})
    summary = run_import(source, load_config(config), api_key=DEFAULT_API_KEY,
                         out_dir=tmp_path / "clientes-import", on_result=change_the_file,
                         handle_signals=False)
    assert exit_code(summary) == 0
    assert _sent_phones(sandbox) == _planned(planned)
    results = read_results(tmp_path / "clientes-import")
    assert [(r["phone"], r["status"]) for r in results] == [(p, "sent") for p in PHONES[:30]]

    refused = invoke("run", source, "--config", config, "--resume")
    assert refused.exit_code == 2
    assert "the file changed since the run was planned" in refused.stderr
    assert len(sandbox.state.tickets) == 30
    replanned = invoke("run", source, "--config", config, "--resume", "--replan")
    assert replanned.exit_code == 0, replanned.output
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert _sent_phones(sandbox) == _planned(planned) | _planned(changed)


def test_the_file_is_read_once_per_run_and_not_at_all_to_resume(sandbox, write_config,
                                                                 write_csv, invoke,
                                                                 monkeypatch):
    """One pass over the rows plans the run (within_file = "last" too); --resume reads the
    plan from the journal, not the file."""
    reads = []
    real_rows = Table.rows

    def rows(table, *, look_ahead=True):
        reads.append(look_ahead)  # look_ahead=False: open_table's check of the first row
        return real_rows(table, look_ahead=look_ahead)

    monkeypatch.setattr(Table, "rows", rows)
    header, *body = people(6)
    source = write_csv([header] + body + [[body[0][0], body[0][1], "otro@example.com"]])
    config = write_config(sandbox.url, dedupe={"within_file": "last"})
    assert invoke("run", source, "--config", config, "--limit", "3").exit_code == 5
    assert reads.count(True) == 1
    reads.clear()
    assert invoke("run", source, "--config", config, "--resume").exit_code == 0
    assert reads == []
    bodies = {body["to_phone_number"]: body for body in sandbox.state.ticket_bodies()}
    assert len(sandbox.state.tickets) == 6
    assert bodies[PHONES[0]]["email"] == "otro@example.com"  # the last row of that phone


def test_resume_refuses_a_file_that_is_gone(sandbox, write_config, write_csv, invoke):
    source = write_csv(people(4))
    config = write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--limit", "2").exit_code == 5
    source.unlink()
    result = invoke("run", source, "--config", config, "--resume")
    assert result.exit_code == 2
    assert "input file not found; nothing was sent" in result.stderr
    assert len(sandbox.state.tickets) == 2


# ---------------------------------------------------------------- 4-5: XLSX and its reader


@pytest.fixture(scope="module")
def big_workbook(tmp_path_factory) -> tuple[Path, list[str]]:
    """A workbook over 2 MB (so a reader process parses it): 25,000 customers, each row
    padded with random text that does not compress."""
    from openpyxl import Workbook

    rng = random.Random(7)
    phones = [f"+56988{n * 37:06d}" for n in range(25_000)]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Clientes")
    sheet.append(["Nombre", "Teléfono", "Correo", "Notas"])
    for n, phone in enumerate(phones):
        sheet.append([f"Cliente {n}", phone, f"c{n}@example.com",
                      "".join(rng.choices(string.ascii_letters, k=110))])
    path = tmp_path_factory.mktemp("xlsx") / "grande.xlsx"
    workbook.save(path)
    assert path.stat().st_size > 2 << 20
    return path, phones


def _run_process(config: Path, source: Path, out: Path, *options: str) -> subprocess.Popen:
    """``vambe-import run`` as a real process in its own process group, as a terminal
    runs it (Ctrl-C reaches the whole group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
         "--out", str(out), "--quiet", *options],
        env={**os.environ, "VAMBE_API_KEY": DEFAULT_API_KEY}, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _reader_processes(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == parent and b"importer.reader_process" in command:
            found.append(int(entry.name))
    return found


def test_ctrl_c_to_the_process_group_during_an_xlsx_send_exits_130_with_every_row(
        make_sandbox, write_config, big_workbook, tmp_path):
    """SIGINT to the whole group while requests are in flight: the reader process is long
    gone (it runs only during the plan), the run lets them finish, exit 130, and the
    reports hold every row of the workbook."""
    path, phones = big_workbook
    server = make_sandbox()
    server.state.paused = True  # requests wait in flight until the signal has arrived
    config = write_config(server.url, input={"sheet": "Clientes"},
                          api={"max_concurrency": 2, "rate_limit_per_second": 50})
    out = tmp_path / "out"
    process = _run_process(config, path, out)
    try:
        wait_until(lambda: server.state.active >= 1 or process.poll() is not None, 120)
        assert process.poll() is None, process.communicate()
        assert _reader_processes(process.pid) == []
        os.killpg(process.pid, signal.SIGINT)
        wait_until(lambda: "Stopping" in process.stderr.readline())
    finally:
        server.state.paused = False
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    results = read_results(out)
    assert [r["phone"] for r in results] == phones
    statuses = Counter(r["status"] for r in results)
    assert statuses["sent"] == len(server.state.tickets) >= 1
    assert statuses["sent"] + statuses["skipped"] == len(phones)


def test_kill_9_of_the_reader_during_the_plan_stops_with_exit_2_and_sends_nothing(
        make_sandbox, write_config, big_workbook, tmp_path):
    path, _ = big_workbook
    server = make_sandbox()
    config = write_config(server.url, input={"sheet": "Clientes"})
    out = tmp_path / "out"
    process = _run_process(config, path, out, "--yes")
    try:
        wait_until(lambda: _reader_processes(process.pid) or process.poll() is not None, 60)
        for pid in _reader_processes(process.pid):
            os.kill(pid, signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, stderr
    assert "grande.xlsx" in stderr and "Traceback" not in stderr
    assert [r for r in server.state.received if r.path.startswith("/api/public/ticket/")] == []
    assert not (out / "results.csv").exists()


# ---------------------------------------------------------------- 6-7: the ledger fails


def test_a_full_disk_under_the_ledger_stops_with_exit_4_and_reports_then_resume(
        sandbox, write_config, write_csv, tmp_path, monkeypatch):
    """The ledger's writes fail after a few requests (a full disk): in-flight requests are
    recorded where possible, nothing more is sent, the reports hold every row, exit 4;
    --resume completes with nobody twice."""
    config = load_config(write_config(sandbox.url, api={"max_concurrency": 2}))
    source, out = write_csv(people(40)), tmp_path / "out"
    real_begin = Ledger.begin
    begun = []

    async def begin(ledger, key, has_message, message, skew=None, daily_limit=None):
        begun.append(key)
        if len(begun) > 5:
            ledger.error = ledger.error or OutputFolderError(
                f"{ledger.path}: cannot write the send ledger (database or disk is full)")
            raise ledger.error
        return await real_begin(ledger, key, has_message, message, skew, daily_limit)

    monkeypatch.setattr(Ledger, "begin", begin)
    summary = run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=out,
                         handle_signals=False)
    assert exit_code(summary) == 4
    assert "database or disk is full" in summary.local_error
    results = read_results(out)
    assert len(results) == 40
    assert Counter(r["status"] for r in results)["sent"] == len(sandbox.state.tickets) == 5
    monkeypatch.setattr(Ledger, "begin", real_begin)
    again = run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=out, resume=True,
                       handle_signals=False)
    assert exit_code(again) == 0
    assert len(sandbox.state.tickets) == 40
    assert set(sandbox.state.tickets_per_phone().values()) == {1}


def test_a_ledger_deleted_mid_run_stops_it_with_exit_4(sandbox, write_config, write_csv,
                                                       invoke, tmp_path, ledger):
    """Deleted after the first ticket: the run stops at the next request, exit 4, naming
    the ledger; a new run into another folder is not given a fresh, empty ledger silently
    (the operator is told; restoring the ledger is the way forward)."""
    config = load_config(write_config(sandbox.url, api={"max_concurrency": 1}))
    source, out = write_csv(people(20)), tmp_path / "out"
    gone = []

    def delete_the_ledger(result) -> None:
        if not gone:
            gone.append(True)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{ledger}{suffix}").unlink(missing_ok=True)

    summary = run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=out,
                         on_result=delete_the_ledger, handle_signals=False)
    assert exit_code(summary) == 4
    assert f"{ledger}: the send ledger was deleted, replaced or moved" in summary.local_error
    assert len(sandbox.state.tickets) <= 2
    assert len(read_results(out)) == 20


# ---------------------------------------------------------------- 9: file modes


def test_everything_holding_customer_data_is_private_whatever_the_umask(
        sandbox, write_config, write_csv, tmp_path, ledger):
    """Reports, journal, ledger and run locks: 0600; folders the run made: 0700."""
    old = os.umask(0o002)
    try:
        config = load_config(write_config(sandbox.url))
        source = write_csv([people(3)[0], *people(3)[1:], ["Mala", "123", ""]])
        run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=tmp_path / "a" / "out",
                   handle_signals=False)
    finally:
        os.umask(old)
    out = tmp_path / "a" / "out"
    files = [p for p in [*out.iterdir(), *ledger.parent.rglob("*")] if p.is_file()]
    assert {p.name for p in files} >= {"results.csv", "errors.csv", "summary.json",
                                       "journal.sqlite", "ledger.sqlite"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.name: "0o600" for p in files}
    for folder in (out, ledger.parent, Path(f"{ledger}.runs")):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_an_old_journal_without_a_plan_is_resumed_with_replan(sandbox, write_config,
                                                              write_csv, invoke, tmp_path):
    """An output folder written before the plan existed (schema 1): --resume says how to
    go on, --resume --replan does, and nobody is sent twice."""
    source, config = write_csv(people(6)), write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--limit", "3").exit_code == 5
    journal = tmp_path / "clientes-import" / "journal.sqlite"
    with sqlite3.connect(journal) as db:  # as the earlier release left it
        db.execute("DELETE FROM meta WHERE name IN ('schema', 'planned')")
    refused = invoke("run", source, "--config", config, "--resume")
    assert refused.exit_code == 2
    assert "holds no whole plan" in refused.stderr and "--replan" in refused.stderr
    result = invoke("run", source, "--config", config, "--resume", "--replan")
    assert result.exit_code == 0, result.output
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == 6


def test_a_customer_who_opted_out_after_the_plan_is_never_reached(sandbox, write_config,
                                                                   write_csv, invoke, tmp_path):
    """The opt-out lists are read again when a run resumes: a customer listed since the
    plan was made is excluded, not sent the planned ticket."""
    (tmp_path / "bajas.csv").write_text("Teléfono\n+56 9 1111 1111\n", encoding="utf-8")
    config = write_config(sandbox.url, dedupe={"exclude": ["bajas.csv"]})
    source = write_csv(people(4))
    assert invoke("run", source, "--config", config, "--limit", "1").exit_code == 5
    (tmp_path / "bajas.csv").write_text(f"Teléfono\n{PHONES[2]}\n", encoding="utf-8")
    result = invoke("run", source, "--config", config, "--resume")
    assert result.exit_code == 0, result.output
    assert _sent_phones(sandbox) == Counter({PHONES[0]: 1, PHONES[1]: 1, PHONES[3]: 1})
    statuses = {r["phone"]: (r["status"], r["error_code"])
                for r in read_results(tmp_path / "clientes-import")}
    assert statuses[PHONES[2]] == ("excluded", "opted_out")


def test_replan_after_the_message_changed_reaches_nobody_twice(sandbox, write_config,
                                                                write_csv, invoke, tmp_path):
    """A pilot, then the message fixed and --resume --replan: the changed rows have new
    content keys, but the customers the pilot reached are not sent the new message."""
    source = write_csv(people(6))
    first = write_config(sandbox.url, message={"content": "Hola {Nombre}"})
    assert invoke("run", source, "--config", first, "--limit", "2").exit_code == 5
    fixed = write_config(sandbox.url, name="fixed.toml",
                         message={"content": "Hola {Nombre}, gracias"})
    result = invoke("run", source, "--config", fixed, "--resume", "--replan")
    assert result.exit_code == 0, result.output
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == 6
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"]) for r in rows[:2]] == [("duplicate", "sent_before")] * 2
    assert [r["status"] for r in rows[2:]] == ["sent"] * 4


def test_ctrl_c_during_the_plan_stops_at_once_and_leaves_no_run(make_sandbox, write_config,
                                                                 tmp_path):
    """SIGINT while the plan pass reads a large file: exit 130 at once, nothing sent, no
    question asked, and the folder holds no run (a new run into it needs no --resume)."""
    server = make_sandbox()
    source = tmp_path / "grande.csv"
    with source.open("w", encoding="utf-8") as handle:
        handle.write("Nombre,Teléfono,Correo\n")
        for n in range(300_000):
            handle.write(f"C{n},+56988{n % 1_000_000:06d},\n")
    config = write_config(server.url)
    out = tmp_path / "out"
    process = _run_process(config, source, out, "--yes")
    wait_until(lambda: (out / "journal.sqlite").exists() or process.poll() is not None)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert [r for r in server.state.received if r.path.startswith("/api/public/ticket/")] == []
    assert not (out / "results.csv").exists()
    again = _run_process(config, write_csv_small(tmp_path), out, "--yes")
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr


def write_csv_small(folder: Path) -> Path:
    path = folder / "pocos.csv"
    path.write_text("Nombre,Teléfono,Correo\n" + "".join(
        f"{row[0]},{row[1]},\n" for row in people(3)[1:]), encoding="utf-8")
    return path


def test_a_moved_output_folder_is_still_its_own_run(sandbox, write_config, write_csv, invoke,
                                                    tmp_path):
    """Renamed between a pilot and --resume, with across_runs_days = 0 (no protection across
    folders): the folder's own id, kept in its journal, still recognises its rows as sent."""
    config = write_config(sandbox.url, dedupe={"across_runs_days": 0})
    source = write_csv(people(6))
    assert invoke("run", source, "--config", config, "--out", "a", "--limit", "2").exit_code == 5
    (tmp_path / "a").rename(tmp_path / "b")
    result = invoke("run", source, "--config", config, "--out", "b", "--resume")
    assert result.exit_code == 0, result.output
    assert len(sandbox.state.tickets) == 6
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert [r["status"] for r in read_results(tmp_path / "b")] == ["sent"] * 6


def test_a_file_size_limit_mid_run_stops_cleanly_and_resume_finishes(make_sandbox, write_config,
                                                                     tmp_path):
    """A real process under ``ulimit -f`` (every file it writes is capped at 320 KiB, as on
    a full disk): it stops with exit 2 before any request or 4 after, never a traceback and
    never a partial report; --resume without the limit finishes with every row reported and
    nobody sent twice."""
    import resource

    server = make_sandbox()
    rows = [["Nombre", "Teléfono", "Correo"]] + [
        [f"C{n}", f"+56988{n:06d}", ""] for n in range(1500)]
    source = tmp_path / "clientes.csv"
    source.write_text("".join(",".join(row) + "\n" for row in rows), encoding="utf-8")
    config = write_config(server.url, api={"rate_limit_per_second": 0, "max_concurrency": 4})
    out = tmp_path / "out"

    def capped() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (320 << 10, 320 << 10))

    first = subprocess.run(
        [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
         "--out", str(out), "--yes", "--quiet"],
        env={**os.environ, "VAMBE_API_KEY": DEFAULT_API_KEY}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, preexec_fn=capped, timeout=120, check=False)
    assert first.returncode in (2, 4), first.stderr
    assert "Traceback" not in first.stderr and first.stderr.count("\n") <= 3, first.stderr
    if (out / "results.csv").exists():
        assert len(read_results(out)) == 1500
    server.state.wait_idle()
    resumed = subprocess.run(
        [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
         "--out", str(out), "--yes", "--quiet", *(["--resume"] if first.returncode == 4 else [])],
        env={**os.environ, "VAMBE_API_KEY": DEFAULT_API_KEY}, stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=120, check=False)
    assert resumed.returncode in (0, 1), resumed.stderr
    results = read_results(out)
    assert len(results) == 1500
    assert max(server.state.tickets_per_phone().values()) == 1
    statuses = Counter(r["status"] for r in results)
    assert statuses["sent"] + statuses["unknown"] == 1500
    tickets = server.state.tickets_per_phone()
    by_status = {status: {r["phone"][1:] for r in results if r["status"] == status}
                 for status in ("sent", "unknown")}
    assert by_status["sent"] <= set(tickets)  # every row reported sent has its ticket...
    assert set(tickets) <= by_status["sent"] | by_status["unknown"]  # ...and no other row


def test_every_sheet_of_an_opt_out_workbook_is_read(sandbox, write_config, write_csv, invoke,
                                                    tmp_path):
    """Found in issue 20 (item 1): customers listed on a second sheet ("Bajas 2026") got a
    ticket. Every sheet is read; a sheet without a phone column is named in a note."""
    from openpyxl import Workbook

    workbook = Workbook()
    first = workbook.active
    first.title = "Bajas 2025"
    first.append(["Teléfono"])
    first.append([PHONES[0]])
    second = workbook.create_sheet("Bajas 2026")
    second.append(["Nombre", "Celular"])
    second.append(["Beto", PHONES[1]])
    second.append(["Carla", PHONES[2]])
    notes = workbook.create_sheet("Instrucciones")
    notes.append(["Paso", "Detalle"])
    notes.append(["1", "Agregue aquí a quien pida la baja"])
    workbook.save(tmp_path / "bajas.xlsx")
    config = write_config(sandbox.url, dedupe={"exclude": ["bajas.xlsx"]})
    result = invoke("run", write_csv(people(5)), "--config", config)
    assert result.exit_code == 0, result.output
    assert _sent_phones(sandbox) == Counter({PHONES[3]: 1, PHONES[4]: 1})
    statuses = [r["status"] for r in read_results(tmp_path / "clientes-import")]
    assert statuses == ["excluded", "excluded", "excluded", "sent", "sent"]
    assert "bajas.xlsx: sheet 'Instrucciones' has no column named like a phone" in result.stderr


def test_start_at_far_ahead_does_not_wait_when_nothing_is_left_to_send(sandbox, write_config,
                                                                       write_csv, invoke,
                                                                       fake_clock):
    """Found in issue 20 (item 8): --start-at 9999-12-31T23:59 waited although every row was
    already sent (a duplicate from another folder). (Virtual time: a wait would not hang.)"""
    source, config = write_csv(people(3)), write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--out", "uno").exit_code == 0
    result = invoke("run", source, "--config", config, "--out", "dos", "--start-at",
                    "9999-12-31T23:59")
    assert result.exit_code == 0, result.output
    assert "Waiting until" not in result.stderr
    assert len(sandbox.state.tickets) == 3


def test_a_formula_in_an_opt_out_list_is_named_not_shown_as_a_marker(write_config, write_csv,
                                                                      invoke, tmp_path):
    """Found in issue 20 (item 8): a formula cell without a value showed an internal marker."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["Teléfono"])
    workbook.active.append([PHONES[0]])
    workbook.active.append(["=A2"])
    workbook.save(tmp_path / "bajas.xlsx")
    config = write_config(dedupe={"exclude": ["bajas.xlsx"]})
    result = invoke("validate", write_csv(people(2)), "--config", config, api_key=None)
    assert result.exit_code == 2
    assert "row 3 'Teléfono': a formula Excel never calculated" in result.stderr
    assert "\ue000" not in result.stderr
