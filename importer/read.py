"""Read a CSV or XLSX export as rows of text, exactly as the user typed it.

Rows stream from the file (nothing holds the whole sheet), every cell is text trimmed of
surrounding spaces, and a row keeps its spreadsheet row number (header = row 1) so that
reports point at the line the user sees in Excel. CSV uses the stdlib reader: it streams
faster than pandas' C engine in flat memory (docs/design.md) and never turns ``NA`` or a
digits-only column into floats.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import os
import pickle
import re
import stat
import subprocess
import sys
import unicodedata
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from .exceptions import InputFileError

if TYPE_CHECKING:  # .sheet imports openpyxl, which loads only for XLSX (_load_workbook)
    from .sheet import Workbook

# Limits: a cell longer than MAX_CELL makes its row invalid (cell_too_long); a CSV field over
# MAX_CSV_FIELD, or a workbook beyond Excel's own limits or expanding like a zip bomb, stops
# the job before anything is sent.
MAX_CELL = 64 * 1024
MAX_CSV_FIELD = 16 << 20
EXCEL_MAX_ROWS = 1_048_576
EXCEL_MAX_COLUMNS = 16_384
MAX_EXPANSION = 100  # Excel's sheets compress 5-30 to 1; zeros and bombs, 1,000 to 1
MAX_PART_BYTES = 4 << 30
# Workbooks this large (about 50,000 rows) are parsed in a second process, in batches.
WORKER_FILE_BYTES = 2 << 20
_WORKER_BATCH = 500
# What a formula Excel never calculated reads as (a private-use character, never typed).
UNCALCULATED = "\ue000formula without a value"
# Excel's error values, as a cell shows them (and as a CSV export writes them).
EXCEL_ERRORS = frozenset(("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A",
                          "#SPILL!", "#CALC!", "#GETTING_DATA", "#FIELD!", "#BLOCKED!",
                          "#CONNECT!", "#BUSY!", "#UNKNOWN!"))
csv.field_size_limit(MAX_CSV_FIELD)

# A leading apostrophe is how errors.csv neutralizes cells Excel would run as formulas
# (OWASP CSV injection); the reader removes it again so a fixed file imports unchanged.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
_SAMPLE_BYTES = 64 * 1024
_SUSPECT = frozenset(("'", " ", "\t", "\r", "\n", "\xa0"))  # may need more than strip()
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
# The columns our error files add; read back, they are recognised, never mapped.
ERROR_COLUMNS = ("_row", "_status", "_error_code", "_error")
# Words that name a phone column, folded (lower case, no accents), Spanish and English.
PHONE_WORDS = frozenset(("telefono", "celular", "movil", "whatsapp", "phone", "mobile", "cel",
                         "fono", "tel", "numero", "number"))


def fold(text: str) -> str:
    """Lower case without accents or surrounding space: ``" Teléfono"`` -> ``"telefono"``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char)).strip()


def is_phone_header(header: str) -> bool:
    """Whether a header names a phone column: one of its words is a phone word (or its plural)."""
    words = re.split(r"[^a-z0-9]+", fold(header))
    return any(word in PHONE_WORDS or word.removesuffix("es") in PHONE_WORDS
               or word.removesuffix("s") in PHONE_WORDS for word in words)


class SourceRow(NamedTuple):
    """One non-blank data row: its spreadsheet row number and one text cell per header.

    The per-row records are NamedTuples: typed and immutable like frozen dataclasses, but
    built at tuple speed (frozen dataclasses set each field through object.__setattr__,
    7% of a validate run)."""

    number: int
    cells: tuple[str, ...]
    origin: int | None = None  # in one of our error files: the row in the original file


