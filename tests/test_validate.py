"""Validation: nobody wrong is messaged, and every refusal says why in a stable code."""

from __future__ import annotations

import json

import pytest

from .conftest import PHONES, STAGE_CONTACTED, STAGE_NEW, SUPPORT_NEW, people, read_results


def _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows, **config_changes):
    source = write_csv(rows)
    result = invoke("run", source, "--config", write_config(sandbox.url, **config_changes))
    return result, read_results(tmp_path / "clientes-import")


@pytest.mark.parametrize(("phone", "code"), [
    ("5.69877E+10", "phone_damaged"),
    ("5,69877E+10", "phone_damaged"),
    ("1234567890123456.0", "phone_damaged"),
    ("12345", "phone_too_short"),
    ("+56 9 1234 5678", "phone_invalid"),
    ("hola", "phone_invalid"),
    ("", "phone_missing"),
    ("+56 9 8765 4321 0000 1111", "phone_too_long"),
])
def test_untrustworthy_phones_are_refused_not_repaired(sandbox, write_config, write_csv, invoke,
                                                       tmp_path, phone, code):
    """Damaged, short, invalid or missing phones make the row invalid and nothing is sent."""
    result, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path,
                                [["Nombre", "Teléfono", "Correo"], ["Ana", phone, ""]])
    assert result.exit_code == 1
    assert (results[0]["status"], results[0]["error_code"]) == ("invalid", code)
    assert sandbox.state.tickets == []


def test_phone_formats_normalize_to_e164(sandbox, write_config, write_csv, invoke, tmp_path):
    """Local, international, float-suffixed and old Mexican forms all reach the API in E.164."""
    rows = [["Nombre", "Teléfono", "Correo"],
            ["a", "9 8765 4321", ""], ["b", "+56 (9) 8765-4322", ""], ["c", "56987654323.0", ""],
            ["d", "+52 1 55 1234 5678", ""], ["e", "+54 9 11 2345-6789", ""]]
    result, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows)
    assert result.exit_code == 0, result.output
    expected = ["+56987654321", "+56987654322", "+56987654323", "+525512345678", "+5491123456789"]
    assert [b["to_phone_number"] for b in sandbox.state.ticket_bodies()] == sorted(expected)
    assert [row["phone"] for row in results] == expected


def test_possible_policy_sends_numbers_the_data_calls_invalid(sandbox, write_config, write_csv,
                                                               invoke, tmp_path):
    """``phone_check = "possible"`` sends a well-formed number; the API's 400 makes it failed."""
    result, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path,
                                [["Nombre", "Teléfono", "Correo"], ["Ana", "+56 9 1234 5678", ""]],
                                defaults={"phone_check": "possible"})
    assert result.exit_code == 5
    assert [(r.status, r.body["to_phone_number"]) for r in sandbox.state.received if r.body] == [
        (400, "+56912345678")]
    assert {k: results[0][k] for k in ("status", "http_status", "attempts", "error_code",
                                       "error")} == {
        "status": "failed", "http_status": "400", "attempts": "1", "error_code": "api_rejected",
        "error": "API rejected the row (HTTP 400): Invalid phone number"}


def test_number_without_country_code_needs_a_default_country(sandbox, write_config, write_csv,
                                                             invoke, tmp_path):
    """With no [defaults] country, a local number cannot be placed: it is refused."""
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path,
                           [["Nombre", "Teléfono", "Correo"], ["Ana", "9 8765 4321", ""],
                            ["Luis", PHONES[1], ""]],
                           defaults={"stage_id": STAGE_NEW, "country": None})
    assert [(r["status"], r["error_code"]) for r in results] == [
        ("invalid", "phone_no_country"), ("sent", "")]


def test_bad_email_is_invalid_and_good_email_is_sent(sandbox, write_config, write_csv, invoke,
                                                     tmp_path):
    """Email syntax is checked without DNS."""
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path,
                           [["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], "ana@"],
                            ["Luis", PHONES[1], "luis@example.com"]])
    assert [(r["status"], r["error_code"]) for r in results] == [
        ("invalid", "email_invalid"), ("sent", "")]
    assert sandbox.state.ticket_bodies()[0]["email"] == "luis@example.com"


