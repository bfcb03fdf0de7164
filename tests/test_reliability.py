"""Never twice, never lost: every API answer, faults, crashes, Ctrl-C and resume, over HTTP."""

from __future__ import annotations

import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from importer import load_config, run_import
from importer.cli import exit_code
from importer.sandbox import DEFAULT_API_KEY, Faults

from .conftest import PHONES, people, read_results, start_run, wait_until


def _statuses(out: Path) -> Counter:
    return Counter(row["status"] for row in read_results(out))


def _ticket_requests(server) -> list:
    return [r for r in server.state.received if r.path.startswith("/api/public/ticket/")]


# ---------------------------------------------------------------- the answer table


def test_rejected_key_mid_run_stops_at_once(sandbox, write_config, write_csv, tmp_path):
    """401 on a ticket: that row fails, the rest are skipped, exit 3, nothing more is sent."""
    config = load_config(write_config(sandbox.url, api={"max_concurrency": 1}))

    def revoke_key(result) -> None:
        sandbox.state.api_key = "revoked"

    summary = run_import(write_csv(people(6)), config, api_key=DEFAULT_API_KEY,
                         out_dir=tmp_path / "out", on_result=revoke_key, handle_signals=False)
    assert exit_code(summary) == 3
    assert summary.fatal_error.startswith("API key rejected (HTTP 401)")
    results = read_results(tmp_path / "out")
    assert [(r["status"], r["error_code"]) for r in results] == [
        ("sent", ""), ("failed", "api_key_rejected")] + [("skipped", "not_attempted")] * 4
    assert len(_ticket_requests(sandbox)) == 2


def test_unknown_phone_id_stops_the_run_and_says_so_once(sandbox, write_config, write_csv,
                                                         invoke, tmp_path):
    """404 on the phone ID: exit 3, one message, at most the requests in flight were made."""
    config = write_config(sandbox.url, api={"phone_id": "999", "max_concurrency": 4})
    result = invoke("run", write_csv(people(30)), "--config", config)
    assert result.exit_code == 3
    assert result.stderr.count("phone ID not found (HTTP 404)") == 1
    statuses = _statuses(tmp_path / "clientes-import")
    requests = len(_ticket_requests(sandbox))
    assert 1 <= requests <= 4
    assert statuses == Counter({"failed": requests, "skipped": 30 - requests})


def test_strict_rate_limit_429_pauses_and_slows_without_losing_rows(make_sandbox, write_config,
                                                                    write_csv, invoke, tmp_path):
    """Against a server allowing 10/s (in real time), a run configured at 40/s gets 429s,
    waits, and sends all."""
    server = make_sandbox(rate_limit=10)
    config = write_config(server.url, api={"rate_limit_per_second": 40})
    result = invoke("run", write_csv(people(16)), "--config", config)
    assert result.exit_code == 0, result.output
    assert any(r.status == 429 for r in server.state.received)
    assert "API throttled the run (HTTP 429): pausing 1 s, then sending at" in result.stderr
    assert set(server.state.tickets_per_phone().values()) == {1}
    assert len(server.state.tickets) == 16


def test_throttling_longer_than_the_limit_fails_the_row(make_sandbox, write_config, write_csv,
                                                        invoke, tmp_path, fake_clock):
    """A row throttled past ``max_throttle_seconds`` is failed (not processed), never unknown."""
    server = make_sandbox(throttle=1.0)
    config = write_config(server.url, api={"max_throttle_seconds": 0.5, "max_concurrency": 2})
    result = invoke("run", write_csv(people(2)), "--config", config)
    assert result.exit_code == 5
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"], r["attempts"]) for r in rows] == [
        ("failed", "throttled", "2")] * 2
    assert server.state.tickets == []


def test_503_is_retried_up_to_max_retries_then_failed(make_sandbox, write_config, write_csv,
                                                      invoke, tmp_path, fake_clock):
    """503 means not processed: retried with backoff, then failed with the count of attempts."""
    server = make_sandbox(fail_503=1.0)
    config = write_config(server.url, api={"max_retries": 2})
    result = invoke("run", write_csv(people(3)), "--config", config)
    assert result.exit_code == 5
    rows = read_results(tmp_path / "clientes-import")
    assert {(r["status"], r["error_code"], r["attempts"], r["http_status"]) for r in rows} == {
        ("failed", "api_unavailable", "3", "503")}
    assert rows[0]["error"] == ("API unavailable (HTTP 503): Service temporarily unavailable"
                                " (gave up after 3 attempts; not processed, safe to resume)")
    assert len(_ticket_requests(server)) == 9


