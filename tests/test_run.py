"""A whole run: reports with exact columns, exit codes, the library API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from importer import load_config, run_import, validate_file
from importer.sandbox import DEFAULT_API_KEY, Faults

from .conftest import PHONES, STAGE_NEW, people, read_errors, read_results

ROOT = Path(__file__).resolve().parent.parent


def test_reports_have_exact_columns_and_every_row(sandbox, write_config, write_csv, invoke,
                                                  tmp_path, ledger):
    """results.csv lists every row in order; errors.csv keeps the input's format and columns."""
    source = write_csv([["Nombre", "Teléfono", "Correo", "Empresa"],
                        ["Ana", PHONES[0], "", "=SUMA(A1)"], ["Begoña", "123", "", "@acme"],
                        ["Ana bis", PHONES[0], "", ""]], delimiter=";", encoding="cp1252")
    result = invoke("run", source, "--config", write_config(sandbox.url), "--out", "informe")
    assert result.exit_code == 1
    out = tmp_path / "informe"
    contact = sandbox.state.contacts["56987654321"]
    assert read_results(out) == [
        {"row": "2", "status": "sent", "error_code": "", "error": "",
         "phone_as_written": "'" + PHONES[0], "phone": PHONES[0],
         "phone_column": "Teléfono", "name": "Ana", "ai_contact_id": contact,
         "http_status": "200", "attempts": "1"},
        {"row": "3", "status": "invalid", "error_code": "phone_too_short",
         "error": "phone '123' is too short for CL", "phone_as_written": "123",
         "phone": "", "phone_column": "Teléfono", "name": "Begoña", "ai_contact_id": "",
         "http_status": "", "attempts": "0"},
        {"row": "4", "status": "duplicate", "error_code": "duplicate_phone",
         "error": "same phone as row 2", "phone_as_written": "'" + PHONES[0],
         "phone": PHONES[0], "phone_column": "Teléfono", "name": "Ana bis",
         "ai_contact_id": "", "http_status": "", "attempts": "0"},
    ]
    raw = (out / "results.csv").read_bytes()  # Excel reads UTF-8 in any locale with a BOM
    assert raw.startswith(b"\xef\xbb\xbfrow,status,") and raw.count(b"\r\n") == 4
    assert read_errors(out, encoding="cp1252", delimiter=";") == [
        ["Nombre", "Teléfono", "Correo", "Empresa", "_row", "_status", "_error_code", "_error"],
        ["Begoña", "123", "", "'@acme", "3", "invalid", "phone_too_short",
         "phone '123' is too short for CL"],
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert {k: summary[k] for k in ("total_rows", "sent", "invalid", "duplicate", "failed",
                                    "unknown", "skipped")} == {
        "total_rows": 3, "sent": 1, "invalid": 1, "duplicate": 1, "failed": 0, "unknown": 0,
        "skipped": 0}
    assert set(summary) >= {"started_at", "finished_at", "elapsed_seconds"}
    assert result.stdout == (
        "3 rows: 1 sent, 1 invalid, 1 duplicate, 0 failed, 0 unknown, 0 skipped\n"
        "Reports: informe/results.csv, informe/errors.csv, informe/summary.json,"
        " informe/report.html\n"
        f"Ledger: {ledger}\n"
        "Invalid and failed rows are in informe/errors.csv: fix and import it again (rows"
        " already sent are never sent again); failed and skipped rows are also retried by"
        " --resume.\n")


def test_fixed_errors_file_imports_again_with_the_same_config(sandbox, write_config, write_csv,
                                                              invoke, tmp_path):
    """errors.csv, edited and imported again, sends the fixed rows: formulas neutralized and
    undone; validate's and run's results.csv number them as the original file did."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Eva", PHONES[2], ""],
                        ["Ana", "+56 9 8765 4321", "ana@"], ["Luis", "-", ""]])
    config = write_config(sandbox.url)
    invoke("validate", source, "--config", config)
    errors_file = tmp_path / "clientes-import" / "errors.csv"
    text = errors_file.read_text(encoding="utf-8")
    assert "'+56 9 8765 4321" in text and "'-" in text
    fixed = tmp_path / "arreglado.csv"
    fixed.write_text(text.replace("ana@", "ana@example.com").replace("'-", PHONES[1]),
                     encoding="utf-8")
    assert invoke("validate", fixed, "--config", config, "--out", "revisado").exit_code == 0
    assert [r["row"] for r in read_results(tmp_path / "revisado")] == ["3", "4"]
    result = invoke("run", fixed, "--config", config)
    assert result.exit_code == 0, result.output
    assert [(b["to_phone_number"], b.get("email")) for b in sandbox.state.ticket_bodies()] == [
        (PHONES[0], "ana@example.com"), (PHONES[1], None)]
    assert [(r["row"], r["name"]) for r in read_results(tmp_path / "arreglado-import")] == [
        ("3", "Ana"), ("4", "Luis")]


def test_xlsx_errors_file_is_utf8_bom_with_commas(sandbox, invoke, tmp_path):
    """For XLSX input, errors.csv is UTF-8 with a BOM and commas, as Excel opens it."""
    import openpyxl

    source = tmp_path / "libro.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.append(["Teléfono", "Nombre"])
    workbook.active.append([12345, "Peña"])
    workbook.save(source)
    config = tmp_path / "c.toml"
    config.write_text(f'[api]\nbase_url = "{sandbox.url}"\nphone_id = 123456789\n'
                      '[columns]\nphone = "Teléfono"\n'
                      f'[defaults]\nstage_id = "{STAGE_NEW}"\ncountry = "CL"\n', encoding="utf-8")
    invoke("validate", source, "--config", config)
    raw = (tmp_path / "libro-import" / "errors.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfTel\xc3\xa9fono,Nombre,_row,")
    assert "12345,Peña,2,invalid,phone_too_short" in raw.decode("utf-8-sig")


def test_traceback_flag_shows_the_traceback(write_csv, invoke, tmp_path):
    """--traceback lets the error through for debugging instead of the one-line message."""
    from importer.exceptions import ConfigError

    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]])
    with pytest.raises(ConfigError):
        invoke("--traceback", "validate", source, "--config", tmp_path / "nada.toml")


def test_missing_api_key_exits_2_before_anything(sandbox, write_config, write_csv, invoke):
    """``run`` without VAMBE_API_KEY stops with exit 2 and contacts nobody."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]])
    result = invoke("run", source, "--config", write_config(sandbox.url), api_key=None)
    assert result.exit_code == 2
    assert result.stderr == ("Error: VAMBE_API_KEY is not set: export your Vambe API key first"
                             " (or try the demo with --sandbox)\n")
    assert sandbox.state.received == []


def test_rejected_key_on_stage_listing_exits_3(sandbox, write_config, write_csv, invoke):
    """A key refused by GET /pipeline stops with exit 3 before any ticket request."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]])
    result = invoke("run", source, "--config", write_config(sandbox.url), api_key="wrong")
    assert result.exit_code == 3
    assert result.stderr.startswith("Error: API key rejected (HTTP 401)")
    assert [r.path for r in sandbox.state.received] == ["/api/public/pipeline"]


def test_every_row_sent_exits_0_with_contact_ids(sandbox, write_config, write_csv, invoke,
                                                 tmp_path):
    """A clean file: exit 0, and each row carries the aiContactId the API gave that row."""
    from .conftest import people

    result = invoke("run", write_csv(people(20)), "--config", write_config(sandbox.url))
    assert result.exit_code == 0, result.output
    results = read_results(tmp_path / "clientes-import")
    contacts = sandbox.state.contacts
    assert [r["ai_contact_id"] for r in results] == [contacts[p[1:]] for p in PHONES[:20]]
    keys = [r.idempotency_key for r in sandbox.state.received if r.body]
    assert len(set(keys)) == 20 and all(re.fullmatch(r"[0-9a-f]{32}", k) for k in keys)


def test_counts_are_said_in_words_people_use(sandbox, write_config, write_csv, invoke):
    """Issue 21, item 8: "1 rows have", "rows 2", "1 requests", "--config CONFIG"."""
    sandbox.state.faults = Faults(fail_500=1.0, latency=0.05)
    config = write_config(sandbox.url)
    first = invoke("run", write_csv(people(1)), "--config", config)
    assert first.exit_code == 5
    assert (f"1 row has an unknown outcome (row 2): the customer may have got the ticket."
            f" vambe-import reconcile --out clientes-import --config {config} checks"
            ) in first.stdout
    demo = invoke("run", write_csv(people(1), name="uno.csv"), "--config", config,
                  "--sandbox", api_key=None)
    assert ("Sandbox received 2 requests (1 look-up: stages, contacts) and opened 1 ticket"
            " for 1 contact.") in demo.stdout, demo.output


def test_sandbox_flag_runs_the_sample_without_account(invoke, fake_clock):
    """The README's demo: the bundled sample through ``--sandbox``, no key needed."""
    result = invoke("run", ROOT / "sample_data" / "campana_noviembre.csv", "--config",
                    ROOT / "config.example.toml", "--sandbox", api_key=None)
    assert result.exit_code == 1, result.output
    assert ("45 rows: 35 sent, 9 invalid, 1 duplicate, 0 failed, 0 unknown, 0 skipped"
            in result.stdout)
    assert ("Sandbox received 36 requests (1 look-up: stages, contacts) and opened 35 tickets"
            " for 35 contacts.") in result.stdout


def test_sample_xlsx_validates_like_the_csv(invoke, tmp_path):
    """The XLSX sample (numeric phones, dates) gives the same verdicts as the CSV sample."""
    config = ROOT / "config.example.toml"
    for kind in ("csv", "xlsx"):
        invoke("validate", ROOT / "sample_data" / f"campana_noviembre.{kind}", "--config", config,
               "--out", kind, api_key=None)
    from_csv = read_results(tmp_path / "csv")
    assert [(r["row"], r["status"], r["phone"]) for r in from_csv] == [
        (r["row"], r["status"], r["phone"]) for r in read_results(tmp_path / "xlsx")
    ]
    assert len(from_csv) == 45


def test_library_api_returns_the_summary(sandbox, write_config, write_csv, tmp_path):
    """The functions behind the CLI can be called from Python and return counts and paths."""
    from .conftest import people

    config = load_config(write_config(sandbox.url))
    source = write_csv(people(3))
    checked = validate_file(source, config, out_dir=tmp_path / "check")
    assert checked.counts["valid"] == 3 and sandbox.state.tickets == []
    summary = run_import(source, config, api_key=DEFAULT_API_KEY, out_dir=tmp_path / "run",
                         handle_signals=False)
    assert summary.counts["sent"] == 3 and summary.all_done
    assert summary.paths["results.csv"] == tmp_path / "run" / "results.csv"


def test_confirmation_shows_the_plan_and_no_sends_nothing(sandbox, write_config, write_csv,
                                                          tmp_path):
    """Declining the confirmation sends nothing; the plan counts tickets and messages."""
    from .conftest import people

    config = load_config(write_config(sandbox.url, message={"content": "Hola {Nombre}"}))
    plans = []
    summary = run_import(write_csv(people(4)), config, api_key=DEFAULT_API_KEY,
                         out_dir=tmp_path / "r", confirm=lambda plan: plans.append(plan) or False,
                         handle_signals=False)
    assert summary.stopped == "declined"
    assert sandbox.state.tickets == []
    assert (plans[0].rows, plans[0].to_send, plans[0].messages) == (4, 4, 4)
    assert plans[0].describe().startswith("About to open 4 tickets and send 4 WhatsApp messages")


def test_sandbox_reports_what_it_received(sandbox, write_config, write_csv, invoke):
    """GET /_sandbox/received lists each request's time, status and path, for benchmarks
    (with the sandbox's key, like every endpoint)."""
    import httpx2

    from .conftest import people

    invoke("run", write_csv(people(2)), "--config", write_config(sandbox.url))
    assert httpx2.get(f"{sandbox.url}/_sandbox/received").status_code == 401
    seen = httpx2.get(f"{sandbox.url}/_sandbox/received",
                      headers={"x-api-key": DEFAULT_API_KEY}).json()
    assert [(status, path) for _, status, path in seen["received"]] == [
        (200, "/api/public/pipeline")] + [(200, "/api/public/ticket/open/whatsapp/123456789")] * 2
    assert (seen["tickets"], seen["contacts"]) == (2, 2)


def test_stages_lists_pipelines_as_a_table_and_as_json(sandbox, write_config, invoke):
    """``stages`` prints the account's stages with their IDs; ``--json`` for scripts."""
    config = write_config(sandbox.url)
    table = invoke("stages", "--config", config)
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines() == [
        "PIPELINE  STAGE        STAGE ID",
        "Ventas    Nuevo        550e8400-e29b-41d4-a716-446655440000",
        "Ventas    Contactado   550e8400-e29b-41d4-a716-446655440001",
        "Ventas    Seguimiento  550e8400-e29b-41d4-a716-446655440002",
        "Soporte   Nuevo        7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "Soporte   Resuelto     7c9e6679-7425-40de-944b-e07fc1f90ae8",
    ]
    listed = json.loads(invoke("stages", "--config", config, "--json").stdout)
    assert [stage["name"] for stage in listed[1]["stages"]] == ["Nuevo", "Resuelto"]
    refused = invoke("stages", "--config", config, api_key="wrong")
    assert refused.exit_code == 3
    assert refused.stderr.startswith("Error: API key rejected (HTTP 401)")
    assert invoke("stages", "--config", config, api_key=None).exit_code == 2


def test_xlsx_input_also_gets_errors_xlsx_typed_as_text(sandbox, write_config, invoke, tmp_path):
    """errors.xlsx keeps formulas and phones as text, highlights _error, and imports again."""
    import openpyxl

    source = tmp_path / "libro.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.append(["Nombre", "Teléfono", "Correo", "Empresa"])
    workbook.active.append(["Ana", "+56 9 8765 4321", "ana@", "=SUMA(A1)"])
    workbook.active["D2"].data_type = "s"  # typed as text, as an export holds it
    workbook.active.append(["Luis", 56987654322, "", ""])
    workbook.save(source)
    config = write_config(sandbox.url, contact_metadata={"company": "Empresa"})
    result = invoke("run", source, "--config", config)
    assert result.exit_code == 1
    out = tmp_path / "libro-import"
    assert "libro-import/errors.xlsx" in result.stdout
    sheet = openpyxl.load_workbook(out / "errors.xlsx").active
    header, row = list(sheet.iter_rows())
    assert [c.value for c in header][-4:] == ["_row", "_status", "_error_code", "_error"]
    assert [(c.value, c.data_type) for c in row[:4]] == [
        ("Ana", "s"), ("+56 9 8765 4321", "s"), ("ana@", "s"), ("=SUMA(A1)", "s")]
    assert row[-1].fill.start_color.rgb.endswith("FFF2CC")
    fixed = tmp_path / "fixed.xlsx"
    openpyxl_book = openpyxl.load_workbook(out / "errors.xlsx")
    openpyxl_book.active["C2"] = "ana@example.com"
    openpyxl_book.save(fixed)
    again = invoke("run", fixed, "--config", config)
    assert again.exit_code == 0, again.output
    assert [body.get("contact_metadata") for body in sandbox.state.ticket_bodies()] == [
        {"company": "=SUMA(A1)"}, None]  # Ana (fixed, +569...4321), then Luis from the first run


def test_web_whatsapp_channel_uses_its_endpoint_slowly(sandbox, write_config, write_csv, invoke,
                                                       fake_clock):
    """``channel = "web-whatsapp"``: string phone ID, its own endpoint, a slow default, a
    warning."""
    from .conftest import people

    config = write_config(sandbox.url, api={"channel": "web-whatsapp", "phone_id": "phone_sandbox",
                                            "rate_limit_per_second": None},
                          message={"content": "Hola {Nombre}"})
    result = invoke("run", write_csv(people(2)), "--config", config, "--yes")
    assert result.exit_code == 0, result.output
    assert [r.path for r in sandbox.state.received][1:] == [
        "/api/public/ticket/open/web-whatsapp/phone_sandbox"] * 2
    assert ("Note: WhatsApp Web (QR) connections are not meant for campaigns and get blocked for"
            " fast or unsolicited sending; sending at 0.2/s") in result.stderr
    assert "plain-text messages" not in result.stderr
    assert fake_clock.now - 1000.0 >= 5.0  # one message every 5 s, waited in virtual time


def test_web_whatsapp_refuses_templates_at_config_time(write_config, write_csv, invoke):
    """Templates need the Business API: a WhatsApp Web config with one is a config error."""
    from .conftest import people

    config = write_config(api={"channel": "web-whatsapp", "phone_id": "phone_x"},
                          message={"template_id": "bienvenida"})
    result = invoke("validate", write_csv(people(1)), "--config", config, api_key=None)
    assert result.exit_code == 2
    assert result.stderr == ("Error: config.toml: [message] template_id: WhatsApp Web (QR)"
                             ' connections send plain text only; templates need channel ='
                             ' "whatsapp"\n')


def test_sandbox_command_serves_until_ctrl_c(tmp_path):
    """``vambe-import sandbox`` serves the API on the given port with faults, and stops on
    Ctrl-C."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx2

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "sandbox", "--port", str(port), "--api-key", "k",
         "--fail-503", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                listing = httpx2.get(f"http://127.0.0.1:{port}/api/public/pipeline",
                                     headers={"x-api-key": "k"})
                break
            except httpx2.ConnectError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        assert listing.status_code == 200
        ticket = httpx2.post(f"http://127.0.0.1:{port}/api/public/ticket/open/whatsapp/123456789",
                             headers={"x-api-key": "k"}, json={"to_phone_number": PHONES[0]})
        assert ticket.status_code == 503
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert stdout.startswith(f"Sandbox API on http://127.0.0.1:{port} (phone ID 123456789,"
                             " WhatsApp Web phone ID phone_sandbox);")
    assert stdout.endswith("Sandbox stopped: 0 tickets for 0 contacts.\n")


def test_a_reader_that_goes_away_does_not_stop_the_run(tmp_path):
    """`vambe-import run ... | head -2` once ended in "unexpected error: BrokenPipeError":
    output is for people, the run (and its reports) go on."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "VAMBE_IMPORT_LEDGER": str(tmp_path / "l.sqlite"),
           "VAMBE_IMPORT_DATA": str(tmp_path / "data")}
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(ROOT / "sample_data" /
                                                      "campana_noviembre.csv"), "--config",
         str(ROOT / "config.example.toml"), "--sandbox", "--out", str(tmp_path / "out")],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first line
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr  # some sample rows are invalid on purpose
    assert b"BrokenPipe" not in stderr and b"unexpected" not in stderr
    assert len(read_results(tmp_path / "out")) == 45
