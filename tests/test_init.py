"""``init``: a starter config guessed from the file, that runs unchanged on the sample."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from .conftest import read_results

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "campana_noviembre.csv"


def test_starter_config_for_the_sample_runs_unchanged(invoke, tmp_path, fake_clock):
    """init on the sample guesses its columns and country, and run --sandbox uses it as is.
    Without a key its stage column is written commented out, saying why (issue 21, item 4)."""
    made = invoke("init", SAMPLE, api_key=None)
    assert made.exit_code == 0, made.output
    assert made.stdout.startswith("Wrote config.toml: phone = 'Teléfono', contact_name ="
                                  " 'Nombre', email = 'Correo'.\n"
                                  "Default country CL: ")
    text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert config["columns"] == {"phone": "Teléfono", "contact_name": "Nombre",
                                 "email": "Correo"}
    assert ('# stage = "Etapa"    # not mapped: its values'
            " ('550e8400-e29b-41d4-a716-446655440001',"
            " 'Contactado', 'Nuevo') can be checked against the account's stages only with"
            " VAMBE_API_KEY set; uncomment if they are stage names or IDs") in text
    assert config["defaults"]["country"] == "CL"
    result = invoke("run", SAMPLE, "--config", "config.toml", "--sandbox", api_key=None)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("45 rows: 39 sent, 5 invalid, 1 duplicate,")
    assert len(read_results(tmp_path / "campana_noviembre-import")) == 45


def test_a_stage_column_is_mapped_only_when_its_values_are_the_accounts(
        sandbox, write_csv, invoke, tmp_path, monkeypatch):
    """Issue 21, item 4: HubSpot's Lifecycle Stage ("customer", "lead") was mapped as the
    stage column and every row was stage_unknown; with a key init checks the values."""
    from importer.sandbox import DEFAULT_API_KEY

    lifecycle = write_csv([["Phone Number", "Lifecycle Stage"], ["+56987654321", "customer"],
                           ["+56987654322", "lead"]], name="hubspot.csv")
    stages = write_csv([["Phone Number", "Etapa"], ["+56987654321", "Nuevo"],
                        ["+56987654322", "Contactado"]], name="crm.csv")
    for source, out, mapped in ((lifecycle, "a.toml", False), (stages, "b.toml", True)):
        made = invoke("init", source, "-o", out, "--base-url", sandbox.url,
                      api_key=DEFAULT_API_KEY)
        assert made.exit_code == 0, made.output
        text = (tmp_path / out).read_text(encoding="utf-8")
        assert ("stage" in tomllib.loads(text)["columns"]) is mapped
    assert ('# stage = "Lifecycle Stage"    # not mapped: 2 of 2 sample values (\'customer\','
            " 'lead') are not stages of the account") in (tmp_path / "a.toml").read_text(
                encoding="utf-8")


def test_english_headers_and_another_country(write_csv, invoke, tmp_path):
    """English headers are recognized; the default country follows the numbers, counting
    only those that belong to one country (55 1234 5678 is Mexico City's and, read as a US
    number, New Jersey's: found by review, such numbers were sent to +1 551...)."""
    ambiguous = write_csv([["Mobile"], ["55 1234 5678"], ["33 1234 5678"]], name="a.csv")
    made = invoke("init", ambiguous, "-o", "a.toml", api_key=None)
    assert "No default country" in made.stdout
    assert "country" not in tomllib.loads((tmp_path / "a.toml").read_text(encoding="utf-8")
                                          )["defaults"]
    source = write_csv([["Full Name", "Company", "Mobile", "E-mail"],
                        ["Ana", "Acme", "81 1234 5678", "ana@example.com"],
                        ["Luis", "Tacos", "222 123 4567", ""]])
    result = invoke("init", source, "-o", "mx.toml", api_key=None)
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "mx.toml").read_text(encoding="utf-8"))
    assert config["columns"] == {"phone": "Mobile", "contact_name": "Full Name",
                                 "email": "E-mail"}
    assert config["defaults"]["country"] == "MX"
    assert '# company = "Company"' in (tmp_path / "mx.toml").read_text(encoding="utf-8")


def test_init_never_overwrites_without_force(write_csv, invoke, tmp_path):
    """An existing file is kept (exit 2) unless --force is given."""
    (tmp_path / "config.toml").write_text("# mine\n", encoding="utf-8")
    source = write_csv([["Nombre", "Celular"], ["Ana", "+56 9 8765 4321"]])
    kept = invoke("init", source, api_key=None)
    assert kept.exit_code == 2
    assert kept.stderr == ("Error: config.toml already exists; choose another -o path or add"
                           " --force\n")
    assert (tmp_path / "config.toml").read_text(encoding="utf-8") == "# mine\n"
    assert invoke("init", source, "--force", api_key=None).exit_code == 0
    assert 'phone = "Celular"' in (tmp_path / "config.toml").read_text(encoding="utf-8")


def test_file_without_a_phone_column_is_refused(write_csv, invoke, tmp_path):
    """No header or column looks like a phone: a clear error, exit 2, no file written."""
    source = write_csv([["Nombre", "Ciudad"], ["Ana", "Talca"]])
    result = invoke("init", source, api_key=None)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: clientes.csv: no column looks like a phone")
    assert not (tmp_path / "config.toml").exists()