@dataclass(frozen=True, slots=True)
class Table:
    """An input file whose header has been read; :meth:`rows` reads the data from the start."""

    path: Path
    kind: str  # "csv" or "xlsx"
    headers: tuple[str, ...]
    encoding: str  # the CSV's encoding; errors.csv is written back in it
    delimiter: str
    sheet: str | None = None
    origin_column: int | None = None  # our error file's ``_row`` column, read back

    def with_headers(self, headers: tuple[str, ...]) -> Table:
        """This table with the header row as read; our error files' own columns (``_row``,
        ``_status``...) are recognised and set aside, never mapped or written twice."""
        origin_column = None
        if headers[-len(ERROR_COLUMNS):] == ERROR_COLUMNS:
            headers = headers[:-len(ERROR_COLUMNS)]
            origin_column = len(headers)
        return Table(self.path, self.kind, headers, self.encoding, self.delimiter, self.sheet,
                     origin_column)

    def rows(self, *, look_ahead: bool = True) -> Iterator[SourceRow]:
        """Yield every non-blank data row, streaming; a new call starts again at row 2.
        ``look_ahead=False``: never start a reader process (to read the first rows only)."""
        source = _xlsx_records(self, look_ahead) if self.kind == "xlsx" else _csv_records(self)
        width = len(self.headers)
        origin_at = self.origin_column
        next(source, None)  # the header row
        for number, record in enumerate(source, start=2):
            cells = tuple([_clean(cell) if cell[:1] in _SUSPECT else cell.strip()
                           for cell in record[:width]])
            if len(cells) < width:
                cells += ("",) * (width - len(cells))
            if any(cells):
                if origin_at is None:
                    yield SourceRow(number, cells)
                else:
                    origin = record[origin_at].strip() if len(record) > origin_at else ""
                    yield SourceRow(number, cells, int(origin) if origin.isdigit() else None)


OTHER_SPREADSHEETS = {
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "an Apple Numbers file",
    ".xls": "an old Excel 97-2003 workbook",
    ".xlsb": "a binary Excel workbook",
}


class NotAFileError(Exception):
    """A path that is there but is not a regular file; its text says what it is instead
    (``"is a FIFO, not a file"``)."""


_SPECIAL_FILES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                  (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISSOCK, "a socket"))


