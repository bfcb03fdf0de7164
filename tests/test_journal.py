"""The output folder's journal: the run's plan and each row's outcome, from which --resume
sends and the reports are written (importer/journal.py). What is damaged is refused naming
the way out; what was sent stays sent."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter

import pytest

from importer import load_config, run_import
from importer.cli import exit_code
from importer.exceptions import InputFileError
from importer.journal import file_identity, fingerprint
from importer.sandbox import DEFAULT_API_KEY, Faults
from importer.send import Sender

from .conftest import people, read_results


def test_a_plan_that_lost_its_requests_is_refused_and_replan_finishes(sandbox, write_config,
                                                                      write_csv, invoke,
                                                                      tmp_path):
    """A journal whose planned bodies are gone (a damaged copy) cannot be sent from: --resume
    stops before any request, naming the damage and the way out; --resume --replan plans the
    file again and sends the rest, nobody twice."""
    source, config = write_csv(people(3)), write_config(sandbox.url)
    assert invoke("run", source, "--config", config, "--limit", "1").exit_code == 5
    with sqlite3.connect(tmp_path / "clientes-import" / "journal.sqlite") as db:
        db.execute("DELETE FROM plan_data")
    db.close()
    damaged = invoke("run", source, "--config", config, "--resume")
    assert (damaged.exit_code, damaged.stderr) == (2, (
        "Error: the journal holds no cells for row 2: it is damaged; --resume --replan plans"
        " the file again; no request was sent\n"))
    assert len(sandbox.state.tickets) == 1
    replanned = invoke("run", source, "--config", config, "--resume", "--replan")
    assert replanned.exit_code == 0, replanned.output
    assert [r["status"] for r in read_results(tmp_path / "clientes-import")] == ["sent"] * 3
    assert sorted(sandbox.state.tickets_per_phone().values()) == [1, 1, 1]


def test_a_file_saved_while_it_is_read_is_refused(write_csv):
    """The plan is made from one version of the file: bytes that changed between the look
    before reading and the end of the read are refused, never mixed into one plan."""
    source = write_csv(people(2))
    assert fingerprint(source, file_identity(source)).sha256 == hashlib.sha256(
        source.read_bytes()).hexdigest()
    before = file_identity(source)
    with source.open("a", encoding="utf-8") as handle:  # saved again by a spreadsheet
        handle.write("Eva,+56987654399,\n")
    with pytest.raises(InputFileError) as refused:
        fingerprint(source, before)
    assert str(refused.value) == ("clientes.csv: the file changed while it was being read"
                                  " (saved, replaced or synced); nothing was sent: run again"
                                  " once it is still")


def test_a_resume_stopped_early_still_reports_the_rows_sent_before_as_sent(
        sandbox, write_config, write_csv, tmp_path, fake_clock):
    """The first run's first claim batch meets 503s (failed, not processed) and the rows
    after it are sent. The resume retries the batch, and the key is revoked after its first
    ticket: it stops (exit 3) before it reaches the rows sent before. Its results.csv must
    still say they were sent: an operator reading "not sent" would message them again."""
    count = Sender.CLAIM_BATCH + 5
    rows = [["Nombre", "Teléfono", "Correo"]] + [
        [f"Cliente {n}", f"+569876{n:05d}", ""] for n in range(count)]
    source, out = write_csv(rows), tmp_path / "out"
    config = load_config(write_config(sandbox.url, api={"max_concurrency": 1,
                                                        "max_retries": 0}))
    sandbox.state.faults = Faults(fail_503=1.0)
    results = []

    def recover(result) -> None:  # the outage ends with the first claim batch
        results.append(result)
        if len(results) == Sender.CLAIM_BATCH:
            sandbox.state.faults = Faults()

    run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=out, on_result=recover,
               handle_signals=False)
    first = {r["row"]: r for r in read_results(out)}
    assert Counter(r["status"] for r in first.values()) == Counter(
        {"failed": Sender.CLAIM_BATCH, "sent": 5})

    def revoke(result) -> None:
        sandbox.state.api_key = "revoked"

    stopped = run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=out, resume=True,
                         on_result=revoke, handle_signals=False)
    assert exit_code(stopped) == 3
    after_stop = {r["row"]: r for r in read_results(out)}
    sandbox.state.api_key = DEFAULT_API_KEY
    finished = run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=out, resume=True,
                          handle_signals=False)
    assert exit_code(finished) == 0  # and nobody twice:
    assert set(sandbox.state.tickets_per_phone().values()) == {1}
    assert len(sandbox.state.tickets) == count
    sent_before = [row for row, result in first.items() if result["status"] == "sent"]
    assert [(after_stop[row]["status"], after_stop[row]["ai_contact_id"]) for row in sent_before
            ] == [("sent", first[row]["ai_contact_id"]) for row in sent_before]