def test_a_shopify_export_gets_both_phones_both_name_parts_and_no_guessed_country(
        sandbox, write_csv, invoke, tmp_path):
    """Issue 21, items 1-3, as a Shopify customers export lays them out: two phone columns
    (the mobile-sounding one would go first), the name in parts, a country-code column whose
    countries init prints, and no default country when none holds most of the rows (a
    Spanish 600 883 873 with no country cell was sent as a Chilean number)."""
    source = write_csv([
        ["First Name", "Last Name", "Email", "Phone", "Default Address Phone",
         "Default Address Country Code", "Total Spent"],
        ["Ana", "Pérez", "ana@example.com", "+56987654321", "", "CL", "10"],
        ["Luis", "Soto", "", "", "55 1234 5678", "MX", "20"],
        ["Eva", "Ruiz", "", "600883873", "", "ES", "5"],
        ["Juan", "Gil", "", "300 1234567", "", "CO", "3"]], name="customers_export.csv")
    made = invoke("init", source, api_key=None)
    assert made.exit_code == 0, made.output
    assert ("Countries in the sample's column 'Default Address Country Code': CL 1, MX 1,"
            " ES 1, CO 1.\nNo default country: no country holds most of the sample") in made.stdout
    text = (tmp_path / "config.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)
    assert config["columns"] == {"phone": ["Phone", "Default Address Phone"],
                                 "contact_name": "{First Name} {Last Name}",
                                 "email": "Email", "country": "Default Address Country Code"}
    assert "country" not in config["defaults"] and '# total_spent = "Total Spent"' in text
    # the example phone and stage IDs init writes are the sandbox's: point it there
    (tmp_path / "config.toml").write_text(
        text.replace("[api]\n", f'[api]\nbase_url = "{sandbox.url}"\n', 1), encoding="utf-8")
    sent = invoke("run", source, "--config", "config.toml")
    assert sent.exit_code == 0, sent.output
    assert sorted(body["to_phone_number"] for body in sandbox.state.ticket_bodies()) == sorted(
        ["+56987654321", "+525512345678", "+34600883873", "+573001234567"])
    assert {body["contact_name"] for body in sandbox.state.ticket_bodies()} == {
        "Ana Pérez", "Luis Soto", "Eva Ruiz", "Juan Gil"}


@pytest.mark.parametrize(("name", "expected"), [
    ("shopify_customers.csv", [("sent", "")] * 7 + [
        ("invalid", "phone_missing"), ("invalid", "not_a_personal_number"),
        ("invalid", "phone_invalid"), ("invalid", "phone_damaged"),
        ("duplicate", "duplicate_phone")]),
    ("hubspot_contacts.xlsx", [
        ("sent", ""), ("sent", ""), ("invalid", "phone_not_mobile"), ("sent", ""),
        ("invalid", "phone_missing"), ("sent", ""), ("sent", ""), ("invalid", "email_invalid")]),
    ("sheets_campana.csv", [("sent", "")] * 5 + [("invalid", "phone_too_short"), ("sent", "")]),
])
def test_crm_exports_import_with_the_config_init_writes(invoke, tmp_path, fake_clock, name,
                                                        expected):
    """Issue 21, done when: the bundled exports in Shopify's, HubSpot's and Google Sheets'
    layouts (made up), with the config init writes for them unchanged, import into the
    sandbox with the expected status for every row."""
    import shutil

    shutil.copy(ROOT / "sample_data" / name, tmp_path / name)
    made = invoke("init", name, "-o", "config.toml", api_key=None)
    assert made.exit_code == 0, made.output
    result = invoke("run", name, "--config", "config.toml", "--sandbox", "--out", "out",
                    api_key=None)
    assert result.exit_code == 1, result.output
    assert [(r["status"], r["error_code"]) for r in read_results(tmp_path / "out")] == expected


def test_init_reaches_nobody_else_and_guesses_no_country_it_cannot_know(write_csv, invoke,
                                                                        tmp_path):
    """Found by review: an emergency contact's and a company's phone columns were added as
    fallbacks (a row was sent to its emergency contact); Spanish mobiles without a country
    code defaulted to CL (they are valid Chilean numbers too); with a country column, the
    default was counted on its cells, and 7 Mexican rows with no cell went to the US."""
    source = write_csv([["Nombre", "Celular", "Teléfono Empresa", "Emergency Contact Phone"],
                        ["Ana", "+56987654321", "+56223456789", "+56987654399"]], name="e.csv")
    assert invoke("init", source, "-o", "e.toml", api_key=None).exit_code == 0
    assert tomllib.loads((tmp_path / "e.toml").read_text(encoding="utf-8"))["columns"][
        "phone"] == "Celular"
    spanish = write_csv([["Móvil"], ["612 345 678"], ["655 123 456"], ["722 334 455"]],
                        name="es.csv")
    made = invoke("init", spanish, "-o", "es.toml", api_key=None)
    assert "No default country" in made.stdout
    mixed = write_csv([["Phone", "Country"]] + [[f"202 555 01{n:02d}", "US"] for n in range(3)]
                      + [[f"81 1234 56{n:02d}", ""] for n in range(7)], name="mx.csv")
    made = invoke("init", mixed, "-o", "mx.toml", api_key=None)
    defaults = tomllib.loads((tmp_path / "mx.toml").read_text(encoding="utf-8"))["defaults"]
    assert defaults.get("country") == "MX", made.output
