"""Phones: a number that cannot be trusted is refused, never repaired; the rest reach the
API in E.164, read in their country (policies, the default country, country names)."""

from __future__ import annotations

import pytest

from .conftest import PHONES, STAGE_NEW, _run_rows


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


def test_country_name_table_is_what_libphonenumber_says():
    """importer/country_names.py is libphonenumber's English and Spanish names, folded."""
    from importer.country_names import NAMES
    from importer.validate import country_names_from_library

    live = country_names_from_library()
    changed = {name: (NAMES.get(name), live.get(name)) for name in NAMES.keys() | live.keys()
               if NAMES.get(name) != live.get(name)}
    assert not changed, f"update importer/country_names.py: {changed}"