def test_stage_names_and_ids_resolve_against_the_account(sandbox, write_config, write_csv,
                                                         invoke, tmp_path):
    """Names (any case), ``Pipeline / Stage``, UUIDs; unknown and ambiguous names are invalid."""
    rows = [["Nombre", "Teléfono", "Correo", "Etapa"],
            ["a", PHONES[0], "", "contactado"], ["b", PHONES[1], "", "Soporte / Nuevo"],
            ["c", PHONES[2], "", STAGE_CONTACTED], ["d", PHONES[3], "", ""],
            ["e", PHONES[4], "", "Nuevo"], ["f", PHONES[5], "", "Reactivación"],
            ["g", PHONES[6], "", "11111111-2222-3333-4444-555555555555"]]
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows,
                           columns={"stage": "Etapa"})
    assert [b["stage_id"] for b in sandbox.state.ticket_bodies()] == [
        STAGE_CONTACTED, SUPPORT_NEW, STAGE_CONTACTED, STAGE_NEW]
    assert [r["error_code"] for r in results[4:]] == [
        "stage_ambiguous", "stage_unknown", "stage_unknown"]
    assert results[4]["error"] == ("stage name 'Nuevo' is in more than one pipeline;"
                                   " write 'Pipeline / Stage' or the stage UUID")


def test_default_stage_missing_from_account_stops_before_sending(sandbox, write_config, write_csv,
                                                                 invoke):
    """A default stage the account lacks is a config error (exit 2) and nothing is sent."""
    config = write_config(sandbox.url,
                          defaults={"stage_id": "11111111-2222-3333-4444-555555555555"})
    result = invoke("run", write_csv([["Nombre", "Teléfono", "Correo"], ["a", PHONES[0], ""]]),
                    "--config", config)
    assert result.exit_code == 2
    assert result.stderr == ("Error: config.toml: [defaults] stage_id: stage"
                             " 11111111-2222-3333-4444-555555555555 is not in the account's"
                             " pipelines (vambe-import stages lists them)\n")
    assert sandbox.state.tickets == []


def test_message_placeholders_render_and_empty_ones_refuse_the_row(sandbox, write_config,
                                                                   write_csv, invoke, tmp_path):
    """``{Nombre}`` is filled from the row; an empty placeholder never sends "Hola !"."""
    rows = [["Nombre", "Teléfono", "Correo", "Pedido"],
            ["Ana", PHONES[0], "", " 1001 "], ["", PHONES[1], "", "1002"]]
    _, results = _run_rows(
        sandbox, write_config, write_csv, invoke, tmp_path, rows,
        message={"content": "Hola {Nombre}! Pedido {Pedido} {{confirmado}}", "ai_generated": False})
    assert sandbox.state.ticket_bodies()[0]["message"] == {
        "content": "Hola Ana! Pedido 1001 {confirmado}", "ai_generated": False}
    assert (results[1]["error_code"], results[1]["error"]) == (
        "placeholder_empty", "the message needs 'Nombre', which is empty in this row")


def test_metadata_trimmed_strings_and_empty_cells_omitted(sandbox, write_config, write_csv,
                                                          invoke):
    """Metadata values are trimmed strings, constants included; empty cells are left out."""
    rows = [["Nombre", "Teléfono", "Correo", "Empresa", "Plan", "Shopify"],
            ["Ana", PHONES[0], "", " Acme ", "", "  77  "]]
    result = invoke("run", write_csv(rows), "--config", write_config(
        sandbox.url, contact_metadata={"company": "Empresa", "plan": "Plan",
                                       "source": {"value": 2026}},
        ticket_metadata={"plan": "Plan"}, integration_data={"shopify_order_id": "Shopify"}))
    assert result.exit_code == 0, result.output
    body = sandbox.state.ticket_bodies()[0]
    assert body["contact_metadata"] == {"company": "Acme", "source": "2026"}
    assert "ticket_metadata" not in body
    assert body["integration_data"] == {"shopify_order_id": "77"}


