"""Write results.csv, errors.csv and summary.json, whole or not at all.

Each file is written under a temporary name and renamed into place, so a reader never
finds a half-written report, and reports from an earlier run stay intact until the new
ones are complete. errors.csv is the input's own format (encoding, delimiter, columns)
plus four columns, so the user fixes it in Excel and imports it again with the same config.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .codes import ERROR_STATUSES, ErrorCode, ExitCode, RowStatus
from .exceptions import OutputFolderError
from .files import open_private, private_folder
from .page import RowTally, RunFacts, build_page, fallback_page
from .read import ERROR_COLUMNS, FORMULA_TRIGGERS, SourceRow, Table

if TYPE_CHECKING:  # openpyxl loads only when an errors.xlsx is written
    from openpyxl.cell import Cell
    from openpyxl.styles import Font

    from .config import Config
    from .journal import Journal


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``: a count with its noun (``many`` when not just ``one + "s"``)."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"

RESULTS_COLUMNS = ("row", "status", "error_code", "error", "phone_as_written", "phone",
                   "phone_column", "name", "ai_contact_id", "http_status", "attempts")


class RowResult(NamedTuple):
    """One line of results.csv: a data row's final status and the reason for it."""

    row: int  # in the file the user first imported (a re-imported error file's ``_row``)
    status: RowStatus
    phone: str = ""  # E.164
    ai_contact_id: str = ""
    http_status: int | None = None
    attempts: int = 0
    error_code: ErrorCode | str = ""
    error: str = ""
    written: str = ""  # the phone cell as written
    column: str = ""  # the phone column it came from
    name: str = ""  # the contact name sent
    country: str = ""  # the country the phone was read in (report.html's countries)


@dataclass
class Summary:
    """The counts of one run or validation, as summary.json and the terminal show them."""

    mode: str  # "run" or "validate"
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RowStatus, 0))
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    stopped: str | None = None  # why a run stopped early: "interrupted", an API error...
    interrupted: bool = False
    fatal_error: str | None = None  # the API's fatal answer (key or phone ID rejected)
    local_error: str | None = None  # a failure on this machine stopped the run (exit 4)
    out_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    preview: list[dict] = field(default_factory=list)  # validate: first bodies to be sent
    preview_paths: list[str | None] = field(default_factory=list)  # ...and where (None: ticket)
    estimated_seconds: float | None = None  # validate: sending time at the configured rate
    # The send ledger the job read (and a run wrote): a file's path, or a team ledger's URL
    # without credentials followed by "(team)".
    ledger_path: str | None = None
    plan: object | None = None  # run: the Plan made before sending
    unknown_rows: list[int] = field(default_factory=list)  # run: rows left unknown
    wrote_xlsx: bool = False  # errors.xlsx is this run's (its input was a workbook)
    # For report.html: the account (no key), the config's path and the rate limit.
    account: str = ""
    config_path: str | None = None
    rate: float | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())

    @property
    def done_status(self) -> RowStatus:
        return RowStatus.SENT if self.mode == "run" else RowStatus.VALID

    @property
    def all_done(self) -> bool:
        """Every row reached the API (or would), repeats one that did, or opted out."""
        counts = self.counts
        done = (counts[self.done_status] + counts[RowStatus.DUPLICATE]
                + counts[RowStatus.EXCLUDED])
        return done == self.total_rows

    @property
    def exit_code(self) -> ExitCode:
        """How the run (or validation) ended, as the command's exit code."""
        if self.local_error:
            return ExitCode.LOCAL_ERROR
        if self.fatal_error:
            return ExitCode.FATAL_API
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.stopped == "declined":
            return ExitCode.NOT_ALL_SENT
        if self.settleable:
            return ExitCode.SETTLEABLE
        return ExitCode.OK if self.all_done else ExitCode.NOT_ALL_SENT

    @property
    def settleable(self) -> int:
        """Rows of a run that ``--resume`` or ``reconcile`` may still settle (failed,
        unknown, skipped); the others not sent (invalid, duplicate, excluded) are final."""
        if self.mode != "run":
            return 0
        counts = self.counts
        return counts[RowStatus.FAILED] + counts[RowStatus.UNKNOWN] + counts[RowStatus.SKIPPED]

    def as_json(self) -> dict:
        finished = self.finished_at or datetime.now(UTC)
        shown = [self.done_status] + [s for s in RowStatus
                                      if s not in (RowStatus.SENT, RowStatus.VALID)]
        return {
            "total_rows": self.total_rows,
            **{str(status): self.counts[status] for status in shown},
            "stopped": self.stopped,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "elapsed_seconds": round((finished - self.started_at).total_seconds(), 3),
        }

    def describe(self, config: Config, identity: dict[str, str]) -> None:
        """Fill in what report.html says of the run: the account, the config, the rate."""
        self.account = (f"{identity.get('base_url', '')} ({identity.get('channel', '')},"
                        f" phone ID {identity.get('phone_id', '')})")
        if config.source != "config":  # (the default: made in Python, not read from a file)
            self.config_path = str(config.folder / config.source)
        self.rate = config.api.rate_limit_per_second or None

    @property
    def paths(self) -> dict[str, Path]:
        assert self.out_dir is not None
        names = ["results.csv", "errors.csv", "summary.json", "report.html"]
        if self.wrote_xlsx:  # not one left by an earlier run of an XLSX
            names.insert(2, "errors.xlsx")
        return {name: self.out_dir / name for name in names}


