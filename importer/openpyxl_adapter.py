"""Every use of openpyxl's internals, in one place: the reader steps that load a workbook's
sheet list, styles and date epoch without ``load_workbook`` (which scans each whole sheet
when it has no ``<dimension>``), for :mod:`importer.sheet`'s own cell parser.

openpyxl is pinned below its next major version in pyproject.toml; :func:`check_shape`
(run by ``tests/test_adapters.py``) fails loudly, naming this module, if a release moves
what is used here.
"""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path
from typing import NamedTuple

from openpyxl.utils.datetime import from_excel, from_ISO8601

__all__ = ["WorkbookParts", "check_shape", "from_ISO8601", "from_excel", "load_parts"]


class WorkbookParts(NamedTuple):
    """What reading a workbook's cells takes, as openpyxl's reader finds it."""

    archive: zipfile.ZipFile
    sheets: dict[str, str]  # worksheet name -> its part in the archive, in workbook order
    shared_strings_part: str | None  # the shared strings' part, without the leading "/"
    epoch: dt.datetime
    date_formats: set[int]  # style ids of cells holding dates
    timedelta_formats: set[int]  # ... and durations


def load_parts(path: Path) -> WorkbookParts:
    """The workbook's sheets, shared-strings part and date styles (openpyxl's reader steps:
    manifest, workbook, stylesheet). The archive stays open for the caller to close."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.xml.constants import SHARED_STRINGS

    reader = ExcelReader(path, read_only=True, data_only=True)
    try:
        reader.read_manifest()
        reader.read_workbook()
        apply_stylesheet(reader.archive, reader.parser.wb)
        sheets = {sheet.name: rel.target for sheet, rel in reader.parser.find_sheets()
                  if rel.target in reader.valid_files and "chartsheet" not in rel.Type}
        strings = reader.package.find(SHARED_STRINGS)
    except BaseException:
        reader.archive.close()
        raise
    book = reader.parser.wb
    # The two style-id sets are private, so the stubs leave them out (check_shape pins them).
    date_formats: set[int] = book._date_formats  # type: ignore[attr-defined]
    timedelta_formats: set[int] = book._timedelta_formats  # type: ignore[attr-defined]
    return WorkbookParts(reader.archive, sheets, strings.PartName[1:] if strings else None,
                         book.epoch, date_formats, timedelta_formats)


def check_shape() -> None:
    """Raise, naming this adapter, if openpyxl no longer has what :func:`load_parts` uses."""
    from openpyxl.reader import excel
    from openpyxl.styles import stylesheet
    from openpyxl.workbook import Workbook
    from openpyxl.xml import constants

    missing = [name for owner, name in (
        (excel, "ExcelReader"), (stylesheet, "apply_stylesheet"), (constants, "SHARED_STRINGS"),
        (getattr(excel, "ExcelReader", None), "read_manifest"),
        (getattr(excel, "ExcelReader", None), "read_workbook"),
    ) if not hasattr(owner, name)]
    book = Workbook()
    missing += [f"Workbook.{name}" for name in ("epoch", "_date_formats", "_timedelta_formats")
                if not hasattr(book, name)]
    if missing:
        raise RuntimeError(f"importer/openpyxl_adapter.py: this openpyxl release no longer has"
                           f" {', '.join(missing)}; the XLSX reader must be adapted to it")
