"""Cells are data, never guesses; customers from several countries."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl
import pytest

from .conftest import PHONES, STAGE_NEW, people, read_results

ROOT = Path(__file__).resolve().parent.parent


def _verdicts(invoke, write_config, source, tmp_path, **changes) -> list[tuple[str, str, str]]:
    result = invoke("validate", source, "--config", write_config(**changes), api_key=None)
    assert result.exit_code in (0, 1), result.output
    out = tmp_path / f"{Path(source).stem}-import"
    return [(r["status"], r["error_code"], r["error"]) for r in read_results(out)]


# ---------------------------------------------------------------- cells


def test_letters_in_a_phone_are_refused_never_dialled(write_config, write_csv, invoke, tmp_path):
    """``+56 9 CASA 1234`` was once sent as +56922721234."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", "+56 9 CASA 1234", ""],
                        ["Luis", "9 8765 4321 ext 2", ""]])
    assert _verdicts(invoke, write_config, source, tmp_path) == [
        ("invalid", "phone_invalid", ("phone '+56 9 CASA 1234' holds letters: write the number in"
                                      " digits (letters are never turned into digits)")),
        ("invalid", "phone_invalid", ("phone '9 8765 4321 ext 2' holds letters: write the number"
                                      " in digits (letters are never turned into digits)"))]


@pytest.mark.parametrize("value", ["#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!",
                                   "#NULL!", "#SPILL!", "#CALC!", "#GETTING_DATA"])
def test_excel_error_values_in_used_cells_refuse_the_row(write_config, write_csv, invoke,
                                                          tmp_path, value):
    """An Excel error in a used column is never sent as a name; in an unused one it is data."""
    source = write_csv([["Nombre", "Teléfono", "Correo", "Nota"], [value, PHONES[0], "", ""],
                        ["Luis", PHONES[1], "", value]])
    assert _verdicts(invoke, write_config, source, tmp_path) == [
        ("invalid", "cell_error", (f"column 'Nombre' holds the Excel error {value}: fix the"
                                   " formula")),
        ("valid", "", "")]


def test_xlsx_error_cells_and_formulas_without_a_value(write_config, invoke, tmp_path):
    """A workbook's error cells, and a formula Excel never calculated (openpyxl writes none),
    are cell_error, not an empty phone."""
    source = tmp_path / "libro.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Nombre", "Teléfono", "Correo"])
    sheet.append(["Ana", "=CONCAT(\"+569\",\"87654321\")", None])
    sheet.append(["Luis", PHONES[1], None])
    sheet["A3"].value = "#DIV/0!"
    sheet["A3"].data_type = "e"
    sheet.append(["Eva", PHONES[2], None])
    workbook.save(source)
    assert _verdicts(invoke, write_config, source, tmp_path) == [
        ("invalid", "cell_error", ("column 'Teléfono' holds a formula without a value: open the"
                                   " file in Excel and save it again")),
        ("invalid", "cell_error", ("column 'Nombre' holds the Excel error #DIV/0!: fix the"
                                   " formula")),
        ("valid", "", "")]


def test_a_cell_over_64_kib_refuses_its_row_in_csv_and_xlsx(write_config, write_csv, invoke,
                                                           tmp_path):
    """A 70 KB name is not data anyone meant to send."""
    long = "a" * 70_000
    source = write_csv([["Nombre", "Teléfono", "Correo"], [long, PHONES[0], ""],
                        ["Luis", PHONES[1], ""]])
    expected = [("invalid", "cell_too_long", ("column 'Nombre' holds 70,000 characters, more"
                                              " than 64 KiB: not data anyone meant to send")),
                ("valid", "", "")]
    assert _verdicts(invoke, write_config, source, tmp_path) == expected
    # Excel stops at 32,767 characters a cell (openpyxl truncates to that on writing), so a
    # longer one is written into the XML by hand, as a hostile file would hold it.
    buffer = io.BytesIO()
    workbook = openpyxl.Workbook()
    for row in ([["Nombre", "Teléfono", "Correo"], ["a" * 32_767, PHONES[0], None],
                 ["Luis", PHONES[1], None]]):
        workbook.active.append(row)
    workbook.save(buffer)
    book = tmp_path / "libro.xlsx"
    with zipfile.ZipFile(buffer) as original, zipfile.ZipFile(book, "w") as crafted:
        for item in original.infolist():
            data = original.read(item.filename)
            crafted.writestr(item, data.replace(b"a" * 32_767, long.encode()))
    assert _verdicts(invoke, write_config, book, tmp_path) == expected


