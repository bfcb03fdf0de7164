"""Target 5: `validate` keeps up with phonenumbers, and XLSX keeps up with CSV.

    python bench/bench_validate.py [--rows 200000] [--distinct 50000] [--repeats 3] [--openpyxl]

The file is the one the issue on validation speed describes: Chilean mobiles, 2% of them
invalid (too short, unallocated, letters, scientific notation), 8 columns including a
country column, and a config with every check of the cells-and-countries issue in place
(cell errors, letters, the country column, international readings, phone_check = "mobile").
Printed, each measured side by side in one run (medians of ``--repeats``):

1. every phone distinct: `validate` against a bare loop of phonenumbers parse +
   is_valid_number + format_number over the same column (target >= 0.8);
2. a campaign repeating ``--distinct`` people (target >= 1.0);
3. the distinct file as an XLSX workbook against the CSV (target >= 0.5 of its speed);
   with ``--openpyxl``, also openpyxl's read-only ``iter_rows`` over that workbook, per row;
4. ``run --limit 1`` on both (the plan pass, which reads the file once, one ticket to an
   in-process sandbox, the reports).
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import tempfile
import time
from pathlib import Path

import phonenumbers
from _common import FORMATS, STAGE, machine, people, run_importer
from phonenumbers import NumberParseException

HEADERS = ["Nombre", "Teléfono", "Correo", "Empresa", "Pedido", "Ciudad", "Monto", "País"]
CITIES = ["Santiago", "Valparaíso", "Concepción", "Antofagasta", "Temuco", "La Serena"]
INVALID = (
    lambda d: f"+56 9 {d[:4]} {d[4:7]}",  # a digit short
    lambda d: f"+56 9 1{d[1:4]} {d[4:]}",  # +56 9 1...: unallocated
    lambda d: f"9 {d[:4]} {d[4:6]}ab",  # letters
    lambda d: f"5.69{d[:3]}E+10",  # Excel's scientific notation
)


def write_file(path: Path, rows: int, *, distinct: int | None, seed: int = 1) -> list[str]:
    """The issue's CSV; returns its phone column."""
    rng = random.Random(seed)
    phones = []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for n, person, digits in people(rows, distinct, seed, rng):
            if rng.random() < 0.02:
                phone = INVALID[n % len(INVALID)](digits)
            else:
                phone = FORMATS[person % len(FORMATS)](digits)
            phones.append(phone)
            writer.writerow([f"Cliente {person}", phone, f"cliente{person}@example.com",
                             f"Empresa {person % 97}", str(100_000 + n), CITIES[person % 6],
                             f"{rng.randint(1000, 500000)}", "Chile"])
    return phones


def write_config(path: Path) -> None:
    path.write_text(
        '[api]\nbase_url = "http://127.0.0.1:9"\nphone_id = "123456789"\n'
        "rate_limit_per_second = 5\nmax_concurrency = 8\ntimeout_seconds = 30\n"
        '[columns]\nphone = "Teléfono"\ncontact_name = "Nombre"\nemail = "Correo"\n'
        'country = "País"\n'
        f'[defaults]\nstage_id = "{STAGE}"\ncountry = "CL"\nphone_check = "mobile"\n'
        '[contact_metadata]\ncompany = "Empresa"\ncity = "Ciudad"\n'
        '[ticket_metadata]\norder_id = "Pedido"\namount = "Monto"\n',
        encoding="utf-8",
    )


def write_workbook(source: Path, target: Path) -> None:
    """The CSV as Excel saves it: strings in a shared-strings table, digits-only cells as
    numbers, a <dimension> (openpyxl's write-only mode writes inline strings instead, which
    no Excel file holds). openpyxl saves the frame; the sheet and strings are written here."""
    import zipfile
    from xml.sax.saxutils import escape

    import openpyxl

    frame = target.with_suffix(".frame.xlsx")
    workbook = openpyxl.Workbook()
    workbook.active.title = "Clientes"
    workbook.save(frame)
    strings: dict[str, int] = {}
    rows = []
    with source.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            cells = []
            for column, text in enumerate(row):
                reference = f"{chr(65 + column)}{number}"
                if number > 1 and text.isdigit() and len(text) < 16:
                    cells.append(f'<c r="{reference}"><v>{text}</v></c>')
                else:
                    index = strings.setdefault(text, len(strings))
                    cells.append(f'<c r="{reference}" t="s"><v>{index}</v></c>')
            rows.append(f'<row r="{number}">{"".join(cells)}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    sheet = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{main}">'
             f'<dimension ref="A1:{chr(64 + len(HEADERS))}{len(rows)}"/><sheetData>'
             + "".join(rows) + "</sheetData></worksheet>")
    shared = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="{main}"'
              f' count="{len(strings)}" uniqueCount="{len(strings)}">'
              + "".join(f"<si><t>{escape(text)}</t></si>" for text in strings) + "</sst>")
    with zipfile.ZipFile(frame) as original, \
            zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in original.infolist():
            data = original.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = sheet.encode()
            elif item.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml"'
                                    b' ContentType="application/vnd.openxmlformats-officedocument'
                                    b'.spreadsheetml.sharedStrings+xml"/></Types>')
            elif item.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Id="rIdStrings"'
                                    b' Type="http://schemas.openxmlformats.org/officeDocument/2006'
                                    b'/relationships/sharedStrings" Target="sharedStrings.xml"/>'
                                    b"</Relationships>")
            copy.writestr(item.filename, data)
        copy.writestr("xl/sharedStrings.xml", shared.encode())
    frame.unlink()