def test_connection_refused_is_retried_then_failed(make_sandbox, write_config, write_csv,
                                                   tmp_path):
    """When the server goes away, requests that cannot connect are retried, then failed."""
    sandbox = make_sandbox()  # its own server: this test stops it
    config = load_config(write_config(sandbox.url, api={"max_concurrency": 1, "max_retries": 2}))

    def stop_server(result) -> None:
        if result.status == "sent":
            sandbox.stop()

    run_import(write_csv(people(3)), config, api_key=DEFAULT_API_KEY, out_dir=tmp_path / "out",
               on_result=stop_server, handle_signals=False)
    rows = read_results(tmp_path / "out")
    assert [(r["status"], r["error_code"], r["attempts"]) for r in rows] == [
        ("sent", "", "1"), ("failed", "connection_failed", "3"),
        ("failed", "connection_failed", "3")]


@pytest.mark.parametrize(("faults", "timeout", "error"), [
    ({"fail_500": 1.0}, 30, ("API error (HTTP 500) after receiving the request: the ticket may"
                            " exist: Internal server error")),
    ({"drop": 1.0}, 30, "connection lost after sending"),
    # The deadline ten times shorter than the answer: however late a loaded machine fires
    # it, it fires first (a 0.3 s deadline against a drop once fired before the drop).
    ({"latency": 3.0}, 0.3, ("no complete answer within 0.3 s after sending: the ticket may"
                            " exist")),
])
def test_unknown_outcomes_are_never_retried(make_sandbox, write_config, write_csv, invoke,
                                            tmp_path, faults, timeout, error):
    """500, a dropped connection or a read timeout: ``unknown``, one request, no second try."""
    server = make_sandbox(**faults)
    config = write_config(server.url, api={"timeout_seconds": timeout})
    result = invoke("run", write_csv(people(3)), "--config", config)
    assert result.exit_code == 5
    rows = read_results(tmp_path / "clientes-import")
    assert {(r["status"], r["error_code"], r["attempts"]) for r in rows} == {
        ("unknown", "outcome_unknown", "1")}
    assert all(error in r["error"] for r in rows)
    # Requests the client gave up on are still being answered: wait for all three, then
    # for the sandbox to be idle, so that a retry would have been recorded too.
    wait_until(lambda: len(_ticket_requests(server)) >= 3)
    server.state.wait_idle()
    assert len(_ticket_requests(server)) == 3


def test_mixed_faults_never_duplicate_and_retry_unknown_completes(make_sandbox, write_config,
                                                                  write_csv, invoke, tmp_path):
    """Under 503s, 500s and drops every row ends sent or unknown, none twice; then it completes."""
    server = make_sandbox(fail_503=0.2, fail_500=0.1, drop=0.1, seed=3)
    config = write_config(server.url, api={"max_retries": 10})
    source = write_csv(people(60))
    first = invoke("run", source, "--config", config)
    assert first.exit_code == 5
    out = tmp_path / "clientes-import"
    before = {r["phone"]: r["status"] for r in read_results(out)}
    assert set(before.values()) == {"sent", "unknown"}
    assert max(server.state.tickets_per_phone().values()) == 1
    server.state.faults = Faults()
    second = invoke("run", source, "--config", config, "--resume", "--retry-unknown")
    assert second.exit_code == 0, second.output
    assert _statuses(out) == Counter({"sent": 60})
    per_phone = server.state.tickets_per_phone()
    assert all(per_phone[phone[1:]] == 1 for phone, status in before.items() if status == "sent")


# ---------------------------------------------------------------- resume


def test_folder_holding_a_run_is_refused_without_resume(sandbox, write_config, write_csv,
                                                        invoke, tmp_path):
    """A second run into the same folder stops with exit 2 and says how to continue."""
    source, config = write_csv(people(2)), write_config(sandbox.url)
    checked = invoke("validate", source, "--config", config)
    assert checked.exit_code == 0, checked.output
    assert invoke("run", source, "--config", config).exit_code == 0
    again = invoke("run", source, "--config", config)
    assert again.exit_code == 2
    assert again.stderr == ("Error: clientes-import already holds a run; continue it with"
                            " --resume (rows already sent are never sent again) or choose"
                            " another --out folder\n")
    check = invoke("validate", source, "--config", config)
    assert check.exit_code == 2
    assert len(sandbox.state.tickets) == 2


def test_resume_needs_a_run(sandbox, write_config, write_csv, invoke):
    """--resume into a folder that holds no run is refused with exit 2, sending nothing."""
    source, config = write_csv(people(1)), write_config(sandbox.url)
    empty = invoke("run", source, "--config", config, "--resume", "--out", "nada")
    assert (empty.exit_code, empty.stderr) == (2, "Error: --resume: nada holds no run to resume\n")
    assert sandbox.state.tickets == []