def test_a_nul_byte_anywhere_stops_naming_the_row(write_config, invoke, tmp_path):
    """Past the first 64 KB too (it was once sent inside a name)."""
    rows = ["Nombre,Teléfono,Correo"] + [f"c{n},+5698{n:07d}," for n in range(6000)]
    rows[5000] = "Be\x00goña,+56980004999,"  # past the first 64 KB
    source = tmp_path / "clientes.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = invoke("validate", source, "--config", write_config(), api_key=None)
    assert (result.exit_code, result.stderr) == (2, (
        "Error: clientes.csv: row 5001 holds a NUL byte: the file is damaged or not text;"
        " nothing was sent\n"))


def _bomb(path: Path, part: str, size: int) -> None:
    """A real workbook whose ``part`` is replaced by ``size`` bytes that compress ~1000 to 1."""
    buffer = io.BytesIO()
    workbook = openpyxl.Workbook()
    workbook.active.append(["Nombre", "Teléfono"])
    workbook.active.append(["Ana", PHONES[0]])
    workbook.save(buffer)
    with zipfile.ZipFile(buffer) as original, zipfile.ZipFile(path, "w",
                                                              zipfile.ZIP_DEFLATED) as bomb:
        for item in original.infolist():
            if item.filename != part:
                bomb.writestr(item, original.read(item.filename))
        with bomb.open(part, "w") as handle:
            handle.write(b'<?xml version="1.0"?><sst><si><t>')
            for _ in range(size >> 20):
                handle.write(b"a" * (1 << 20))
            handle.write(b"</t></si></sst>")


@pytest.mark.parametrize("part", ["xl/sharedStrings.xml", "xl/worksheets/sheet1.xml"])
def test_workbooks_that_expand_like_zip_bombs_are_refused_at_once(write_config, invoke,
                                                                   tmp_path, part):
    """A 1 MB workbook holding a 1 GB cell once took 10 GB; one whose sheet expands to 1.1 GB,
    26 minutes. A part expanding over 100 to 1 is refused before it is parsed (the test's
    bombs are 64 MB: the same rule, a smaller file)."""
    source = tmp_path / "bomba.xlsx"
    _bomb(source, part, 64 << 20)
    result = invoke("validate", source, "--config", write_config(columns={"email": None}),
                    api_key=None)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: bomba.xlsx: its part {part} expands from 0.1 MB"
                                    " to 64 MB (")
    assert result.stderr.endswith(" to 1), which Excel never writes; refused, nothing was sent\n")


def test_utf16_without_a_bom_with_its_encoding_set(write_config, invoke, tmp_path):
    """``[input] encoding = "utf-16-le"`` reads a BOM-less UTF-16 export; without it, the
    error says what to set."""
    source = tmp_path / "clientes.csv"
    source.write_bytes("Nombre,Teléfono,Correo\r\nZoë,+56987654321,\r\n".encode("utf-16-le"))
    refused = invoke("validate", source, "--config", write_config(), api_key=None)
    assert refused.exit_code == 2 and 'encoding = "utf-16-le"' in refused.stderr
    assert _verdicts(invoke, write_config, source, tmp_path,
                     input={"encoding": "utf-16-le"}) == [("valid", "", "")]


# ---------------------------------------------------------------- headers and settings


def test_headers_match_after_trimming_and_near_misses_are_suggested(write_config, write_csv,
                                                                     invoke, tmp_path):
    """``"Celular "`` (copied with its space) is ``Celular``; ``Telefono`` suggests ``Teléfono``."""
    source = write_csv([["Nombre\u00a0", "Celular ", "Correo"], ["Ana", PHONES[0], ""]])
    assert _verdicts(invoke, write_config, source, tmp_path,
                     columns={"phone": "Celular"}) == [("valid", "", "")]
    result = invoke("validate", source, "--config", write_config(columns={"phone": "Telefono"}),
                    api_key=None)
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: config.toml: [columns] phone: column 'Telefono' is not in clientes.csv (its"
        " columns: 'Nombre', 'Celular', 'Correo')\n")
    near = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""]], name="b.csv")
    result = invoke("validate", near, "--config", write_config(columns={"phone": "Telefono"}),
                    api_key=None)
    assert result.stderr.endswith("; did you mean 'Teléfono'?\n")


