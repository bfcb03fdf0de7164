"""The expat sheet reader reads every cell as openpyxl's own parser does.

The reference is openpyxl's streaming ``WorkSheetParser`` (``data_only=True``), with the one
rule the importer adds: a formula without a cached value reads as UNCALCULATED. Workbooks:
written by openpyxl (normal and write-only modes), with every
kind of value, and sheets written by hand the ways other producers write them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zipfile
from pathlib import Path

import openpyxl
import pytest
from openpyxl.cell.rich_text import CellRichText, TextBlock
from openpyxl.cell.text import InlineFont
from openpyxl.worksheet._reader import FORMULA_TAG, WorkSheetParser

from importer.exceptions import InputFileError
from importer.read import UNCALCULATED
from importer.sheet import SheetParser, load

ROOT = Path(__file__).resolve().parent.parent
VALUES = [
    "text", "", " spaced ", "56912345678", "+56 9 8765 4321", "ñandú ÁÉÍ", "línea\nnueva",
    56912345678, 0, -7, 12345678901234567890, 3.5, -0.25, 5.69123e10, 1e-7, 1e300, True, False,
    dt.datetime(2026, 11, 26, 13, 45), dt.datetime(2026, 11, 26), dt.date(1999, 12, 31),
    dt.time(8, 30), dt.timedelta(hours=30), "=A1+1", "=SUM(B1:B3)", "#N/A", "#DIV/0!", None,
]


def reference_rows(path: Path, sheet: str) -> list:
    """openpyxl's parser, as the importer used it before the expat reader."""
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        worksheet = workbook[sheet]

        class Parser(WorkSheetParser):
            def parse_cell(self, element):
                cell = super().parse_cell(element)
                if cell["value"] is None and element.find(FORMULA_TAG) is not None:
                    cell["value"] = UNCALCULATED
                return cell

        with worksheet._get_source() as source:
            parser = Parser(source, worksheet._shared_strings, data_only=True,
                            epoch=workbook.epoch, date_formats=workbook._date_formats,
                            timedelta_formats=workbook._timedelta_formats)
            return [(number, [(cell["column"], cell["value"]) for cell in cells])
                    for number, cells in parser.parse()]
    finally:
        workbook.close()


def our_rows(path: Path, sheet: str) -> list:
    workbook = load(path)
    try:
        return list(SheetParser(path.name, workbook, uncalculated=UNCALCULATED).rows(sheet))
    finally:
        workbook.close()


def assert_same_cells(path: Path) -> None:
    workbook = load(path)
    sheets = list(workbook.sheets)
    workbook.close()
    for sheet in sheets:
        ours, theirs = our_rows(path, sheet), reference_rows(path, sheet)
        assert ours == theirs
        for (_, mine), (_, reference) in zip(ours, theirs, strict=True):  # 1 == 1.0 == True
            assert [type(value) for _, value in mine] == [type(value) for _, value in reference]


@pytest.mark.parametrize("write_only", [False, True], ids=["workbook", "write-only"])
def test_every_kind_of_value_reads_as_openpyxl_reads_it(tmp_path, write_only):
    workbook = openpyxl.Workbook(write_only=write_only)
    sheet = workbook.create_sheet("Datos") if write_only else workbook.active
    for offset in range(len(VALUES)):
        sheet.append(VALUES[offset:] + VALUES[:offset])
    if not write_only:
        sheet["C40"] = "far below, after empty rows"
        sheet["AB3"] = "far right"
        sheet["B5"].number_format = "yyyy-mm-dd"  # a number under a date style
        sheet["A6"] = CellRichText("rich ", TextBlock(InlineFont(b=True), "text"))
    path = tmp_path / "values.xlsx"
    workbook.save(path)
    assert_same_cells(path)


def test_the_bundled_sample_reads_as_openpyxl_reads_it():
    assert_same_cells(ROOT / "sample_data" / "campana_noviembre.xlsx")