def test_resume_against_another_phone_id_is_refused(sandbox, write_config, write_csv, invoke):
    """Rows sent through one phone ID say nothing about another: resuming across them is refused."""
    source = write_csv(people(1))
    invoke("run", source, "--config", write_config(sandbox.url))
    other = write_config(sandbox.url, name="other.toml", api={"phone_id": "555"})
    result = invoke("run", source, "--config", other, "--resume")
    assert result.exit_code == 2
    assert "holds a run sent to" in result.stderr and "(phone ID 123456789)" in result.stderr


def test_resorted_file_with_an_inserted_row_sends_only_the_new_row(sandbox, write_config,
                                                                   write_csv, invoke, tmp_path):
    """Rows are matched by content: re-sorting and inserting (planned again with --replan)
    cause no second ticket."""
    config = write_config(sandbox.url)
    invoke("run", write_csv(people(5)), "--config", config)
    header, *rows = people(6)
    reordered = [header] + rows[4::-1][:2] + [rows[5]] + rows[4::-1][2:]
    result = invoke("run", write_csv(reordered), "--config", config, "--resume", "--replan")
    assert result.exit_code == 0, result.output
    assert len(sandbox.state.tickets) == 6
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    results = read_results(tmp_path / "clientes-import")
    contacts = sandbox.state.contacts
    assert [(r["phone"], r["status"], r["ai_contact_id"]) for r in results] == [
        (row[1], "sent", contacts[row[1][1:]]) for row in reordered[1:]]


def test_resume_retries_failed_rows_with_the_same_idempotency_key(make_sandbox, write_config,
                                                                  write_csv, invoke, tmp_path):
    """Failed rows (not processed) are sent again on resume, carrying the same key."""
    server = make_sandbox(fail_503=1.0)
    config, source = write_config(server.url, api={"max_retries": 0}), write_csv(people(3))
    assert invoke("run", source, "--config", config).exit_code == 5
    server.state.faults = Faults()
    assert invoke("run", source, "--config", config, "--resume").exit_code == 0
    keys = Counter((r.body["to_phone_number"], r.idempotency_key) for r in _ticket_requests(server))
    assert sorted(keys.values()) == [2, 2, 2]
    assert len(server.state.tickets) == 3
    assert {r["attempts"] for r in read_results(tmp_path / "clientes-import")} == {"2"}


def test_identical_rows_are_told_apart_by_occurrence(sandbox, write_config, write_csv, invoke):
    """With dedupe "none", two identical rows are two tickets, and resume adds none."""
    config = write_config(sandbox.url, dedupe={"within_file": "none"})
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""],
                        ["Ana", PHONES[0], ""]])
    assert invoke("run", source, "--config", config).exit_code == 0
    assert invoke("run", source, "--config", config, "--resume").exit_code == 0
    assert len(sandbox.state.tickets) == 2


# ---------------------------------------------------------------- crashes and Ctrl-C


def _start_run(server, config: Path, source: Path, out: Path) -> subprocess.Popen:
    return start_run(config, source, "--out", out)


def _wait_for_tickets(server, count: int, process: subprocess.Popen) -> None:
    def ready() -> bool:
        assert process.poll() is None, process.communicate()
        return len(server.state.tickets) >= count

    wait_until(ready)


def _resume_exit(out: Path) -> int:
    """The exit code a finished run must give: 5 when rows were left unknown, else 0."""
    return 5 if _statuses(out)["unknown"] else 0


def _slow_run(make_sandbox, write_config, write_csv, tmp_path):
    server = make_sandbox(latency=0.1)
    config = write_config(server.url, api={"rate_limit_per_second": 40, "max_concurrency": 4})
    return server, config, write_csv(people(80)), tmp_path / "out"


def test_kill_9_mid_run_then_resume_sends_nobody_twice(make_sandbox, write_config, write_csv,
                                                       invoke, tmp_path):
    """SIGKILL mid-run; --resume finishes: no ticket twice, at most max_concurrency unknown."""
    server, config, source, out = _slow_run(make_sandbox, write_config, write_csv, tmp_path)
    process = _start_run(server, config, source, out)
    _wait_for_tickets(server, 10, process)
    process.kill()
    process.communicate(timeout=10)
    server.state.wait_idle()  # requests the dead process left in flight are answered
    server.state.faults = Faults()
    result = invoke("run", source, "--config", config, "--out", out, "--resume")
    assert result.exit_code == _resume_exit(out), result.output
    statuses = _statuses(out)
    assert statuses["sent"] + statuses["unknown"] == 80
    assert statuses["unknown"] <= 4
    assert max(server.state.tickets_per_phone().values()) == 1
    sent = [r["phone"][1:] for r in read_results(out) if r["status"] == "sent"]
    assert all(server.state.tickets_per_phone()[phone] == 1 for phone in sent)