def test_a_used_column_that_appears_twice_stops_naming_both(write_config, write_csv, invoke):
    """The first of two 'Teléfono' columns was once used silently."""
    source = write_csv([["Nombre", "Teléfono", "Correo", "Teléfono"],
                        ["Ana", PHONES[0], "", PHONES[1]]])
    result = invoke("validate", source, "--config", write_config(), api_key=None)
    assert (result.exit_code, result.stderr) == (2, (
        "Error: config.toml: [columns] phone: clientes.csv has 2 columns named 'Teléfono'"
        " (columns 2, 4): rename all but one, so the right one is read\n"))
    unused = write_csv([["Nombre", "Teléfono", "Correo", "Nota", "Nota"],
                        ["Ana", PHONES[0], "", "a", "b"]], name="otro.csv")
    assert invoke("validate", unused, "--config", write_config(), api_key=None).exit_code == 0


# ---------------------------------------------------------------- countries


LATAM = [["Nombre", "Teléfono", "Correo", "País"],
         ["Lucía", "55 1234 5678", "", "México"], ["Andrés", "81 4567 8901", "", "+52"],
         ["Santiago", "300 1234567", "", "Colombia"], ["Mateo", "011 15-2345-6789", "", "AR"],
         ["Sebastián", "912 345 678", "", "Perú"], ["Camila", "987 654 321", "", "Peru"],
         ["Benjamín", "9 8765 4321", "", "57"], ["Diego", "310 5551234", "", "Narnia"]]


def test_a_country_column_reads_each_row_in_its_own_country(write_config, write_csv, invoke,
                                                             tmp_path):
    """ISO codes, dialing codes and Spanish or English names; an unreadable one refuses the
    row; a number wrong for its row's country says which country it was read in."""
    source = write_csv(LATAM)
    verdicts = _verdicts(invoke, write_config, source, tmp_path, columns={"country": "País"})
    assert [r["phone"] for r in read_results(tmp_path / "clientes-import")][:6] == [
        "+525512345678", "+528145678901", "+573001234567", "+5491123456789", "+51912345678",
        "+51987654321"]
    assert verdicts[6] == ("invalid", "phone_too_short", "phone '9 8765 4321' is too short for CO")
    assert verdicts[7] == ("invalid", "country_unknown",
                           ("country 'Narnia' is not one I can read: write an ISO code (MX), a"
                            " dialing code (+52) or a name (México)"))


def test_international_reading_is_refused_unless_the_setting_says(sandbox, write_config,
                                                                  write_csv, invoke, tmp_path):
    """``528145678901`` in a Chilean row is not guessed into Mexico; the error names both
    readings, validate counts them, and the setting sends them as the international number."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", "528145678901", ""],
                        ["Luis", PHONES[1], ""]])
    result = invoke("validate", source, "--config", write_config(sandbox.url), api_key=None)
    assert read_results(tmp_path / "clientes-import")[0]["error"] == (
        "phone '528145678901' is not a valid CL number; as +52 81 4567 8901 it is a valid MX"
        " number: write it with + or set [defaults] international_without_plus = true")
    assert ("Note: 1 row holds a number written without + that is valid only as an"
            " international number; [defaults] international_without_plus = true would accept"
            " them") in result.stdout
    config = write_config(sandbox.url, defaults={"international_without_plus": True})
    counted = invoke("validate", source, "--config", config, "--out", "revisado", api_key=None)
    assert ("Note: 1 row holds a number written without + that was read as international"
            " ([defaults] international_without_plus = true): check them before sending"
            ) in counted.stdout  # issue 21, item 8: validate did not count them
    assert invoke("run", source, "--config", config, "--out", "sent").exit_code == 0
    assert [b["to_phone_number"] for b in sandbox.state.ticket_bodies()] == [
        "+528145678901", PHONES[1]]


def test_the_possible_hint_only_where_it_helps(write_config, write_csv, invoke, tmp_path):
    """The hint to set phone_check = "possible" is given only for a number that fits its
    country's numbering plan: a Mexican number read in Chile (possible by length alone) gets
    none, and "possible" would not take it (following the hint once turned Mexican numbers
    into wrong Chilean ones)."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["a", "(55) 5678-9012", ""],
                        ["b", "+56 9 1234 5678", ""]])
    verdicts = _verdicts(invoke, write_config, source, tmp_path)
    assert verdicts[0] == ("invalid", "phone_invalid",
                           "phone '(55) 5678-9012' (+565556789012) is not a valid number for CL")
    assert verdicts[1] == ("invalid", "phone_invalid",
                           ("phone '+56 9 1234 5678' (+56912345678) is not a valid number for CL"
                            ' (if your numbers are newer than the phone data, set [defaults]'
                            ' phone_check = "possible")'))