def _refuse_special(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
        raise NotAFileError(f"is {kind}, not a file")


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file, else :class:`NotAFileError`
    (a missing one raises os.stat's FileNotFoundError). Looked at before opening: opening a
    FIFO without a writer blocks, and a device such as /dev/zero never ends; O_NONBLOCK and a
    second look once open cover a file swapped in between."""
    _refuse_special(os.stat(path).st_mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    descriptor = os.open(path, flags)
    try:
        _refuse_special(os.fstat(descriptor).st_mode)
    except BaseException:
        os.close(descriptor)
        raise
    return open(descriptor, "rb")


# Excel keeps an encrypted workbook in an OLE2 compound file, as old .xls files are.
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def open_table(path: str | Path, *, sheet: str | None = None, encoding: str | None = None,
               delimiter: str | None = None, require_data: bool = True) -> Table:
    """Open a CSV or XLSX file and read its header, detecting what the config leaves out."""
    path = Path(path)
    try:
        with open_regular(path) as handle:
            head = handle.read(_SAMPLE_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        raise InputFileError(f"{path}: input file not found") from None
    except NotAFileError as error:
        raise InputFileError(f"{path}: {error}") from None
    except OSError as error:
        raise InputFileError(f"{path}: cannot read the input file ({error.strerror})") from None
    suffix = path.suffix.lower()
    if suffix in OTHER_SPREADSHEETS:
        raise InputFileError(f"{path.name}: {OTHER_SPREADSHEETS[suffix]}: save it as .xlsx or"
                             " .csv")
    if not head.strip():
        raise InputFileError(f"{path.name}: the file is empty")
    is_zip = head.startswith(b"PK\x03\x04")
    if suffix in (".xlsx", ".xlsm"):
        if head.startswith(_OLE2):
            raise InputFileError(f"{path.name}: a password-protected (encrypted) workbook, or an"
                                 " old .xls renamed: open it in Excel and save it as .xlsx"
                                 " without a password")
        if not is_zip:
            raise InputFileError(f"{path.name}: not an XLSX workbook (is it a CSV renamed .xlsx?)")
        table = _open_xlsx(path, sheet)
    else:
        table = _open_csv_checked(path, suffix, head, is_zip, encoding, delimiter)
    if require_data:
        _require_data(table)
    return table


def _open_csv_checked(path: Path, suffix: str, head: bytes, is_zip: bool, encoding: str | None,
                      delimiter: str | None) -> Table:
    if is_zip:
        raise InputFileError(f"{path.name}: looks like an XLSX workbook, not a CSV; name it .xlsx")
    if suffix not in (".csv", ".txt", ".tsv"):
        raise InputFileError(f"{path.name}: unsupported file type {suffix or '(none)'};"
                             " use .csv or .xlsx")
    return _open_csv(path, head, encoding, delimiter)


def _require_data(table: Table) -> None:
    if next(table.rows(look_ahead=False), None) is None:
        raise InputFileError(f"{table.path.name}: no data rows below the header")


def _clean(cell: str) -> str:
    cell = cell.strip()
    if len(cell) > 1 and cell[0] == "'" and (cell[1] in FORMULA_TRIGGERS
                                             or (cell[1:].isascii() and cell[1:].isdigit())):
        # Our own guard against formulas, or an export's mark that digits are text
        # (Shopify writes order and customer IDs as '7212345746411).
        return cell[1:]
    return cell


# ---------------------------------------------------------------- CSV


def _open_csv(path: Path, head: bytes, encoding: str | None, delimiter: str | None) -> Table:
    wide = encoding is not None and codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    if (b"\x00" in head and not wide
            and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))):
        raise InputFileError(f"{path.name}: binary data, not a CSV text file (for UTF-16"
                             " without a BOM, set [input] encoding = \"utf-16-le\" or"
                             " \"utf-16-be\")")
    encoding = encoding or detect_encoding(path, head)
    delimiter = delimiter or detect_delimiter(_first_line(path, encoding))
    table = Table(path, "csv", (), encoding, delimiter)
    header = next(_csv_records(table), None)
    if header is not None and len(header) > EXCEL_MAX_COLUMNS:  # (and no minute spent on them)
        raise InputFileError(f"{path.name}: row 1 has more than {EXCEL_MAX_COLUMNS:,} columns,"
                             " beyond Excel's own limit; refused")
    return table.with_headers(_checked_headers(path, header))


_LINE_END = re.compile(r"[\r\n]")


def _first_line(path: Path, encoding: str) -> str:
    """Row 1's first line, decoded: read in growing chunks, each decoded afresh (linear in
    its length, where codecs' StreamReader.readline is quadratic: 50 MB without a line end
    took minutes), and at most :data:`MAX_CSV_FIELD` bytes of it. Bytes that do not decode
    are row 1's fault only when no line end comes before them."""
    data = b""
    want = _SAMPLE_BYTES
    with path.open("rb") as handle:
        while True:
            data += handle.read(want - len(data))
            ended = len(data) < want
            try:
                text = codecs.getincrementaldecoder(encoding)().decode(data, final=ended)
            except UnicodeDecodeError as error:  # its offset counts from after any BOM
                valid = data[:error.start + len(data) - len(error.object)]
                text = codecs.getincrementaldecoder(encoding)().decode(valid)
                if not _LINE_END.search(text):
                    raise InputFileError(f"{path.name}: row 1 is not valid {encoding} text;"
                                         " check [input] encoding") from None
            line_end = _LINE_END.search(text)
            if line_end:
                return text[:line_end.start()]
            if ended:
                return text
            if len(data) > MAX_CSV_FIELD:
                raise InputFileError(
                    f"{path.name}: row 1 is longer than {MAX_CSV_FIELD >> 20} MiB: not a CSV"
                    " export anyone meant; nothing was sent")
            want = min(want * 4, MAX_CSV_FIELD + 1)


def detect_encoding(path: Path, head: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, else cp1252 as Spanish-locale Excel writes.

    The whole file is checked as UTF-8 (fast: about 1 GB/s) because a file can be plain
    ASCII for a million rows and hold its first accented name at the end.
    """
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if _decodes_as(path, "utf-8"):
        return "utf-8"
    return "cp1252" if _decodes_as(path, "cp1252") else "latin-1"


def _decodes_as(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def detect_delimiter(header_line: str) -> str:
    """The candidate that splits the header into the most columns (outside quotes: the
    even pieces between quote marks; str.count, not a loop over every character)."""
    outside = header_line.split('"')[::2]
    counts = {candidate: sum(piece.count(candidate) for piece in outside)
              for candidate in _CANDIDATE_DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","


def _csv_records(table: Table) -> Iterator[list[str]]:
    with table.path.open(encoding=table.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=table.delimiter)
        records = 0  # a record's row (its quoted line ends make reader.line_num run ahead)
        try:
            for record in reader:
                records += 1
                if "\x00" in "".join(record):
                    raise InputFileError(
                        f"{table.path.name}: row {reader.line_num} holds a NUL byte: the file"
                        " is damaged or not text; nothing was sent")
                yield record
        except UnicodeDecodeError:
            line = _first_undecodable_line(table.path, table.encoding) or reader.line_num + 1
            raise InputFileError(
                f"{table.path.name}: row {line} is not valid {table.encoding}"
                " text; check [input] encoding"
            ) from None
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                raise InputFileError(
                    f"{table.path.name}: row {records + 1} holds a cell larger than"
                    f" {MAX_CSV_FIELD >> 20} MiB: not an export anyone meant; nothing was sent"
                ) from None
            raise InputFileError(f"{table.path.name}: row {reader.line_num}: {error}") from None


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    """The line holding the first bytes ``encoding`` cannot decode (the text reader decodes
    8 KB ahead, so its own position says nothing). None for encodings whose line ends are
    not single bytes (UTF-16, UTF-32)."""
    if codecs.lookup(encoding).name.startswith(("utf-16", "utf-32")):
        return None
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return number
    return None


def _checked_headers(path: Path, header: list | tuple | None) -> tuple[str, ...]:
    headers = tuple(_clean(str(cell)) if cell is not None else "" for cell in header or ())
    while headers and not headers[-1]:
        headers = headers[:-1]
    if not headers:
        raise InputFileError(f"{path.name}: no header row (row 1 is empty)")
    return headers


# ---------------------------------------------------------------- XLSX


def _open_xlsx(path: Path, sheet: str | None) -> Table:
    workbook = _load_workbook(path)
    try:
        names = list(workbook.sheets)
        if not names:
            raise InputFileError(f"{path.name}: the workbook has no worksheet")
        only = names[0] if len(names) == 1 else None
        if sheet is not None and sheet not in names and not (
                only and _header(workbook, only, path.name)[-len(ERROR_COLUMNS):] == ERROR_COLUMNS):
            raise InputFileError(
                f"{path.name}: no sheet named {sheet!r} (sheets: {', '.join(names)})"
            )
        sheet = sheet if sheet in names else names[0]  # our errors.xlsx: its only sheet
        headers = _checked_headers(path, _header(workbook, sheet, path.name))
    finally:
        workbook.close()
    return Table(path, "xlsx", (), "utf-8-sig", ",", sheet).with_headers(headers)


def _header(workbook: Workbook, sheet: str, name: str) -> tuple[str, ...]:
    """Row 1, the header."""
    records = _sheet_records(workbook, sheet, name)
    try:
        return tuple(next(records, ()))
    finally:
        records.close()


def _load_workbook(path: Path) -> Workbook:
    """The workbook (a :class:`.sheet.Workbook`); openpyxl loads only for XLSX."""
    from openpyxl.utils.exceptions import InvalidFileException

    from . import sheet as sheet_reader

    _check_expansion(path)
    try:
        return sheet_reader.load(path)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, InvalidFileException) as error:
        raise InputFileError(f"{path.name}: not a readable XLSX workbook ({error})") from None


def _check_expansion(path: Path) -> None:
    """Refuse a workbook whose parts expand far more than Excel's ever do (a zip bomb: a
    1 MB file holding a 1 GB cell, a 3.7 MB one whose sheet is 1.1 GB), before parsing it."""
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise InputFileError(f"{path.name}: not a readable XLSX workbook ({error})") from None
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > MAX_PART_BYTES or (part.file_size > 32 << 20
                                                and ratio > MAX_EXPANSION):
            raise InputFileError(
                f"{path.name}: its part {part.filename} expands from"
                f" {part.compress_size / 2**20:.1f} MB to {part.file_size / 2**20:.0f} MB"
                f" ({ratio:.0f} to 1), which Excel never writes; refused, nothing was sent")


def _xlsx_records(table: Table, look_ahead: bool = True) -> Iterator[list[str]]:
    """The sheet's rows as text, row by row (a missing row is an empty one). A large
    workbook is parsed in a second process while this one validates or sends: parsing
    XML costs as much as validating, and the machines have two cores."""
    assert table.sheet is not None  # an XLSX table names its sheet (_open_xlsx)
    if look_ahead and table.path.stat().st_size >= WORKER_FILE_BYTES:
        yield from _records_from_worker(table.path, table.sheet)
    else:
        yield from _records_in_process(table.path, table.sheet)


def _records_in_process(path: Path, sheet: str) -> Iterator[list[str]]:
    workbook = _load_workbook(path)
    try:
        yield from _sheet_records(workbook, sheet, path.name)
    finally:
        workbook.close()


def _records_from_worker(path: Path, sheet: str) -> Iterator[list[str]]:
    """The sheet's rows from a reader process (``python -m importer.reader_process``), in
    pickled batches through a pipe whose buffer bounds how far it runs ahead. Its errors are
    raised here; closing the generator early stops it. A reader that cannot start at all (a
    frozen build, say: it exits without a word) leaves the reading to this process; one that
    dies (killed, out of memory) is an error, never a silent second reading. (A process of
    our own module rather than multiprocessing, whose "spawn" re-imports the caller's main
    script.)"""
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "importer.reader_process", str(path), sheet],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            # Its own process group: a terminal's Ctrl-C reaches the importer only, even while
            # the reader is still starting (before it can ignore SIGINT); the importer decides.
            process_group=0)
    except OSError:
        yield from _records_in_process(path, sheet)
        return
    assert process.stdout is not None  # stdout=PIPE
    heard = False
    try:
        while True:
            try:
                kind, payload = pickle.load(process.stdout)
            except (EOFError, pickle.UnpicklingError):  # it ended, or died in mid-message
                process.stdout.close()  # and whatever else it was writing stops now
                process.wait()
                break
            heard = True
            if kind == "rows":
                yield from payload
            elif kind == "end":
                return
            elif kind == "error":
                raise InputFileError(payload)
            else:
                raise InputFileError(f"{path.name}: the reader process failed ({payload})")
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()
        process.wait()
    code = process.returncode
    if heard or code < 0:
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        # (No "nothing was sent": a run's second reading of the sheet feeds the sending.)
        raise InputFileError(f"{path.name}: the reader process stopped ({how}) before the end"
                             " of the sheet")
    yield from _records_in_process(path, sheet)  # it never started: read here


def read_in_worker(path: Path, sheet: str, out: BinaryIO) -> None:
    """The reader process: pickled ("rows", batch) messages, then ("end", None), or the
    error. Only lists of text cross the pipe."""
    def send(kind: str, payload: object) -> None:
        pickle.dump((kind, payload), out, protocol=pickle.HIGHEST_PROTOCOL)

    try:
        workbook = _load_workbook(path)
        try:
            batch: list[list[str]] = []
            for values in _sheet_records(workbook, sheet, path.name):
                batch.append(values)
                if len(batch) == _WORKER_BATCH:
                    send("rows", batch)
                    batch = []
            send("rows", batch)
            send("end", None)
        finally:
            workbook.close()
    except InputFileError as error:
        send("error", str(error))
    except BaseException as error:  # noqa: BLE001 - a bug: the parent raises it, in one line
        send("crash", f"{type(error).__name__}: {error}")
    out.flush()


def _sheet_records(workbook: Workbook, sheet: str,
                   name: str) -> Generator[list[str], None, None]:
    """The sheet's rows as text, streamed by :mod:`.sheet` (openpyxl's own parser costs four
    times what validating a row does)."""
    expected = 1
    from .sheet import SheetParser

    for number, cells in SheetParser(name, workbook, uncalculated=UNCALCULATED).rows(sheet):
        if number > EXCEL_MAX_ROWS:
            raise InputFileError(f"{name}: more than {EXCEL_MAX_ROWS:,} rows, beyond"
                                 " Excel's own limit; refused")
        for _ in range(expected, number):
            yield []
        expected = number + 1
        values: list[str] = []
        for column, value in cells:
            if column > EXCEL_MAX_COLUMNS:
                raise InputFileError(f"{name}: row {number} has more than"
                                     f" {EXCEL_MAX_COLUMNS:,} columns, beyond Excel's own"
                                     " limit; refused")
            if column > len(values) + 1:
                values.extend([""] * (column - 1 - len(values)))
            values.append(cell_text(value))
        yield values


def cell_text(value: object) -> str:
    """An XLSX cell as the text the user sees: ``42`` not ``42.0``, dates in ISO 8601."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15g")  # Excel keeps 15 significant digits
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


