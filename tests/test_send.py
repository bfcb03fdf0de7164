"""Sending the plan: a 429 pausing the whole run, every row recorded with its outcome
(importer/send.py). Run in virtual time where the importer waits."""

from __future__ import annotations

import email.utils

from importer.sandbox import Faults

from .conftest import PHONES, people, read_results


def test_a_429_pauses_for_its_http_date_and_slows_the_run(make_sandbox, write_config, write_csv,
                                                          invoke, tmp_path, fake_clock):
    """A 429 whose Retry-After is an HTTP date pauses the whole run that long, then the run
    goes on a fifth slower; the throttled row is sent once it may be."""
    later = email.utils.formatdate(fake_clock.time() + 30, usegmt=True)
    server = make_sandbox(throttle_first=1, retry_after=later)
    config = write_config(server.url, api={"rate_limit_per_second": 5, "max_concurrency": 1})
    result = invoke("run", write_csv(people(3)), "--config", config)
    assert result.exit_code == 0, result.output
    # the stage look-up took the account's first slot: the ticket went 0.2 s (1/R) later
    assert "API throttled the run (HTTP 429): pausing 29.8 s, then sending at 4/s" in result.stderr
    assert fake_clock.now - 1000.0 >= 30
    assert [r["attempts"] for r in read_results(tmp_path / "clientes-import")] == ["2", "1", "1"]
    assert len(server.state.tickets) == 3


def test_an_unpaced_run_that_meets_a_429_starts_pacing(sandbox, write_config, write_csv,
                                                       invoke, tmp_path, fake_clock):
    """rate_limit_per_second = 0 sends as fast as answers come. A 429 pauses the run, and
    from then on it is paced a fifth below the pace that was throttled (one request in its
    first second: 0.8/s) instead of hammering the API again."""
    sandbox.state.faults = Faults(throttle_first=1)
    config = write_config(sandbox.url, api={"rate_limit_per_second": 0, "max_concurrency": 1})
    result = invoke("run", write_csv(people(4)), "--config", config)
    assert result.exit_code == 0, result.output
    assert ("API throttled the run (HTTP 429): pausing 1 s, then sending at 0.8/s\n"
            in result.stderr)
    assert [r["attempts"] for r in read_results(tmp_path / "clientes-import")] == [
        "2", "1", "1", "1"]
    assert fake_clock.now - 1000.0 >= 1 + 3 / 0.8  # the pause, then a slot every 1.25 s
    assert sorted(sandbox.state.tickets_per_phone().values()) == [1, 1, 1, 1]


def test_a_customer_whose_open_ticket_check_fails_is_skipped_never_sent_unchecked(
        sandbox, write_config, write_csv, invoke, tmp_path, fake_clock):
    """[dedupe] skip_open_tickets: when one phone's look-up fails (the account answers it
    with more than the 1 MiB the importer reads), that row is skipped saying so and the
    others go; --resume checks it again and sends it."""
    contact = sandbox.state.seed_contact(PHONES[1], name="Luis")
    sandbox.state.profiles[contact]["name"] = "x" * (1 << 20)
    config = write_config(sandbox.url, dedupe={"skip_open_tickets": True})
    source = write_csv(people(3))
    first = invoke("run", source, "--config", config)
    assert first.exit_code == 5, first.output
    rows = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"]) for r in rows] == [
        ("sent", ""), ("skipped", "open_ticket"), ("sent", "")]
    assert rows[1]["error"].startswith("not sent: could not check for an open ticket (could"
                                       f" not search contacts at {sandbox.url}/api/public/")
    assert rows[1]["error"].endswith("); --resume tries again")
    assert sorted(b["to_phone_number"] for b in sandbox.state.ticket_bodies()) == [
        PHONES[0], PHONES[2]]
    sandbox.state.profiles[contact]["name"] = "Luis"
    again = invoke("run", source, "--config", config, "--resume")
    assert again.exit_code == 0, again.output
    assert sorted(sandbox.state.tickets_per_phone().values()) == [1, 1, 1]
    assert read_results(tmp_path / "clientes-import")[1]["status"] == "sent"