def test_mexican_local_mobile_prefixes_044_and_045(write_config, write_csv, invoke, tmp_path):
    """Read as mobiles, like the obsolete +52 1."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["a", "044 55 1234 5678", ""],
                        ["b", "045 33 1234 5678", ""], ["c", "+52 1 81 4567 8901", ""]])
    _verdicts(invoke, write_config, source, tmp_path, defaults={"country": "MX",
                                                                "stage_id": STAGE_NEW})
    assert [r["phone"] for r in read_results(tmp_path / "clientes-import")] == [
        "+525512345678", "+523312345678", "+528145678901"]


def test_mobile_check_refuses_fixed_lines_and_validate_counts_them(write_config, write_csv,
                                                                   invoke, tmp_path):
    """``phone_check = "mobile"``, the default (issue 21, item 5), refuses a Colombian fixed
    line saying how to send to it; "valid" sends it; validate counts fixed lines whatever
    the setting. An Argentine fixed line says what an Argentine mobile looks like."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Tienda", "(601) 2345678", ""],
                        ["Ana", "321 1234567", ""], ["Tito", "+54 11 2345 6789", ""]])
    base = {"country": "CO", "stage_id": STAGE_NEW}
    lenient = invoke("validate", source, "--config",
                     write_config(defaults={**base, "phone_check": "valid"}), api_key=None)
    assert ('Note: 2 rows hold fixed-line numbers, which cannot receive WhatsApp messages unless'
            ' the line has it: sent; [defaults] phone_check = "mobile" refuses them'
            ) in lenient.stdout
    strict = invoke("validate", source, "--config", write_config(defaults=base), "--out", "m",
                    api_key=None)
    assert "2 rows hold fixed-line numbers" in strict.stdout
    last = invoke("validate", source, "--config",  # its first pass reads the phones first
                  write_config(defaults=base, dedupe={"within_file": "last"}), "--out", "l",
                  api_key=None)
    assert "2 rows hold fixed-line numbers" in last.stdout
    assert [(r["status"], r["error_code"], r["error"]) for r in read_results(tmp_path / "m")] == [
        ("invalid", "phone_not_mobile", ("phone '(601) 2345678' (+576012345678) is a fixed line"
                                         " in CO, which WhatsApp rarely reaches; [defaults]"
                                         ' phone_check = "valid" sends to fixed lines')),
        ("valid", "", ""),
        ("invalid", "phone_not_mobile", ("phone '+54 11 2345 6789' (+541123456789) is a fixed"
                                         " line in AR (an Argentine mobile is +54 9 and its area"
                                         " code, nationally 0 area code 15), which WhatsApp"
                                         ' rarely reaches; [defaults] phone_check = "valid" sends'
                                         " to fixed lines"))]


def test_init_says_when_the_sample_spans_several_countries(invoke, tmp_path, write_csv):
    """The country column is found and named; without one, both ways out are suggested."""
    made = invoke("init", ROOT / "sample_data" / "clientes_latam.csv", api_key=None)
    assert made.exit_code == 0, made.output
    assert ("each row's country is read from the column 'País' ([columns] country)."
            in made.stdout)
    assert 'country = "País"' in (tmp_path / "config.toml").read_text(encoding="utf-8")
    bare = write_csv([row[:3] for row in LATAM])
    made = invoke("init", bare, "-o", "b.toml", api_key=None)
    assert "set [defaults] international_without_plus = true" in made.stdout