@pytest.mark.parametrize(("policy", "statuses", "sent_names"), [
    ("first", ["sent", "duplicate", "sent", "duplicate"], ["a", "c"]),
    ("last", ["duplicate", "duplicate", "sent", "sent"], ["c", "d"]),
    ("none", ["sent", "sent", "sent", "sent"], ["a", "b", "c", "d"]),
])
def test_duplicates_within_the_file(sandbox, write_config, write_csv, invoke, tmp_path, policy,
                                    statuses, sent_names):
    """Rows with the same normalized phone: ``first``, ``last`` or ``none`` is sent."""
    rows = [["Nombre", "Teléfono", "Correo"], ["a", PHONES[0], ""], ["b", "9 8765 4321", ""],
            ["c", PHONES[1], ""], ["d", "56987654321", ""]]
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows,
                           dedupe={"within_file": policy})
    assert [r["status"] for r in results] == statuses
    assert sorted(b["contact_name"] for b in sandbox.state.ticket_bodies()) == sent_names
    errors = {r["row"]: r["error"] for r in results if r["status"] == "duplicate"}
    expected = {"first": {"3": "same phone as row 2", "5": "same phone as row 2"},
                "last": {"2": "same phone as row 5", "3": "same phone as row 5"},
                "none": {}}[policy]
    assert errors == expected


def test_validate_sends_nothing_and_marks_valid_rows(sandbox, write_config, write_csv, invoke,
                                                     tmp_path):
    """``validate`` writes the same reports with ``valid`` and opens no ticket."""
    rows = [["Nombre", "Teléfono", "Correo", "Etapa"], ["a", PHONES[0], "", "Contactado"],
            ["b", "123", "", ""], ["c", PHONES[1], "", "Nada"]]
    result = invoke("validate", write_csv(rows), "--config",
                    write_config(sandbox.url, columns={"stage": "Etapa"}))
    assert result.exit_code == 1
    results = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"]) for r in results] == [
        ("valid", ""), ("invalid", "phone_too_short"), ("invalid", "stage_unknown")]
    assert sandbox.state.tickets == []
    assert [r.path for r in sandbox.state.received] == ["/api/public/pipeline"]


def test_validate_without_key_takes_stages_as_written(write_config, write_csv, invoke, tmp_path):
    """Without VAMBE_API_KEY nothing is fetched; stage cells are not judged, and it says so."""
    rows = [["Nombre", "Teléfono", "Correo", "Etapa"], ["a", PHONES[0], "", "Contactado"]]
    result = invoke("validate", write_csv(rows), "--config",
                    write_config(columns={"stage": "Etapa"}), api_key=None)
    assert result.exit_code == 0, result.output
    assert ("Note: stages were not checked against the account (1 rows name one; 1 distinct"
            " name, not IDs: 'Contactado'): set VAMBE_API_KEY to check them") in result.stdout
    assert read_results(tmp_path / "clientes-import")[0]["status"] == "valid"