def bare_loop(phones: list[str]) -> float:
    started = time.perf_counter()
    for text in phones:
        try:
            number = phonenumbers.parse(text, "CL")
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return time.perf_counter() - started


def validate(source: Path, config: Path, out: Path) -> float:
    seconds, done = run_importer("validate", str(source), "--config", str(config),
                                 "--out", str(out), env={"VAMBE_API_KEY": ""})
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    return seconds


def plan_run(source: Path, config: Path, out: Path) -> float:
    """``run`` up to its first request: the plan pass (the only read of the file), one
    ticket to an in-process sandbox, the reports."""
    seconds, done = run_importer("run", str(source), "--config", str(config), "--out",
                                 str(out), "--sandbox", "--limit", "1", "--yes", "--quiet")
    if done.returncode not in (0, 1):
        raise SystemExit(done.stderr)
    return seconds


def openpyxl_rows(path: Path) -> float:
    import openpyxl

    started = time.perf_counter()
    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    for _ in workbook.worksheets[0].iter_rows(values_only=True):
        pass
    workbook.close()
    return time.perf_counter() - started


def against_phonenumbers(folder: Path, rows: int, distinct: int | None, repeats: int) -> Path:
    source = folder / f"campaign-{distinct}.csv"
    phones = write_file(source, rows, distinct=distinct)
    bare, importer = [], []
    for attempt in range(repeats):
        bare.append(bare_loop(phones))
        importer.append(validate(source, folder / "config.toml", folder / f"out-{attempt}"))
    bare_s, importer_s = statistics.median(bare), statistics.median(importer)
    label = f"{distinct:,} people repeated" if distinct else "every phone distinct"
    target = 1.0 if distinct else 0.8
    print(f"CSV, {rows:,} rows, {label}: bare phonenumbers loop {bare_s:.2f} s, vambe-import"
          f" validate {importer_s:.2f} s ({rows / importer_s:,.0f} rows/s); speed ratio"
          f" {bare_s / importer_s:.2f} (target >= {target})")
    return source


def xlsx_against_csv(folder: Path, source: Path, rows: int, repeats: int,
                     with_openpyxl: bool) -> None:
    workbook = folder / "campaign.xlsx"
    write_workbook(source, workbook)
    from_csv, from_xlsx = [], []
    for attempt in range(repeats):
        from_csv.append(validate(source, folder / "config.toml", folder / f"csv-{attempt}"))
        from_xlsx.append(validate(workbook, folder / "config.toml", folder / f"xlsx-{attempt}"))
    csv_s, xlsx_s = statistics.median(from_csv), statistics.median(from_xlsx)
    print(f"XLSX, the same {rows:,} rows: validate {xlsx_s:.2f} s against {csv_s:.2f} s for the"
          f" CSV; speed ratio {csv_s / xlsx_s:.2f} (target >= 0.5)")
    run_csv, run_xlsx = [], []
    for attempt in range(repeats):
        run_csv.append(plan_run(source, folder / "config.toml", folder / f"run-csv-{attempt}"))
        run_xlsx.append(plan_run(workbook, folder / "config.toml",
                                 folder / f"run-xlsx-{attempt}"))
    csv_s, xlsx_s = statistics.median(run_csv), statistics.median(run_xlsx)
    print(f"run --limit 1 (the plan pass, one ticket, the reports), the same {rows:,} rows:"
          f" XLSX {xlsx_s:.2f} s against {csv_s:.2f} s for the CSV; speed ratio"
          f" {csv_s / xlsx_s:.2f} (the file is read once per run)")
    if with_openpyxl:
        seconds = openpyxl_rows(workbook)
        print(f"openpyxl read-only iter_rows(values_only=True) alone: {seconds:.2f} s,"
              f" {seconds / rows * 1e6:.0f} us per row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--distinct", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--openpyxl", action="store_true",
                        help="also time openpyxl's own read-only reader over the workbook")
    options = parser.parse_args()
    print(f"bench_validate on {machine()}; medians of {options.repeats} runs side by side")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_config(folder / "config.toml")
        source = against_phonenumbers(folder, options.rows, None, options.repeats)
        against_phonenumbers(folder, options.rows, options.distinct, options.repeats)
        xlsx_against_csv(folder, source, options.rows, options.repeats, options.openpyxl)


if __name__ == "__main__":
    main()