def test_latam_sample_runs_with_its_config(invoke, fake_clock):
    """The bundled multi-country sample: 18 customers in five countries, five refused (one
    a fixed line, under the default phone_check = "mobile")."""
    result = invoke("run", ROOT / "sample_data" / "clientes_latam.csv", "--config",
                    ROOT / "sample_data" / "config_latam.toml", "--sandbox", api_key=None)
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith("18 rows: 13 sent, 5 invalid, 0 duplicate,")


def test_stage_note_only_when_a_row_names_a_stage(write_config, write_csv, invoke):
    """Without a key, "stages were not checked" is said only if some row names a stage."""
    result = invoke("validate", write_csv(people(2)), "--config", write_config(), api_key=None)
    assert result.exit_code == 0 and "stages were not checked" not in result.stdout


def test_a_name_in_parts_is_one_contact_name(sandbox, write_config, write_csv, invoke):
    """Issue 21, item 2: CRM exports keep names in parts. contact_name (and any metadata
    field) may be a template of columns; spaces are collapsed and trimmed, and a row whose
    parts are all empty sends no name."""
    config = write_config(sandbox.url, columns={"phone": "Phone", "contact_name":
                                                "{First Name} {Last Name}", "email": None},
                          contact_metadata={"cliente": "{Last Name}, {First Name}"})
    rows = [["First Name", "Last Name", "Phone"], ["Ana", "Pérez", PHONES[0]],
            ["  Luis ", "", PHONES[1]], ["", "", PHONES[2]]]
    result = invoke("run", write_csv(rows), "--config", config)
    assert result.exit_code == 0, result.output
    bodies = sandbox.state.ticket_bodies()
    assert [body.get("contact_name") for body in bodies] == ["Ana Pérez", "Luis", None]
    assert [body.get("contact_metadata") for body in bodies] == [
        {"cliente": "Pérez, Ana"}, {"cliente": ", Luis"}, None]


def test_a_name_template_naming_a_missing_column_stops_before_sending(write_config, write_csv,
                                                                      invoke):
    config = write_config(columns={"phone": "Phone", "contact_name": "{First} {Apellido}",
                                   "email": None})
    result = invoke("validate", write_csv([["First", "Phone"], ["Ana", PHONES[0]]]),
                    "--config", config)
    assert result.exit_code == 2
    assert "Apellido" in result.stderr and "[columns] contact_name" in result.stderr


def test_several_phone_columns_use_the_first_usable_number(sandbox, write_config, write_csv,
                                                           invoke, tmp_path):
    """Issue 21, item 1: Shopify keeps `Phone` and `Default Address Phone`, HubSpot a mobile
    and a phone. phone = [...] in order of preference: the first non-empty cell that is a
    usable number; none usable: invalid, naming each column tried and why. The same for
    email (the first valid address)."""
    config = write_config(sandbox.url, columns={
        "phone": ["Mobile Phone Number", "Phone Number"], "email": ["Email", "Work Email"],
        "contact_name": None})
    rows = [["Mobile Phone Number", "Phone Number", "Email", "Work Email"],
            ["", PHONES[0], "", "ana@example.com"],          # mobile empty: the phone
            [PHONES[1], PHONES[2], "luis@example.com", ""],  # both: the mobile
            ["1.5E+10", PHONES[3], "malo", "eva@example.com"],  # an unusable first cell
            ["", "", "nadie@example.com", ""],
            ["abc", "12", "", ""],
            [PHONES[4], "", "malo", "tampoco"]]
    result = invoke("run", write_csv(rows), "--config", config)
    assert result.exit_code == 1
    bodies = {body["to_phone_number"]: body.get("email") for body in sandbox.state.ticket_bodies()}
    assert bodies == {PHONES[0]: "ana@example.com", PHONES[1]: "luis@example.com",
                      PHONES[3]: "eva@example.com"}
    results = read_results(tmp_path / "clientes-import")
    assert [r["status"] for r in results] == ["sent", "sent", "sent", "invalid", "invalid",
                                              "invalid"]
    # results.csv says which column each row's phone came from, and the cell as written.
    assert [(r["phone_column"], r["phone_as_written"]) for r in results] == [
        ("Phone Number", "'" + PHONES[0]), ("Mobile Phone Number", "'" + PHONES[1]),
        ("Phone Number", "'" + PHONES[3]), ("Mobile Phone Number", ""),
        ("Mobile Phone Number", "abc"), ("Mobile Phone Number", "'" + PHONES[4])]
    assert results[3]["error"] == "phone is empty in 'Mobile Phone Number' and 'Phone Number'"
    assert results[4]["error"].startswith("no usable phone: 'Mobile Phone Number': ")
    assert "; 'Phone Number': " in results[4]["error"]
    assert results[5]["error_code"] == "email_invalid"
    assert results[5]["error"].startswith("no valid email: 'Email': 'malo' is not valid: ")