def neutralize(cell: str) -> str:
    """OWASP CSV-injection guard: a leading apostrophe, which the reader removes again."""
    return "'" + cell if cell.startswith(FORMULA_TRIGGERS) else cell


class _ErrorsWorkbook:
    """errors.xlsx for XLSX input: every cell typed as text (so ``=...`` stays text and
    ``+56...`` stays a phone), the ``_error`` column highlighted; streamed (write-only)."""

    def __init__(self, path: Path, headers: list[str], sheet: str) -> None:
        from openpyxl import Workbook
        from openpyxl.styles import Font, PatternFill

        self.path = path
        self._workbook = Workbook(write_only=True)
        # The source sheet's name, so the config that read the workbook reads this one too.
        self._sheet = self._workbook.create_sheet(sheet)
        self._highlight = PatternFill("solid", start_color="FFF2CC")
        self._error_column = len(headers) - 1
        self._sheet.append([self._cell(header, bold=Font(bold=True)) for header in headers])

    def _cell(self, value: object, *, bold: Font | None = None,
              highlight: bool = False) -> Cell:
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(self._sheet, value=str(value))
        cell.data_type = "s"  # text, never a formula or a number
        cell.number_format = "@"  # and Excel keeps it text when edited
        if bold is not None:
            cell.font = bold
        if highlight or (bold is not None and value == "_error"):
            cell.fill = self._highlight
        return cell

    def append(self, values: list[object]) -> None:
        self._sheet.append([self._cell(value, highlight=index == self._error_column)
                            for index, value in enumerate(values)])

    def save(self) -> None:
        open_private(self.path, "wb").close()  # openpyxl keeps the mode of a file it replaces
        self._workbook.save(self.path)