# ---------------------------------------------------------------- opt-out lists


def opt_out_cells(path: Path, notes: list[str] | None = None
                  ) -> Iterator[tuple[int, str, str]]:
    """(row, column, cell) for every non-empty cell of every column named like a phone in an
    opt-out file (CSV or XLSX). A file or sheet with a single column is taken whole; its
    first line is a header only if it is not a number. Every sheet of a workbook is read (an
    opt-out list must fail closed: people listed on a second sheet are opted out too); a
    sheet of several columns none of which names a phone is said in ``notes``, and the
    column of a workbook of several sheets is named ``Sheet!Column``."""
    table = open_table(path, require_data=False)
    sheets: list[str | None] = [None]
    if table.kind == "xlsx":
        workbook = _load_workbook(path)
        try:
            sheets = list(workbook.sheets)
        finally:
            workbook.close()
    found = False
    for sheet in sheets:
        if sheet is not None and sheet != table.sheet:
            table = open_table(path, sheet=sheet, require_data=False)
        prefix = f"{sheet}!" if len(sheets) > 1 else ""
        columns = [index for index, header in enumerate(table.headers)
                   if is_phone_header(header)]
        if not columns and len(table.headers) == 1:
            columns = [0]
            header = table.headers[0]
            if re.fullmatch(r"[\d\s()+.-]+", header) and any(c.isdigit() for c in header):
                yield 1, prefix + header, header  # a bare list of numbers: an entry
        if not columns:
            if len(sheets) > 1 and notes is not None:
                notes.append(f"{path.name}: sheet {sheet!r} has no column named like a phone"
                             f" (its columns: {', '.join(repr(h) for h in table.headers)}):"
                             " not read as opt-outs")
            continue
        found = True
        for row in table.rows():
            for index in columns:
                if row.cells[index]:
                    yield row.number, prefix + table.headers[index], row.cells[index]
    if not found:
        raise InputFileError(
            f"{path.name} has no column named like a phone"
            f" (its columns: {', '.join(repr(h) for h in table.headers)})"
        )