def test_a_phone_list_naming_a_column_twice_or_none_is_refused(write_config, write_csv,
                                                               invoke):
    for phone, problem in ((["Tel", "Tel"], "names a column twice"),
                           ([], "must be a header, or a list of headers")):
        config = write_config(columns={"phone": phone, "email": None, "contact_name": None})
        result = invoke("validate", write_csv([["Tel"], [PHONES[0]]]), "--config", config)
        assert result.exit_code == 2 and problem in result.stderr, result.stderr


def test_an_apostrophe_marking_digits_as_text_is_not_data(sandbox, write_config, write_csv,
                                                          invoke):
    """Issue 21, item 8: Shopify writes IDs as '7212345746411 so Excel keeps them as text;
    the apostrophe reached the ticket's metadata. Other apostrophes are kept."""
    config = write_config(sandbox.url, columns={"phone": "Phone", "contact_name": "Name",
                                                "email": None},
                          ticket_metadata={"cliente": "Customer ID", "nota": "Note"})
    rows = [["Name", "Phone", "Customer ID", "Note"],
            ["O'Higgins", "'" + PHONES[0][1:], "'7212345746411", "'hola'"]]
    assert invoke("run", write_csv(rows), "--config", config).exit_code == 0
    [body] = sandbox.state.ticket_bodies()
    assert body["ticket_metadata"] == {"cliente": "7212345746411", "nota": "'hola'"}
    assert body["contact_name"] == "O'Higgins" and body["to_phone_number"] == PHONES[0]


@pytest.mark.parametrize("check", ["valid", "possible", "mobile"])
def test_numbers_nobody_is_a_customer_on_are_refused_under_every_policy(
        write_config, write_csv, invoke, tmp_path, check):
    """Issue 21, item 5: shared-cost, toll-free (and premium, UAN, voicemail, pager) numbers
    are nobody's WhatsApp: refused whatever phone_check says, naming what they are."""
    rows = [["Nombre", "Teléfono", "País"], ["Eva", "600 360 7777", ""],
            ["Tito", "0800 222 1234", "AR"], ["Ana", PHONES[0], ""]]
    config = write_config(columns={"phone": "Teléfono", "contact_name": "Nombre",
                                   "email": None, "country": "País"},
                          defaults={"phone_check": check, "country": "CL"})
    invoke("validate", write_csv(rows), "--config", config, api_key=None)
    results = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error_code"]) for r in results] == [
        ("invalid", "not_a_personal_number"), ("invalid", "not_a_personal_number"),
        ("valid", "")]
    assert results[0]["error"] == ("phone '600 360 7777' (+566003607777) is a shared-cost"
                                   " number in CL: no customer is reached on it")
    assert results[1]["error"] == ("phone '0800 222 1234' (+548002221234) is a toll-free"
                                   " number in AR: no customer is reached on it")


@pytest.mark.parametrize(("cell", "region"), [
    ("PER", "PE"), ("MEX", "MX"), ("Sur", None), ("Can", None), ("República del Perú", "PE"),
    ("Republica del Peru", "PE"), ("Republic of Peru", "PE"), ("Estados Unidos Mexicanos", "MX"),
    ("Islas Canarias", "ES"),
    ("Canarias", "ES"), ("Estado Plurinacional de Bolivia", "BO"), ("Puerto Rico", "PR"),
    ("Narnia", None), ("XYZ", None)])