# The addresses of email-validator's own syntax tests (tests/test_syntax.py, including the
# pyIsEmail cases it carries) that are plain ASCII: the forms the shortcut could touch.
EMAIL_VALIDATOR_SUITE = [
    "Abc@example.tld", "Abc.123@test-example.com", "user+mailbox/department=shipping@example.tld",
    "!#$%&'*+-/=?^_`.{|}~@example.tld", "my@localhost", "my@.leadingdot.com",
    "my@twodots..com", "my@trailingdot.com.", "me@-leadingdash", "me@trailingdash-",
    "my@baddash.-.com", "my@baddash.-a.com", "my@baddash.b-.com", "my@example.com\n",
    "my@example\n.com", "me@x!", "me@x ", ".leadingdot@domain.com", "twodots..here@domain.com",
    "trailingdot.@domain.email", "@example.com", "white space@test", "test@white space",
    "\nmy@example.com", "m\ny@example.com", "my\n@example.com", 'bad"quotes"@example.com',
    'obsolete."quoted".atom@example.com', "1" * 65 + "@example.com", "1" * 66 + "@example.com",
    "me@" + ".".join(["1" * 49] * 5) + ".com",
    "my.long.address@" + ".".join(["1" * 60] * 4) + ".info",
    "me@bad-tld-1", "me@bad.tld-2", "me@xn--0.tld", "me@yy--0.tld", "me@[127.0.0.1]",
    "me@[IPv6:::1]", "me@anything.arpa", "me@valid.invalid", "me@link.local",
    "me@host.localhost", "me@onion.onion.onion", "me@test.test.test", "anything@test",
    "anything@mycompany.test", "test", "@", "test@", "@io", "@iana.org", "test@iana.org",
    "test@nominet.org.uk", "test@about.museum", "a@iana.org", "test.test@iana.org",
    ".test@iana.org", "test.@iana.org", "test..iana.org", "test_exa-mple.com",
    "!#$%&`*+/=?^`{|}~@iana.org", "test\\@test@iana.org", "123@iana.org", "test@123.com",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm@iana.org",
    "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklmn@iana.org",
    "test@abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghiklm.com",
    "test@mason-dixon.com", "test@-iana.org", "test@iana-.com", "test@g--a.com",
    "test@.iana.org", "test@iana.org.", "test@iana..com",
    "a@" + ".".join(["abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghikl"] * 3)
    + ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefg.hij",
    "a@" + ".".join(["abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghikl"] * 3)
    + ".abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefg.hijk",
    '"test"@iana.org', "test@[255.255.255.255]", " test @iana.org", "test@ iana .com",
    "test . test@iana.org", "(comment)test@iana.org", "test@(comment)iana.org",
    "test@iana.org\n", "test@xn--hxajbheg2az3al.xn--jxalpdlp", "xn--test@iana.org",
    "test@iana.org-", "test@iana/icann.org", " test@iana.org", "test@iana.org ",
    "test@iana.org\r", "\x7f@iana.org", "test@\x7f.org",
]


@pytest.mark.parametrize("address", EMAIL_VALIDATOR_SUITE + [
    "a@b.co", "user+tag@mail.example.org", "A_B-c@Example.COM", "1@2.io", "a..b@example.com",
    ".a@example.com", "a.@example.com", "a@example.123", "a@-ex.com", "a@ex-.com",
    "a@ab--cd.com", "a@xn--ls8h.la", "a@example.com.", "a@localhost", "a@x.test",
    "a@sub.example.local", "josé@example.com", "a@exämple.com", "\"a b\"@example.com",
    "a" * 65 + "@example.com", "a@" + "b" * 64 + ".com", "a@b@example.com", "a b@example.com",
])
def test_email_fast_path_agrees_with_email_validator(address):
    """The plain-ASCII shortcut accepts exactly what email_validator accepts."""
    from email_validator import EmailNotValidError, validate_email

    from importer.validate import email_problem

    try:
        validate_email(address, check_deliverability=False)
        accepted = True
    except EmailNotValidError:
        accepted = False
    assert (email_problem(address) is None) == accepted


def test_duplicates_found_among_many_phones(write_config, write_csv, invoke, tmp_path):
    """The compact phone index finds every repeat in a file larger than its first table."""
    rows = [["Nombre", "Teléfono", "Correo"]]  # 10,000 people: the index's first table
    for n in range(13_000):                    # holds 8,192, so it grows
        person = n % 10_000  # rows 10,002.. repeat the first 3,000 people
        rows.append([f"c{person}", f"+5698{person:07d}", ""])
    result = invoke("validate", write_csv(rows), "--config",
                    write_config(defaults={"phone_check": "possible"}), api_key=None)
    assert result.exit_code == 0, result.output
    results = read_results(tmp_path / "clientes-import")
    duplicates = [r for r in results if r["status"] == "duplicate"]
    assert len(duplicates) == 3_000
    assert duplicates[0]["row"] == "10002" and duplicates[0]["error"] == "same phone as row 2"
    assert duplicates[-1]["error"] == "same phone as row 3001"


