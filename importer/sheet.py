"""A worksheet's rows, streamed out of its XML with expat, as openpyxl would read them.

openpyxl's read-only parser builds an element for every cell and reads it back in Python:
133 us a row of eight cells with shared strings, 183 us with inline strings, measured here,
against about 55 us to validate the row. This parser hands expat a callback per tag and
keeps no tree: about 65 us a row, in the same flat memory. It reads cells the way
openpyxl's parser does with ``data_only=True`` (shared strings, inline and rich text,
numbers as int or float, booleans, error values, ISO and serial dates under a date style);
openpyxl's reader steps load the sheet list, styles and date epoch, and the shared strings
are streamed here as far as the cells need them. A formula without a cached value reads as
``uncalculated``. ``tests/test_sheet.py`` compares it with openpyxl's parser cell by cell.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from xml.parsers import expat

from .exceptions import InputFileError
from .openpyxl_adapter import from_excel, from_ISO8601, load_parts

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_ROW, _CELL, _VALUE, _FORMULA = (f"{_MAIN} {tag}" for tag in ("row", "c", "v", "f"))
_INLINE, _TEXT, _ITEM, _PHONETIC = (f"{_MAIN} {tag}" for tag in ("is", "t", "si", "rPh"))
_CHUNK = 1 << 16


class _Misplaced(Exception):
    """Valid XML that is no worksheet: text or a cell where the format has none
    (``<c>`` inside ``<v>``, ``<si>`` inside ``<si>``)."""
_DIGITS = "0123456789"


@dataclass
class Workbook:
    """What reading a workbook's cells takes, loaded with openpyxl's own reader steps.
    Not ``load_workbook``: its read-only worksheets scan each whole sheet at every load
    when the sheet has no ``<dimension>`` (openpyxl's own write-only files have none)."""

    archive: zipfile.ZipFile
    sheets: dict[str, str]  # worksheet name -> its part in the archive, in workbook order
    shared_strings: SharedStrings
    epoch: dt.datetime
    date_formats: set[int]
    timedelta_formats: set[int]

    def close(self) -> None:
        self.archive.close()


def load(path: Path) -> Workbook:
    """The workbook's sheets, shared strings and date styles (openpyxl's reader steps)."""
    parts = load_parts(path)
    shared = SharedStrings(parts.archive, parts.shared_strings_part, path.name)
    return Workbook(parts.archive, parts.sheets, shared, parts.epoch, parts.date_formats,
                    parts.timedelta_formats)


class SharedStrings:
    """The workbook's shared strings, read as openpyxl's ``read_string_table`` reads them
    (the text of each ``<si>`` without phonetic runs, ``x005F_`` removed), but streamed and
    only as far as the cells read so far need: the header row needs the first few, and
    openpyxl's table costs 40 us a string (800,000 strings in a 200,000-row export)."""

    def __init__(self, archive: zipfile.ZipFile, part: str | None, name: str) -> None:
        self._strings: list[str] = []
        self._name = name
        self._source = archive.open(part) if part else None
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.buffer_text = True
        text: str | None = None
        item: str | None = None
        phonetic = 0

        def start(tag: str, _: dict) -> None:
            nonlocal text, item, phonetic
            if tag == _TEXT:
                if item is not None and not phonetic:
                    text = ""
            elif tag == _ITEM:
                item = ""
            elif tag == _PHONETIC:
                phonetic += 1

        def characters(data: str) -> None:
            nonlocal text
            if text is not None:
                text += data

        def end(tag: str) -> None:
            nonlocal text, item, phonetic
            if tag == _TEXT:
                if text is not None:
                    if item is None:  # text is read only inside an <si>: else not a worksheet
                        raise _Misplaced
                    item += text
                    text = None
            elif tag == _ITEM:
                if item is None:  # expat matches each </si> with its <si>: else not a worksheet
                    raise _Misplaced
                self._strings.append(item.replace("x005F_", ""))
                item = None
            elif tag == _PHONETIC:
                phonetic -= 1

        self._parser.StartElementHandler = start
        self._parser.EndElementHandler = end
        self._parser.CharacterDataHandler = characters
        self._parser.StartDoctypeDeclHandler = _refuse_doctype(name)

    def __getitem__(self, index: int) -> str:
        if index < 0:
            raise IndexError(index)
        while index >= len(self._strings) and self._source is not None:
            chunk = self._source.read(_CHUNK)
            try:
                self._parser.Parse(chunk, not chunk)
            except (expat.ExpatError, _Misplaced) as error:
                raise InputFileError(f"{self._name}: the shared strings are not well-formed"
                                     f" XML ({str(error) or 'an element where none can be'})"
                                     ) from None
            if not chunk:
                self._source.close()
                self._source = None
        return self._strings[index]


def _refuse_doctype(name: str) -> Callable[..., None]:
    def refuse(*_: object) -> None:
        raise InputFileError(f"{name}: the workbook declares a DTD, which Excel never writes;"
                             " refused")
    return refuse


def _column_index(letters: str) -> int:
    """``A`` -> 1, ``AA`` -> 27; 0 when the letters are not a column."""
    index = 0
    for letter in letters:
        if not "A" <= letter <= "Z":
            return 0
        index = index * 26 + ord(letter) - 64
    return index


class SheetParser:
    """One worksheet's rows as (row number, [(column, value), ...]), streamed.

    The expat callbacks run once per tag, three to seven times per cell: they keep their
    state in closure variables and do no more than note what a cell holds; the cell is
    read (:meth:`_read_cell`) at its end tag."""

    def __init__(self, name: str, workbook: Workbook, *, uncalculated: object) -> None:
        self.name = name
        self.workbook = workbook
        self.shared_strings = workbook.shared_strings
        self.epoch = workbook.epoch
        self.date_formats = workbook.date_formats
        self.timedelta_formats = workbook.timedelta_formats
        self.uncalculated = uncalculated
        self._columns: dict[str, int] = {}

    def rows(self, sheet: str) -> Iterator[tuple[int, list]]:
        """(row number, [(column, value), ...]) for each row of the sheet, in file order."""
        with self.workbook.archive.open(self.workbook.sheets[sheet]) as source:
            yield from self._parse(source)

    def _parse(self, source: IO[bytes]) -> Iterator[tuple[int, list]]:
        rows: list[tuple[int, list]] = []
        row = column = phonetic = 0
        cells: list = []
        cell: list | None = None  # [type, reference, style, value, has formula, inline text]
        text: str | None = None  # the <v> or inline <t> being read
        read_cell = self._read_cell

        def start(tag: str, attributes: dict[str, str]) -> None:
            nonlocal row, column, cells, cell, text, phonetic
            if tag == _CELL:
                cell = [attributes.get("t", "n"), attributes.get("r"), attributes.get("s"),
                        None, False, None]
            elif tag == _VALUE:
                if cell is not None:
                    text = ""
            elif tag == _INLINE:
                if cell is not None:
                    cell[5] = ""
            elif tag == _TEXT:
                if cell is not None and cell[5] is not None and not phonetic:
                    text = ""
            elif tag == _ROW:
                row = self._row_number(attributes.get("r"), row)
                column = 0
                cells = []
            elif tag == _FORMULA:
                if cell is not None:
                    cell[4] = True
            elif tag == _PHONETIC:
                phonetic += 1

        def characters(data: str) -> None:
            nonlocal text
            if text is not None:
                text += data

        shared = self.shared_strings
        columns = self._columns

        def end(tag: str) -> None:
            nonlocal column, cell, text, phonetic
            if tag == _CELL:
                if cell is None:
                    return
                kind, reference, _, value, _, _ = cell
                known = columns.get(reference.rstrip(_DIGITS)) if reference else None
                string = None
                if kind == "s" and known and value is not None and value.isdigit():
                    try:  # the common cell, read here: a shared string
                        string = shared[int(value)]
                    except IndexError:
                        pass  # read_cell says what is wrong
                if string is not None:
                    if known is None:  # a string only for a known column
                        raise _Misplaced
                    column = known
                    cells.append((known, string))
                else:
                    column = read_cell(cell, column)
                    cells.append((column, cell[3]))
                cell = None
            elif tag == _VALUE:
                if text is not None:
                    if cell is None:  # text is read only inside a <c>: else not a worksheet
                        raise _Misplaced
                    if cell[3] is None:  # the first <v>, as findtext reads it
                        cell[3] = text or None
                    text = None
            elif tag == _TEXT:
                if text is not None:
                    if cell is None:  # text is read only inside a <c>: else not a worksheet
                        raise _Misplaced
                    cell[5] += text
                    text = None
            elif tag == _ROW:
                rows.append((row, cells))
            elif tag == _PHONETIC:
                phonetic -= 1

        parser = expat.ParserCreate(namespace_separator=" ")
        parser.buffer_text = True
        parser.StartElementHandler = start
        parser.EndElementHandler = end
        parser.CharacterDataHandler = characters
        parser.StartDoctypeDeclHandler = _refuse_doctype(self.name)
        try:
            while chunk := source.read(_CHUNK):
                parser.Parse(chunk, False)
                if rows:
                    yield from rows
                    rows.clear()
            parser.Parse(b"", True)
        except (expat.ExpatError, _Misplaced) as error:
            raise InputFileError(f"{self.name}: the sheet is not well-formed XML"
                                 f" ({str(error) or 'an element where none can be'})") from None
        yield from rows

    def _read_cell(self, cell: list, column: int) -> int:
        """Turns the cell's noted text into its value (in ``cell[3]``); returns its column."""
        kind, reference, style, text, formula, inline = cell
        if reference:
            column = self._columns.get(reference.rstrip(_DIGITS)) or self._column_of(reference)
        else:
            column += 1
        if kind == "inlineStr":
            value = inline
        elif text is None:
            value = None
        else:
            try:
                value = self._value(kind, style, text)
            except (ValueError, IndexError):
                raise InputFileError(f"{self.name}: cell {reference or column} holds {text!r},"
                                     f" which is not a valid {kind!r} value") from None
        cell[3] = self.uncalculated if value is None and formula else value
        return column

    def _value(self, kind: str, style: str | None, text: str) -> object:
        if kind == "s":
            return self.shared_strings[int(text)]
        if kind == "n":
            value = float(text) if ("." in text or "E" in text or "e" in text) else int(text)
            style_id = int(style) if style else 0
            if style_id in self.date_formats:
                try:
                    return from_excel(value, self.epoch,
                                      timedelta=style_id in self.timedelta_formats)
                except (OverflowError, ValueError):
                    return "#VALUE!"  # as openpyxl reads a date serial out of range
            return value
        if kind == "b":
            return bool(int(text))
        if kind == "d":
            return from_ISO8601(text)
        return text  # "str", "e" and anything else: the text as written

    def _column_of(self, reference: str) -> int:
        letters = reference.rstrip(_DIGITS)
        column = _column_index(letters)
        if not column or letters == reference:
            raise InputFileError(f"{self.name}: a cell has an invalid reference {reference!r}")
        self._columns[letters] = column
        return column

    def _row_number(self, text: str | None, previous: int) -> int:
        if text is None:
            return previous + 1
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = 0.5
            if not number.is_integer():
                raise InputFileError(f"{self.name}: a row has an invalid number {text!r}") from None
            return int(number)