class ReportWriter:
    """Streams results and error rows to temporary files; :meth:`commit` renames them in."""

    def __init__(self, out_dir: Path, table: Table) -> None:
        try:
            self._open(out_dir, table)
        except OSError as error:
            raise OutputFolderError(f"{out_dir}: cannot write the reports"
                                    f" ({error.strerror or error})") from None

    def _open(self, out_dir: Path, table: Table) -> None:
        private_folder(out_dir)
        self.out_dir = out_dir
        self._results_path = out_dir / "results.csv.tmp"
        self._errors_path = out_dir / "errors.csv.tmp"
        # With a BOM (Excel reads UTF-8 only with one) and CRLF (the RFC's line end).
        self._results_file = open_private(self._results_path, encoding="utf-8-sig",
                                          newline="")
        self._errors_file = open_private(self._errors_path, encoding=table.encoding,
                                         errors="replace", newline="")
        self._results = csv.writer(self._results_file)
        self._errors = csv.writer(self._errors_file, delimiter=table.delimiter)
        self._results.writerow(RESULTS_COLUMNS)
        self._errors.writerow([neutralize(h) for h in table.headers] + list(ERROR_COLUMNS))
        self._workbook = None
        if table.kind == "xlsx":
            self._workbook = _ErrorsWorkbook(out_dir / "errors.xlsx.tmp.xlsx",
                                             list(table.headers) + list(ERROR_COLUMNS),
                                             table.sheet or "Errores")

    def add(self, result: RowResult, source: SourceRow | None) -> None:
        """One row of results.csv and, for an error status, of the error files (which keep
        the row's number in the original file when it came from one of our error files)."""
        self._results.writerow(  # the server's text is neutralized as the user's cells are
            (result.row, result.status, result.error_code, neutralize(result.error),
             neutralize(result.written), result.phone, neutralize(result.column),
             neutralize(result.name), neutralize(result.ai_contact_id),
             "" if result.http_status is None else result.http_status, result.attempts))
        if result.status in ERROR_STATUSES and source is not None:
            extra = [source.origin or result.row, result.status, result.error_code,
                     neutralize(result.error)]
            self._errors.writerow([neutralize(cell) for cell in source.cells] + extra)
            if self._workbook is not None:
                self._workbook.append(list(source.cells) + extra)

    def commit(self, summary: Summary, page: str) -> None:
        """Put the finished reports in place (each renamed whole), or fail with one line."""
        try:
            self._commit(summary, page)
        except OSError as error:
            self.discard()
            raise OutputFolderError(f"{self.out_dir}: cannot write the reports"
                                    f" ({error.strerror or error})") from None

    def _commit(self, summary: Summary, page: str) -> None:
        """Every file made whole first (the workbook takes seconds); then the old summary
        and page removed, so that a process killed among the renames leaves them absent,
        never describing another run; then the renames, the page last."""
        self._results_file.close()
        self._errors_file.close()
        out = self.out_dir
        page_tmp = out / "report.html.tmp"
        with open_private(page_tmp, encoding="utf-8", errors="replace") as handle:
            handle.write(page)
        if self._workbook is not None:
            self._workbook.save()
        summary_tmp = out / "summary.json.tmp"
        with open_private(summary_tmp, encoding="utf-8") as handle:
            handle.write(json.dumps(summary.as_json(), indent=2) + "\n")
        for stale in ("summary.json", "report.html"):
            (out / stale).unlink(missing_ok=True)
        os.replace(self._results_path, out / "results.csv")
        os.replace(self._errors_path, out / "errors.csv")
        if self._workbook is not None:
            os.replace(self._workbook.path, out / "errors.xlsx")
            summary.wrote_xlsx = True
        os.replace(summary_tmp, out / "summary.json")
        os.replace(page_tmp, out / "report.html")  # last: it describes the others

    def discard(self) -> None:
        for handle, path in ((self._results_file, self._results_path),
                             (self._errors_file, self._errors_path)):
            with contextlib.suppress(OSError):
                handle.close()
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        if self._workbook is not None:
            self._workbook.path.unlink(missing_ok=True)
        for leftover in ("report.html.tmp", "summary.json.tmp"):
            (self.out_dir / leftover).unlink(missing_ok=True)