def test_validate_previews_the_exact_bodies_and_the_duration(sandbox, write_config, write_csv,
                                                              invoke):
    """``validate`` ends with the first bodies that would be sent and the time sending takes."""
    rows = [["Nombre", "Teléfono", "Correo"], ["Ana", "123", ""], ["Luis", PHONES[1], ""],
            ["Eva", PHONES[2], "eva@example.com"]]
    config = write_config(sandbox.url, api={"rate_limit_per_second": 0.5},
                          message={"content": "Hola {Nombre}"})
    result = invoke("validate", write_csv(rows), "--config", config)
    assert result.exit_code == 1
    preview = result.stdout.split("3 rows:")[0]
    assert preview.startswith("The first 2 requests that run would send:\n{\n")
    assert '"to_phone_number": "+56987654322"' in preview and '"content": "Hola Eva"' in preview
    assert result.stdout.endswith(
        "Sending the 2 valid rows would take about 4 s at the configured rate.\n")
    assert sandbox.state.tickets == []


def test_template_messages_carry_template_id_and_variable(sandbox, write_config, write_csv,
                                                          invoke, tmp_path):
    """A template goes as ``templateId`` with its variable as ``content``; per-row templates
    fall back to ``template_id``; a bad variable value refuses the row, as WhatsApp would."""
    rows = [["Nombre", "Teléfono", "Correo", "Plantilla"],
            ["Ana", PHONES[0], "", ""], ["Luis", PHONES[1], "", "reactivacion"],
            ["", PHONES[2], "", ""], ["Eva\tMar", PHONES[3], "", ""],
            ["Sol     Luna", PHONES[4], "", ""], ["Lía\nRos", PHONES[5], "", ""]]
    result, results = _run_rows(
        sandbox, write_config, write_csv, invoke, tmp_path, rows,
        message={"template_id": "confirmacion", "template_column": "Plantilla",
                 "variable": "Nombre"})
    assert [b["message"] for b in sandbox.state.ticket_bodies()] == [
        {"templateId": "confirmacion", "content": "Ana", "ai_generated": False},
        {"templateId": "reactivacion", "content": "Luis", "ai_generated": False},
    ]
    assert [(r["error_code"], r["error"]) for r in results[2:]] == [
        ("template_variable_invalid", "the template variable 'Nombre' is empty in this row"),
        ("template_variable_invalid",
         "the template variable 'Nombre' holds a tab, which WhatsApp refuses"),
        ("template_variable_invalid", ("the template variable 'Nombre' holds more than four"
                                       " spaces in a row, which WhatsApp refuses")),
        ("template_variable_invalid",
         "the template variable 'Nombre' holds a line break, which WhatsApp refuses"),
    ]
    assert "plain-text messages" not in result.stderr


def test_template_column_without_default_refuses_empty_cells(sandbox, write_config, write_csv,
                                                             invoke, tmp_path):
    """A row whose template cell is empty, with no template_id to fall back on, is invalid."""
    rows = [["Nombre", "Teléfono", "Correo", "Plantilla"], ["Ana", PHONES[0], "", ""],
            ["Luis", PHONES[1], "", "bienvenida"]]
    _, results = _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows,
                           message={"template_column": "Plantilla"})
    assert [r["error_code"] for r in results] == ["template_missing", ""]
    assert sandbox.state.ticket_bodies()[0]["message"] == {"templateId": "bienvenida",
                                                           "ai_generated": False}


