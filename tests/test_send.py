"""Sending the plan: a 429 pausing the whole run, every row recorded with its outcome
(importer/send.py). Run in virtual time where the importer waits."""

from __future__ import annotations

import email.utils

from .conftest import people, read_results


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