def write_reports(out_dir: Path, table: Table,
                  results: Iterable[tuple[RowResult, SourceRow | None]], summary: Summary,
                  journal: Journal | None = None) -> None:
    """Write every report from a run's results (the journal's, in row order), counting
    them into ``summary``; whole or not at all. With the run's ``journal``, report.html
    charts its requests, and the journal keeps what the page says of the run, for
    ``vambe-import report``."""
    writer = ReportWriter(out_dir, table)
    tally = RowTally()
    try:
        counts = summary.counts
        for result, source in results:
            counts[result.status] += 1
            if result.status == RowStatus.UNKNOWN:
                summary.unknown_rows.append(result.row)
            writer.add(result, source)
            tally.add(result.status, result.error_code, result.error, result.row,
                      result.phone, result.country)
        summary.finished_at = datetime.now(UTC)
        page = safe_page(summary, table, journal, tally)
        if journal is not None:
            journal.set_meta(report=json.dumps(_page_meta(summary)))
    except BaseException:
        writer.discard()
        raise
    writer.commit(summary, page)


def run_facts(summary: Summary, table: Table, journal: Journal | None) -> RunFacts:
    """What report.html says of the run besides its rows."""
    requests: list = []
    pauses: list = []
    if journal is not None:
        since = float(journal.meta("run_started") or 0)
        requests = journal.requests_since(since)
        pauses = journal.pauses_since(since)
    return RunFacts(
        summary.mode, table.path.name, table.sheet, summary.account, summary.ledger_path,
        str(summary.out_dir or ""), summary.config_path, summary.rate, summary.started_at,
        summary.finished_at or datetime.now(UTC), summary.exit_code, summary.stopped,
        dict(summary.counts), requests, pauses)


_PAGE_FIELDS = ("mode", "account", "config_path", "rate", "ledger_path", "stopped",
                "fatal_error", "local_error", "interrupted")


def _page_meta(summary: Summary) -> dict:
    return {**{name: getattr(summary, name) for name in _PAGE_FIELDS},
            "started_at": summary.started_at.isoformat(),
            "finished_at": (summary.finished_at or datetime.now(UTC)).isoformat()}


def summary_from_meta(found: str | None, out_dir: Path) -> Summary:
    """A run's summary as its journal kept it for report.html (counts zero: they are
    counted again from the journal); a folder of an earlier release kept none."""
    summary = Summary("run", out_dir=out_dir)
    if found:
        meta = json.loads(found)
        for name in _PAGE_FIELDS:
            setattr(summary, name, meta.get(name, getattr(summary, name)))
        summary.started_at = datetime.fromisoformat(meta["started_at"])
        summary.finished_at = datetime.fromisoformat(meta["finished_at"])
    return summary


def safe_page(summary: Summary, table: Table, journal: Journal | None, tally: RowTally) -> str:
    """The page; if drawing it fails, a page that says so with the counts: the other
    reports never depend on it."""
    try:
        return build_page(run_facts(summary, table, journal), tally)
    except Exception as error:  # noqa: BLE001 - the page is a view: the CSVs are the record
        return fallback_page(summary.counts, f"{type(error).__name__}: {error}")


def rewrite_page(out_dir: Path, journal: Journal, unreached: RowResult) -> Path:
    """``vambe-import report``: report.html again from the journal alone."""
    found = journal.meta("report")
    started = float(journal.meta("run_started") or 0)
    if found and started > datetime.fromisoformat(json.loads(found)["finished_at"]).timestamp():
        raise OutputFolderError(f"{out_dir}: its last run did not finish (stopped at once, or"
                                " killed): --resume finishes it and writes every report")
    summary = summary_from_meta(found, out_dir)
    table = journal.table()
    tally = RowTally()
    for result, _ in journal.results(unreached):
        summary.counts[result.status] += 1
        tally.add(result.status, result.error_code, result.error, result.row, result.phone,
                  result.country)
    if summary.finished_at is None:
        summary.finished_at = summary.started_at
    page = safe_page(summary, table, journal, tally)
    path = out_dir / "report.html"
    staging = out_dir / "report.html.tmp"
    try:
        with open_private(staging, encoding="utf-8") as handle:
            handle.write(page)
        os.replace(staging, path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise OutputFolderError(f"{path}: cannot write the report ({error.strerror or error})"
                                ) from None
    return path
