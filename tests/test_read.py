"""Reading messy real-world exports: what reaches the API is what the user typed."""

from __future__ import annotations

import codecs
import datetime as dt

import openpyxl
import pytest

from importer.read import open_table

from .conftest import PHONES, STAGE_NEW, csv_bytes, read_results


def test_bom_crlf_and_quoted_newlines_reach_the_api_intact(sandbox, write_config, invoke, tmp_path):
    """A UTF-8 BOM, CRLF line ends and a quoted field with a comma and a newline."""
    source = tmp_path / "clientes.csv"
    source.write_bytes(codecs.BOM_UTF8 + csv_bytes([
        ["Nombre", "Teléfono", "Correo", "Empresa"],
        ["  Ñandú Pérez  ", PHONES[0], "nandu@example.com", "Pérez, Hijos y\nCía."],
        ["José", PHONES[1], "", "NA"],
    ], newline="\r\n"))
    config = write_config(sandbox.url, contact_metadata={"company": "Empresa"})
    result = invoke("run", source, "--config", config)
    assert result.exit_code == 0, result.output
    assert sandbox.state.ticket_bodies() == [
        {"to_phone_number": PHONES[0], "stage_id": STAGE_NEW, "contact_name": "Ñandú Pérez",
         "email": "nandu@example.com", "contact_metadata": {"company": "Pérez, Hijos y\nCía."}},
        {"to_phone_number": PHONES[1], "stage_id": STAGE_NEW, "contact_name": "José",
         "contact_metadata": {"company": "NA"}},
    ]


def test_semicolon_cp1252_as_spanish_excel_writes_it(sandbox, write_config, invoke, tmp_path):
    """Semicolons, cp1252 accents and local phone formats are detected without settings."""
    source = tmp_path / "clientes.csv"
    source.write_bytes(csv_bytes([
        ["Nombre", "Teléfono", "Correo"],
        ["Begoña Muñoz", "9 8765 4321", "begona@example.com"],
        ["Íñigo Álvarez", "(+56) 9-8765-4322", ""],
    ], delimiter=";", encoding="cp1252", newline="\r\n"))
    result = invoke("run", source, "--config", write_config(sandbox.url))
    assert result.exit_code == 0, result.output
    bodies = sandbox.state.ticket_bodies()
    assert [(b["contact_name"], b["to_phone_number"]) for b in bodies] == [
        ("Begoña Muñoz", "+56987654321"), ("Íñigo Álvarez", "+56987654322"),
    ]


def test_tab_delimited_utf16_as_excel_unicode_text(sandbox, write_config, invoke, tmp_path):
    """Excel's "Unicode text" export: UTF-16 with a BOM, tab-delimited."""
    source = tmp_path / "clientes.txt"
    source.write_bytes(csv_bytes([["Nombre", "Teléfono", "Correo"], ["Zoë", PHONES[3], ""]],
                                 delimiter="\t", encoding="utf-16"))
    result = invoke("run", source, "--config", write_config(sandbox.url))
    assert result.exit_code == 0, result.output
    assert sandbox.state.ticket_bodies()[0]["contact_name"] == "Zoë"


def test_xlsx_numeric_cells_are_read_as_typed(sandbox, write_config, invoke, tmp_path):
    """Numbers keep every digit (no ``.0``), dates are ISO 8601, empty cells stay empty."""
    source = tmp_path / "clientes.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Nombre", "Teléfono", "Correo", "Pedido", "Fecha", "Monto", "Nota"])
    sheet.append(["Ana", 56987654321, None, 42, dt.datetime(2026, 11, 3), 1500.5, None])
    sheet.append([None] * 7)  # a blank row is ignored but keeps the numbering
    sheet.append(["Luis", 56987654322, "luis@example.com", 7.0,
                  dt.datetime(2026, 11, 4, 9, 30), 10, "VIP"])
    workbook.save(source)
    config = write_config(sandbox.url, ticket_metadata={
        "order": "Pedido", "date": "Fecha", "amount": "Monto", "note": "Nota"})
    result = invoke("run", source, "--config", config)
    assert result.exit_code == 0, result.output
    bodies = sandbox.state.ticket_bodies()
    assert bodies[0]["to_phone_number"] == "+56987654321"
    assert bodies[0]["ticket_metadata"] == {"order": "42", "date": "2026-11-03", "amount": "1500.5"}
    assert bodies[1]["ticket_metadata"] == {"order": "7", "date": "2026-11-04T09:30:00",
                                            "amount": "10", "note": "VIP"}
    assert [row["row"] for row in read_results(tmp_path / "clientes-import")] == ["2", "4"]