HAND_WRITTEN = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<x:dimension ref="A1:D9"/><x:sheetData>
<x:row r="1"><x:c r="A1" t="str"><x:v>Teléfono</x:v></x:c><x:c r="B1" t="inlineStr"><x:is>
<x:r><x:t>Nom</x:t></x:r><x:r><x:rPr><x:b/></x:rPr><x:t xml:space="preserve">bre </x:t></x:r>
<x:rPh sb="0" eb="1"><x:t>ignored</x:t></x:rPh></x:is></x:c></x:row>
<x:row><x:c><x:v>56987654321</x:v></x:c><x:c t="inlineStr"><x:is><x:t>sin r</x:t></x:is></x:c></x:row>
<x:row r="4"><x:c r="A4" t="b"><x:v>1</x:v></x:c><x:c r="C4" t="e"><x:v>#REF!</x:v></x:c>
<x:c r="D4" t="d"><x:v>2026-11-26T10:00:00</x:v></x:c></x:row>
<x:row r="5"><x:c r="A5"><x:f>B5*2</x:f></x:c><x:c r="B5"><x:f>1+1</x:f><x:v>2</x:v></x:c>
<x:c r="C5" t="str"><x:f>A1</x:f><x:v></x:v></x:c><x:c r="D5"/></x:row>
<x:row r="7.0"><x:c r="A7"><x:v>5.69123E+10</x:v></x:c><x:c r="B7" t="inlineStr"/></x:row>
</x:sheetData></x:worksheet>"""  # noqa: E501 - a worksheet as Excel writes it, line breaks and all


def _with_sheet_xml(tmp_path: Path, xml: str, strings: str | None = None) -> Path:
    """A workbook saved by openpyxl whose first sheet's XML (and shared strings) are
    replaced by ``xml`` (and ``strings``)."""
    plain = tmp_path / "plain.xlsx"
    workbook = openpyxl.Workbook()  # (this openpyxl writes inline strings, never a table)
    workbook.active.title = "Hoja1"
    workbook.save(plain)
    path = tmp_path / "hand.xlsx"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = xml.encode()
            elif item.filename == "[Content_Types].xml" and strings is not None:
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml"'
                                    b' ContentType="application/vnd.openxmlformats-officedocument'
                                    b'.spreadsheetml.sharedStrings+xml"/></Types>')
            target.writestr(item, data)
        if strings is not None:
            target.writestr("xl/sharedStrings.xml", strings.encode())
    return path


STRINGS = """<?xml version="1.0" encoding="UTF-8"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="4" uniqueCount="4">
<si><t>Teléfono</t></si>
<si><r><t>Nom</t></r><r><rPr><b/></rPr><t xml:space="preserve">bre </t></r><rPh sb="0" eb="1"><t>no</t></rPh></si>
<si><t>a_x005F_x000D_b &amp; &lt;c&gt;</t></si>
<si><t/></si>
</sst>"""  # noqa: E501 - shared strings as Excel writes them, line breaks and all
SHARED = """<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>
<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2" t="s"><v>3</v></c></row>
<row r="3"><c r="A3" t="s"><v>1</v></c><c r="B3" t="s"><v>9</v></c></row>
</sheetData></worksheet>"""


def test_shared_strings_read_as_openpyxl_reads_them(tmp_path):
    """Rich runs joined, phonetic runs left out, entities decoded, openpyxl's x005F_ removal,
    an empty string; an index past the table is one clear error, as in openpyxl it is none."""
    path = _with_sheet_xml(tmp_path, SHARED.replace('<c r="B3" t="s"><v>9</v></c>', ""), STRINGS)
    assert_same_cells(path)
    assert our_rows(path, "Hoja1")[0][1] == [(1, "Teléfono"), (2, "Nombre ")]
    with pytest.raises(InputFileError, match="cell B3 holds '9'"):
        our_rows(_with_sheet_xml(tmp_path, SHARED, STRINGS), "Hoja1")


def test_sheets_written_by_hand_read_as_openpyxl_reads_them(tmp_path):
    """Prefixed tags, rows and cells without references, rich and phonetic runs, booleans,
    errors, ISO dates, formulas with and without a cached value, a row number as "7.0"."""
    path = _with_sheet_xml(tmp_path, HAND_WRITTEN)
    assert_same_cells(path)
    rows = our_rows(path, "Hoja1")
    assert rows[0][1] == [(1, "Teléfono"), (2, "Nombre ")]
    assert rows[3][1][0] == (1, UNCALCULATED)


SHEET_OF = ('<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            '<sheetData><row r="1">{}</row></sheetData></worksheet>')


@pytest.mark.parametrize(("xml", "problem"), [
    ('<!DOCTYPE x [<!ENTITY a "aaaa">]><worksheet/>', "declares a DTD"),
    ("<worksheet><sheetData><row>", "not well-formed XML"),
    (SHEET_OF.format('<c r="A1" t="s"><v>99</v></c>'), "cell A1 holds '99'"),
    (SHEET_OF.format('<c r="1A"><v>1</v></c>'), "invalid reference '1A'"),
])
def test_a_broken_sheet_is_one_clear_error(tmp_path, xml, problem):
    path = _with_sheet_xml(tmp_path, xml)
    with pytest.raises(InputFileError, match=problem):
        our_rows(path, "Hoja1")


def _children() -> set[str]:
    """This process's child processes' command lines (Linux)."""
    import os

    found = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                found.add(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def test_a_large_workbook_is_read_by_a_second_process_the_same_way(tmp_path, monkeypatch):
    """Above WORKER_FILE_BYTES the rows come from a reader process: the same rows, the same
    one-line errors, and no process left behind when reading stops early."""
    from importer import read

    sample = ROOT / "sample_data" / "campana_noviembre.xlsx"
    broken = _with_sheet_xml(tmp_path, SHARED, STRINGS)
    inline_rows = list(read.open_table(sample).rows())
    with pytest.raises(InputFileError) as inline_error:
        list(read.open_table(broken).rows())
    monkeypatch.setattr(read, "WORKER_FILE_BYTES", 0)
    assert list(read.open_table(sample).rows()) == inline_rows
    with pytest.raises(InputFileError) as worker_error:
        list(read.open_table(broken).rows())
    assert str(worker_error.value) == str(inline_error.value)
    large = tmp_path / "large.xlsx"  # more rows than the pipe holds: the reader must wait
    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Clientes")
    sheet.append(["Nombre", "Teléfono"])
    for number in range(20_000):
        sheet.append([f"Cliente {number}", f"+56 9 8{number:07d}"])
    workbook.save(large)
    rows = read.open_table(large).rows()
    assert next(rows).cells == ("Cliente 0", "+56 9 80000000")
    assert any("importer.reader_process" in line for line in _children())
    rows.close()
    assert not any("importer.reader_process" in line for line in _children())


def test_a_reader_process_that_cannot_start_leaves_the_reading_to_the_importer(monkeypatch):
    """A frozen build or a broken interpreter: the rows are read in process, all of them."""
    from importer import read

    sample = ROOT / "sample_data" / "campana_noviembre.xlsx"
    expected = list(read.open_table(sample).rows())
    monkeypatch.setattr(read, "WORKER_FILE_BYTES", 0)
    monkeypatch.setattr(read.sys, "executable", "/bin/false")
    assert list(read.open_table(sample).rows()) == expected
    monkeypatch.setattr(read.sys, "executable", "/nonexistent/python")
    assert list(read.open_table(sample).rows()) == expected


def test_valid_xml_that_is_no_worksheet_is_one_line(tmp_path, invoke, write_config):
    """A cell inside a cell's value (valid XML, not a worksheet) is the file's problem, said
    in one line with exit 2, never an unexpected error."""
    import zipfile

    import openpyxl

    path = tmp_path / "raro.xlsx"
    workbook = openpyxl.Workbook()
    workbook.active.append(["Teléfono"])
    workbook.active.append(["+56987654321"])
    workbook.save(path)
    with zipfile.ZipFile(path) as source:
        parts = {name: source.read(name) for name in source.namelist()}
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    import re

    parts["xl/worksheets/sheet1.xml"] = re.sub(  # a cell inside a cell's value
        r'<row r="2">.*?</row>', '<row r="2"><c r="A2"><v>1<c r="B2"><v>2</v></c>3</v></c></row>',
        sheet).encode()
    with zipfile.ZipFile(path, "w") as target:
        for name, data in parts.items():
            target.writestr(name, data)
    result = invoke("validate", path, "--config", write_config(), api_key=None)
    assert result.exit_code == 2, result.output
    assert "unexpected" not in result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