def test_plain_text_messages_are_flagged_once(sandbox, write_config, write_csv, invoke):
    """Plain text reaches only customers inside WhatsApp's 24-hour window: said once."""
    source = write_csv([["Nombre", "Teléfono", "Correo"],
                        ["Ana", PHONES[0], ""], ["Luis", PHONES[1], ""]])
    result = invoke("run", source, "--config",
                    write_config(sandbox.url, message={"content": "Hola {Nombre}"}))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("plain-text messages reach only customers who wrote to you in"
                               " the last 24 hours") == 1
    assert "[message] template_id" in result.stderr


@pytest.mark.parametrize(("message", "problem"), [
    ({"content": "Hola", "template_id": "x"}, "give content (plain text) or a template, not both"),
    ({"ai_generated": True}, "needs content, or template_id / template_column"),
    ({"content": "Hola", "variable": "Nombre"},
     "variable goes with a template; plain content uses {Column} placeholders"),
])
def test_message_settings_must_make_sense(write_config, write_csv, invoke, message, problem):
    """A message is plain text or a template, never both or neither: exit 2, one line."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]])
    result = invoke("validate", source, "--config", write_config(message=message), api_key=None)
    assert result.exit_code == 2
    assert result.stderr == f"Error: config.toml: [message]: {problem}\n"


def test_opted_out_phones_are_excluded_on_every_import(sandbox, write_config, write_csv, invoke,
                                                       tmp_path):
    """Rows whose phone is in an opt-out file are ``excluded`` naming it, on re-imports too."""
    (tmp_path / "bajas.csv").write_text("Nombre;Celular;Motivo\nAna;+56 9 8765 4321;pidió baja\n"
                                        "Luis;56 9 8765 4322;\nX;;\n", encoding="utf-8")
    (tmp_path / "lista.csv").write_text("987654324\n", encoding="utf-8")
    config = write_config(sandbox.url, dedupe={"exclude": ["bajas.csv", "lista.csv"]})
    source = write_csv(people(5))
    result = invoke("run", source, "--config", config)
    assert result.exit_code == 0, result.output
    results = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error"]) for r in results] == [
        ("excluded", "phone is in bajas.csv (opt-outs): never contacted"),
        ("excluded", "phone is in bajas.csv (opt-outs): never contacted"),
        ("sent", ""),
        ("excluded", "phone is in lista.csv (opt-outs): never contacted"),
        ("sent", ""),
    ]
    assert result.stdout.startswith("5 rows: 2 sent, 0 invalid, 0 duplicate, 3 excluded,")
    again = invoke("run", write_csv(people(2), name="otra.csv"), "--config", config)
    assert again.exit_code == 0 and len(sandbox.state.tickets) == 2
    assert json.loads((tmp_path / "clientes-import" / "summary.json").read_text())["excluded"] == 3


def test_opt_out_file_problems_are_config_errors(write_config, write_csv, invoke, tmp_path):
    """A missing opt-out file, or one with no phone column, stops before anything: exit 2."""
    source = write_csv(people(1))
    missing = invoke("validate", source, "--config", write_config(dedupe={"exclude": ["x.csv"]}),
                     api_key=None)
    assert missing.stderr == (f"Error: config.toml: [dedupe] exclude: {tmp_path / 'x.csv'}"
                              " not found\n")
    (tmp_path / "bajas.csv").write_text("Nombre,Motivo\nAna,baja\n", encoding="utf-8")
    nameless = invoke("validate", source, "--config",
                      write_config(dedupe={"exclude": ["bajas.csv"]}), api_key=None)
    assert nameless.exit_code == 2
    assert nameless.stderr == ("Error: config.toml: [dedupe] exclude: bajas.csv has no column"
                               " named like a phone (its columns: 'Nombre', 'Motivo')\n")


def test_country_name_table_is_what_libphonenumber_says():
    """importer/country_names.py is libphonenumber's English and Spanish names, folded."""
    from importer.country_names import NAMES
    from importer.validate import country_names_from_library

    live = country_names_from_library()
    changed = {name: (NAMES.get(name), live.get(name)) for name in NAMES.keys() | live.keys()
               if NAMES.get(name) != live.get(name)}
    assert not changed, f"update importer/country_names.py: {changed}"
