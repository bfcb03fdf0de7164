"""Settling a run: exit 5 while rows can still be settled, and ``--until-settled`` rounds."""

from __future__ import annotations

from collections import Counter

from importer.job import run_until_settled
from importer.report import Summary
from importer.sandbox import DEFAULT_API_KEY, Faults

from .conftest import people, read_results


def _statuses(out) -> Counter[str]:
    return Counter(row["status"] for row in read_results(out))


def test_until_settled_repeats_reconcile_and_resume_until_every_row_is_settled(
        sandbox, write_config, write_csv, tmp_path):
    """Issue 21, item 7: faults leave rows unknown (processed or not); the account still
    refuses every ticket in the first round, so the unprocessed ones end failed; the second
    round sends them. Each round is reported; every customer has exactly one ticket."""
    sandbox.state.faults = Faults(fail_500=0.25, fail_500_unprocessed=0.25, drop=0.1, seed=5,
                                  latency=0.05)
    config = write_config(sandbox.url, message={"content": "Hola {Nombre}"},
                          api={"max_retries": 0})
    source = write_csv(people(30))
    out = tmp_path / "clientes-import"
    from importer.job import run_import

    first = run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=out,
                       handle_signals=False)
    assert first.counts["unknown"] > 0
    rounds: list[Counter[str]] = []

    def after(number: int, summary: Summary) -> None:
        rounds.append(Counter({str(status): count for status, count in summary.counts.items()
                               if count}))
        sandbox.state.faults = Faults()  # the account works again from round 2 on

    sandbox.state.faults = Faults(fail_503=1.0)
    summary = run_until_settled(source, config, api_key=DEFAULT_API_KEY, out_dir=out,
                                on_round=after, handle_signals=False)
    assert len(rounds) == 2
    assert rounds[0]["failed"] > 0 and rounds[0]["unknown"] == 0  # reconciled, then refused
    assert rounds[1] == Counter(sent=30)
    assert summary.counts["sent"] == 30 and not summary.settleable
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == 30


def test_until_settled_from_the_command_line_ends_0_with_a_line_per_round(
        sandbox, write_config, write_csv, invoke, tmp_path):
    sandbox.state.faults = Faults(fail_500=0.3, fail_500_unprocessed=0.3, seed=3, latency=0.05)
    config = write_config(sandbox.url, message={"content": "Hola {Nombre}"})
    source = write_csv(people(20))
    assert invoke("run", source, "--config", config).exit_code == 5
    sandbox.state.faults = Faults()
    result = invoke("run", source, "--config", config, "--resume", "--reconcile",
                    "--until-settled")
    assert result.exit_code == 0, result.output
    assert "Round 1: 20 of 20 rows sent, 0 failed, 0 unknown, 0 skipped." in result.stderr
    assert "Round 2" not in result.stderr
    assert _statuses(tmp_path / "clientes-import") == Counter(sent=20)
    assert set(sandbox.state.tickets_per_phone().values()) == {1}


def test_until_settled_stops_when_a_round_settles_nothing(sandbox, write_config, write_csv,
                                                          invoke, tmp_path):
    """A row the account keeps refusing (400) cannot be settled by sending it again: the
    second round settles nothing, so the loop ends there with exit 5, not after 10 rounds."""
    config = write_config(sandbox.url, defaults={"phone_check": "possible"})
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", "+56 9 1234 5678", ""],
                        *people(2)[1:]])
    assert invoke("run", source, "--config", config).exit_code == 5
    result = invoke("run", source, "--config", config, "--resume", "--reconcile",
                    "--until-settled")
    assert result.exit_code == 5, result.output
    assert result.stderr.count("Round ") == 2
    assert "Round 2: 2 of 3 rows sent, 1 failed, 0 unknown, 0 skipped." in result.stderr
    tickets = [r for r in sandbox.state.received if r.method == "POST"]
    assert [r.status for r in tickets].count(400) == 3  # the first run's and one a round
    assert set(sandbox.state.tickets_per_phone().values()) == {1}


def test_exit_1_only_when_every_row_not_sent_is_final(sandbox, write_config, write_csv, invoke,
                                                       tmp_path):
    """Invalid and duplicate rows cannot be settled by running again: exit 1. A run that
    leaves a row for --resume (--limit) exits 5; finishing it leaves only the final ones."""
    source = write_csv([*people(3), ["Eva", "123", ""], ["Ana bis", people(1)[1][1], ""]])
    config = write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--limit", "2").exit_code == 5
    assert invoke("run", source, "--config", config, "--resume").exit_code == 1
    assert _statuses(tmp_path / "clientes-import") == Counter(sent=3, invalid=1, duplicate=1)


def test_until_settled_goes_only_with_resume_and_reconcile(write_config, write_csv, invoke):
    source = write_csv(people(1))
    config = write_config()
    for extra in ([], ["--resume"], ["--resume", "--reconcile", "--retry-unknown"],
                  ["--resume", "--reconcile", "--limit", "3"]):
        result = invoke("run", source, "--config", config, "--until-settled", *extra)
        assert result.exit_code == 2, extra
        assert "--until-settled" in result.stderr