def test_xlsx_sheet_option_and_unknown_sheet(sandbox, write_config, invoke, tmp_path):
    """--sheet picks a sheet; a sheet that does not exist is a one-line error, exit 2."""
    source = tmp_path / "libro.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.title = "Notas"
    workbook.active.append(["nada"])
    data = workbook.create_sheet("Clientes")
    data.append(["Nombre", "Teléfono", "Correo"])
    data.append(["Ana", PHONES[5], None])
    workbook.save(source)
    config = write_config(sandbox.url)
    missing = invoke("run", source, "--config", config, "--sheet", "Ventas")
    assert missing.exit_code == 2
    assert missing.stderr == ("Error: libro.xlsx: no sheet named 'Ventas' (sheets: Notas,"
                              " Clientes)\n")
    result = invoke("run", source, "--config", config, "--sheet", "Clientes")
    assert result.exit_code == 0, result.output
    assert sandbox.state.ticket_bodies()[0]["to_phone_number"] == PHONES[5]


def test_blank_rows_are_ignored_and_rows_keep_spreadsheet_numbers(write_config, invoke, write_csv,
                                                                   tmp_path):
    """Fully blank rows never reach the report; the others keep the number Excel shows."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""],
                        ["", "", ""], [" ", " ", ""], ["Luis", PHONES[1], ""]])
    result = invoke("validate", source, "--config", write_config(), api_key=None)
    assert result.exit_code == 0, result.output
    assert [row["row"] for row in read_results(tmp_path / "clientes-import")] == ["2", "5"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("vacio.csv", b"", "vacio.csv: the file is empty"),
    ("solo.csv", "Nombre,Teléfono,Correo\r\n".encode(), "solo.csv: no data rows below the header"),
    ("libro.csv", b"PK\x03\x04 zipped",
     "libro.csv: looks like an XLSX workbook, not a CSV; name it .xlsx"),
    ("datos.xlsx", b"Nombre,Telefono\n",
     "datos.xlsx: not an XLSX workbook (is it a CSV renamed .xlsx?)"),
    ("viejo.xls", b"\xd0\xcf\x11\xe0",
     "viejo.xls: an old Excel 97-2003 workbook: save it as .xlsx or .csv"),
    ("hoja.ods", b"PK\x03\x04 zipped",
     "hoja.ods: an OpenDocument spreadsheet: save it as .xlsx or .csv"),
    ("hoja.numbers", b"PK\x03\x04 zipped",
     "hoja.numbers: an Apple Numbers file: save it as .xlsx or .csv"),
])
def test_unreadable_inputs_are_one_line_errors(write_config, invoke, tmp_path, name, content,
                                               message):
    """Empty files, header-only files and files that lie about their type: exit 2, one line."""
    (tmp_path / name).write_bytes(content)
    result = invoke("validate", tmp_path / name, "--config", write_config())
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"


def test_missing_input_file(write_config, invoke, tmp_path):
    """A path that does not exist is named in the error."""
    result = invoke("validate", tmp_path / "nope.csv", "--config", write_config())
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'nope.csv'}: input file not found\n"


def test_wrong_explicit_encoding_names_the_row(write_config, invoke, write_csv, tmp_path):
    """A configured encoding that does not fit the bytes is reported with the row."""
    source = write_csv([["Nombre", "Teléfono", "Correo"], ["Ana", PHONES[0], ""],
                        ["Begoña", PHONES[1], ""]], encoding="cp1252")
    config = write_config(input={"encoding": "utf-8"})
    result = invoke("validate", source, "--config", config)
    assert result.exit_code == 2
    assert result.stderr == ("Error: clientes.csv: row 1 is not valid utf-8 text;"
                             " check [input] encoding\n")


def test_neutralized_cells_are_restored_on_reading(write_csv):
    """An apostrophe that errors.csv put before ``+`` or ``=`` is removed again."""
    table = open_table(write_csv([["Teléfono", "Nota"], ["'+56987654321", "'=1+1"],
                                  ["'hola", "it's"]]))
    assert [row.cells for row in table.rows()] == [("+56987654321", "=1+1"), ("'hola", "it's")]