def test_ctrl_c_finishes_in_flight_writes_reports_and_exits_130(make_sandbox, write_config,
                                                                write_csv, invoke, tmp_path):
    """Ctrl-C: requests in flight finish, the rest are skipped in complete reports, exit 130."""
    server, config, source, out = _slow_run(make_sandbox, write_config, write_csv, tmp_path)
    process = _start_run(server, config, source, out)
    _wait_for_tickets(server, 10, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    statuses = _statuses(out)
    assert statuses["sent"] + statuses["skipped"] == 80 and statuses["skipped"] > 0
    assert statuses["sent"] == len(server.state.tickets)
    server.state.faults = Faults()
    assert invoke("run", source, "--config", config, "--out", out, "--resume").exit_code == 0
    assert set(server.state.tickets_per_phone().values()) == {1}
    assert len(server.state.tickets) == 80


def test_second_ctrl_c_stops_at_once_and_resume_completes(make_sandbox, write_config, write_csv,
                                                          invoke, tmp_path):
    """A second Ctrl-C stops at once without reports; the journal lets --resume finish."""
    server, config, source, out = _slow_run(make_sandbox, write_config, write_csv, tmp_path)
    process = _start_run(server, config, source, out)
    _wait_for_tickets(server, 10, process)
    process.send_signal(signal.SIGINT)
    while "Stopping" not in (line := process.stderr.readline()):  # the first was taken
        assert line, process.communicate()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "reports not written" in stderr
    assert not (out / "results.csv").exists()
    server.state.wait_idle()
    server.state.faults = Faults()
    result = invoke("run", source, "--config", config, "--out", out, "--resume")
    assert result.exit_code == _resume_exit(out), result.output
    assert max(server.state.tickets_per_phone().values()) == 1
    assert _statuses(out)["unknown"] <= 4


def test_concurrency_too_low_for_the_rate_is_said_once(make_sandbox, write_config, write_csv,
                                                       invoke):
    """When max_concurrency, not the rate limit, sets the pace, one line says what to change."""
    server = make_sandbox(latency=0.05)
    config = write_config(server.url, api={"rate_limit_per_second": 100, "max_concurrency": 2})
    result = invoke("run", write_csv(people(24)), "--config", config)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "max_concurrency" in line]
    assert len(notes) == 1
    assert re.fullmatch(r"max_concurrency = 2 cannot reach 100 requests/s at the observed latency"
                        r" of \d\.\d\d s \(about [\d.]+/s\); set max_concurrency to (\d+) or more"
                        r" to reach it", notes[0])


def test_limit_sends_a_pilot_and_resume_sends_the_rest(sandbox, write_config, write_csv, invoke,
                                                       tmp_path):
    """``--limit 2`` sends two rows and skips the rest; ``--resume`` sends only those."""
    source, config = write_csv(people(5)), write_config(sandbox.url)
    pilot = invoke("run", source, "--config", config, "--limit", "2")
    assert pilot.exit_code == 5
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"]) for r in rows] == [("sent", "")] * 2 + [
        ("skipped", "over_limit")] * 3
    assert rows[2]["error"] == "not sent: beyond --limit 2; --resume sends it"
    rest = invoke("run", source, "--config", config, "--resume")
    assert rest.exit_code == 0, rest.output
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == 5


def test_daily_message_limit_spans_runs_and_says_when_to_resume(sandbox, write_config,
                                                                write_csv, invoke, tmp_path):
    """At most N message rows in 24 hours, counting earlier runs; the rest wait for --resume."""
    config = write_config(sandbox.url, api={"daily_message_limit": 3},
                          message={"content": "Hola {Nombre}"})
    source = write_csv(people(5))
    first = invoke("run", source, "--config", config, "--limit", "2")
    assert first.exit_code == 5
    second = invoke("run", source, "--config", config, "--resume")
    assert second.exit_code == 5
    assert re.search(r"Note: this run has 3 rows with a message, but the daily message limit \(3"
                     r" in 24 hours\) allows 1 more now: the other 2 are skipped; --resume sends"
                     r" them from \d{4}-\d\d-\d\d \d\d:\d\d UTC", second.stderr)
    rows = read_results(tmp_path / "clientes-import")
    assert [r["status"] for r in rows] == ["sent", "sent", "sent", "skipped", "skipped"]
    assert re.fullmatch(r"not sent: the daily message limit \(3 in 24 hours\) is reached;"
                        r" --resume from \d{4}-\d\d-\d\d \d\d:\d\d UTC", rows[3]["error"])
    assert rows[3]["error_code"] == "daily_limit"
    assert "Note: the daily message limit is reached: 2 rows with a message were skipped" in (
        second.stdout)
    assert len(sandbox.state.tickets) == 3