def test_iso_3_codes_official_names_and_territories_are_countries(cell, region):
    """Issue 21, item 8: PER, MEX, Republica del Peru and Islas Canarias were country_unknown."""
    from importer.validate import CountryReader

    assert CountryReader().region(cell) == region


def test_an_argentine_number_without_its_area_code_says_what_is_missing(write_config, write_csv,
                                                                       invoke, tmp_path):
    """Issue 21, item 5: "15 3275 1855" was refused without saying the area code is missing."""
    rows = [["Nombre", "Teléfono", "Correo"], ["Tito", "15 3275 1855", ""],
            ["Rita", "3275 1855", ""], ["Pepe", "011 15 3275 1856", ""]]
    invoke("validate", write_csv(rows), "--config", write_config(defaults={"country": "AR"}),
           api_key=None)
    results = read_results(tmp_path / "clientes-import")
    assert results[0]["error"] == (
        "phone '15 3275 1855' (+541532751855) is not a valid number for AR: a mobile written"
        " with 15 needs its area code before the 15 (11 15 ... in Buenos Aires), or write it"
        " +54 9, the area code and the number")
    assert results[1]["error"] == ("phone '3275 1855' is too short for AR: it needs its area"
                                   " code before it (11 in Buenos Aires)")
    assert (results[2]["status"], results[2]["phone"]) == ("valid", "+5491132751856")


def test_review_of_crm_exports_found_these(write_config, write_csv, invoke, tmp_path):
    """Found by review of issue 21's work: an opt-out list holding a toll-free number
    stopped the run; a customer opted out on their second phone column was reached on the
    first; a brace typo in a name template was an "unexpected error"."""
    (tmp_path / "bajas.csv").write_text("Teléfono\n+1 800 555 0199\n600 360 7777\n"
                                        f"{PHONES[1]}\n", encoding="utf-8")
    config = write_config(columns={"phone": ["Celular", "Fijo"], "email": None,
                                   "contact_name": None},
                          dedupe={"exclude": ["bajas.csv"]})
    rows = [["Celular", "Fijo"], [PHONES[0], PHONES[1]], [PHONES[2], ""]]
    result = invoke("validate", write_csv(rows), "--config", config, api_key=None)
    assert result.exit_code == 0, result.output
    assert [(r["status"], r["error"]) for r in read_results(tmp_path / "clientes-import")] == [
        ("excluded", "the row's 'Fijo' phone is in bajas.csv (opt-outs): never contacted"),
        ("valid", "")]
    typo = write_config(name="typo.toml", columns={"phone": "Celular",
                                                   "contact_name": "{First} {Last"})
    refused = invoke("validate", write_csv(rows), "--config", typo, "--out", "t", api_key=None)
    assert refused.stderr == ("Error: typo.toml: [columns] contact_name: unbalanced or empty"
                              " brace at character 9 (write {{ or }} for a literal brace)\n")


def test_a_customer_listed_twice_with_phones_swapped_is_one_customer(sandbox, write_config,
                                                                     write_csv, invoke,
                                                                     tmp_path):
    """Found by review: rows [A, B] and [B, A] (mobile and phone swapped) were both sent, one
    message to each of the customer's phones. The second is a duplicate of the first."""
    config = write_config(sandbox.url, columns={"phone": ["Mobile", "Phone"], "email": None,
                                                "contact_name": None})
    rows = [["Mobile", "Phone"], [PHONES[0], PHONES[1]], [PHONES[1], PHONES[0]],
            [PHONES[2], ""], [PHONES[3], PHONES[2]]]
    assert invoke("run", write_csv(rows), "--config", config).exit_code == 0
    results = read_results(tmp_path / "clientes-import")
    assert [(r["status"], r["error"]) for r in results] == [
        ("sent", ""), ("duplicate", "same phone as row 2"), ("sent", ""),
        ("duplicate", "the same customer as row 4 (one of its phones)")]
    assert len(sandbox.state.tickets) == 2
