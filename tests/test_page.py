"""report.html: written with the other reports, self-contained, its figures the run's own."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from collections import Counter
from datetime import UTC
from html.parser import HTMLParser
from pathlib import Path

import pytest

from importer.sandbox import Faults

from .conftest import PHONES, people, read_results


class _Page(HTMLParser):
    """The page as a parser sees it: every tag's attributes, the tables' cells, the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: list[tuple[str, str, str | None]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.text: list[str] = []
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.open_tags: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.attributes.extend((tag, name, value) for name, value in attrs)
        if tag == "section":
            self._section = dict(attrs).get("aria-labelledby", "")
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables.setdefault(self._section, []).append(self._row)
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def requests_per_second(requests: list[tuple[float, float, int | None]]) -> Counter[int]:
    """Requests started in each whole second of the run, counted here from the journal's
    rows, apart from the page's own code."""
    start = requests[0][0]
    return Counter(int(began - start) for began, _, _ in requests)


def _page(out: Path) -> _Page:
    return _Page((out / "report.html").read_text(encoding="utf-8"))


def _number(cell: str) -> int:
    return int(cell.replace(",", ""))


def _run_with_every_status(sandbox, write_config, write_csv, invoke, tmp_path):
    """A run whose rows end sent, invalid, duplicate, excluded, failed, unknown, skipped."""
    optouts = tmp_path / "bajas.csv"
    optouts.write_text(f"phone\n{PHONES[5]}\n", encoding="utf-8")
    config = write_config(sandbox.url, defaults={"phone_check": "possible"},
                          dedupe={"exclude": [optouts.name]})
    rows = [*people(5), ["Eva <script>alert(1)</script>", "123", ""],  # invalid, escaped
            ["Ana bis", PHONES[0], ""],  # duplicate
            ["Baja", PHONES[5], ""],  # excluded
            ["Rechazo", "+56 9 1234 5678", ""],  # failed: the API's 400
            ["Img", "<img src=x onerror=alert(1)>", ""],  # invalid: its cell shown escaped
            *people(6, start=10)[1:]]
    source = write_csv(rows)
    sandbox.state.faults = Faults(fail_500=0.3, seed=2, latency=0.02)
    result = invoke("run", source, "--config", config, "--limit", "8")
    assert result.exit_code == 5, result.output
    return tmp_path / "clientes-import"


def test_the_page_is_whole_html_with_nothing_fetched_and_summary_json_figures(
        sandbox, write_config, write_csv, invoke, tmp_path):
    out = _run_with_every_status(sandbox, write_config, write_csv, invoke, tmp_path)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    page = _page(out)
    assert all(summary[status] for status in ("sent", "invalid", "duplicate", "excluded",
                                              "failed", "unknown", "skipped"))
    # Nothing fetched: no src or href anywhere, no url( in any style.
    text = (out / "report.html").read_text(encoding="utf-8")
    assert [a for a in page.attributes if a[1] in ("src", "href", "xlink:href")] == []
    assert "url(" not in text and "@import" not in text and "<script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" not in text  # a name is not shown at all
    assert "&lt;img src=x onerror=alert(1)&gt;" in text and "<img" not in text
    # The status table equals summary.json's counts, status by status.
    shown = {row[0]: _number(row[1]) for row in page.tables["statuses"][1:]}
    assert shown == {status: summary[status] for status in shown}
    assert sum(shown.values()) == summary["total_rows"]
    assert f"Rows: {summary['total_rows']:,}" in "".join(page.text)
    # Error codes: every code of results.csv with its count; examples name the row.
    codes = Counter(r["error_code"] for r in read_results(out) if r["error_code"])
    table = {row[0]: _number(row[1]) for row in page.tables["errors"][1:]}
    assert table == dict(codes)
    # The unknown rows' next step is the command that settles them.
    assert "--resume --reconcile --until-settled" in "".join(page.text)
    assert stat.S_IMODE((out / "report.html").stat().st_mode) == 0o600


def test_the_chart_counts_the_journals_requests_second_by_second(
        sandbox, write_config, write_csv, invoke, tmp_path):
    """The page's per-interval counts equal the requests the journal holds, counted here
    independently from SQLite, and their total equals what the sandbox received."""
    config = write_config(sandbox.url, api={"rate_limit_per_second": 20})
    sandbox.state.faults = Faults(throttle=0.1, seed=4)
    assert invoke("run", write_csv(people(40)), "--config", config).exit_code in (0, 5)
    out = tmp_path / "clientes-import"
    db = sqlite3.connect(out / "journal.sqlite")
    since = float(db.execute("SELECT value FROM meta WHERE name='run_started'").fetchone()[0])
    requests = db.execute("SELECT started, ended, status FROM requests WHERE started>=?"
                          " ORDER BY started", (since,)).fetchall()
    db.close()
    posts = [r for r in sandbox.state.received if r.method == "POST"]
    assert len(requests) == len(posts)
    per_second = requests_per_second(requests)
    rows = _page(out).tables["rate"][1:]
    spans = [tuple(int(part.split()[0]) if "min" not in part else None
                   for part in row[0].split("\u2013")) for row in rows]
    assert all(None not in span for span in spans)  # a short run: spans in whole seconds
    for (first, last), row in zip(spans, rows, strict=True):
        counted = sum(per_second[second] for second in range(first, last))
        assert _number(row[1]) == counted
        assert _number(row[2]) == max(per_second[second] for second in range(first, last))
    assert sum(_number(row[3]) for row in rows) == sum(1 for r in requests if r[2] == 429)
    assert sum(_number(row[1]) for row in rows) == len(posts)


def test_report_writes_the_same_page_again_from_the_journal_alone(
        sandbox, write_config, write_csv, invoke, tmp_path):
    out = _run_with_every_status(sandbox, write_config, write_csv, invoke, tmp_path)
    written = (out / "report.html").read_bytes()
    (out / "report.html").unlink()
    (tmp_path / "config.toml").unlink()  # neither the config nor the file is needed
    result = invoke("report", "--out", "clientes-import", api_key=None)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Report: clientes-import/report.html\n"
    assert (out / "report.html").read_bytes() == written


def test_report_of_a_folder_without_a_run_is_one_line(invoke, tmp_path):
    (tmp_path / "vacia").mkdir()
    result = invoke("report", "--out", tmp_path / "vacia", api_key=None)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {tmp_path / 'vacia'} holds no run (no journal): nothing"
                             " to report\n")


def test_a_folder_of_the_earlier_release_gets_a_page(invoke, tmp_path):
    """A 0.1.0 folder (a journal without a plan or any of the page's records) still gets
    its page: the rows' statuses, no chart."""
    import shutil

    shutil.copytree(Path(__file__).parent / "fixtures" / "release-0.1.0" / "run-a",
                    tmp_path / "run-a")
    result = invoke("report", "--out", "run-a", api_key=None)
    assert result.exit_code == 0, result.output
    page = _page(tmp_path / "run-a")
    shown = {row[0]: _number(row[1]) for row in page.tables["statuses"][1:]}
    assert sum(shown.values()) == 6  # its six rows


def test_validate_writes_a_page_with_what_would_be_sent(sandbox, write_config, write_csv,
                                                        invoke, tmp_path):
    result = invoke("validate", write_csv([*people(3), ["Eva", "123", ""]]), "--config",
                    write_config(sandbox.url))
    assert result.exit_code == 1
    page = _page(tmp_path / "clientes-import")
    assert {row[0]: row[1] for row in page.tables["statuses"][1:]} == {"valid": "3",
                                                                       "invalid": "1"}
    assert "rate" not in page.tables  # nothing was sent: no chart
    assert re.search(r"Next step:\s*fix the rows in errors.csv", "".join(page.text))


@pytest.mark.parametrize("size", [10_000])
def test_the_page_stays_small_whatever_the_run(size, tmp_path):
    """Hours of requests still make a page of a few tens of KB (a pixel column holds many
    seconds; a table holds at most 24 intervals)."""
    from datetime import datetime, timedelta

    from importer.codes import ExitCode
    from importer.page import RowTally, RunFacts, build_page

    start = 1_800_000_000.0
    requests = [(start + n * 0.5, start + n * 0.5 + 0.2, 429 if n % 97 == 0 else 200)
                for n in range(size)]
    tally = RowTally()
    for n in range(size):
        tally.add("sent", "", "", n + 2, PHONES[n % 50], "CL")
    began = datetime.fromtimestamp(start, UTC)
    facts = RunFacts("run", "x.csv", None, "acct", None, "out", None, 2.0, began,
                     began + timedelta(seconds=size / 2), ExitCode.OK, None,
                     {"sent": size}, requests, [(start + 10, start + 20)])
    text = build_page(facts, tally)
    assert len(text.encode()) < 200_000
    parsed = _Page(text)
    assert sum(_number(row[1]) for row in parsed.tables["rate"][1:]) == size
    assert len(parsed.tables["rate"]) - 1 <= 24


def test_a_file_name_that_is_not_utf8_never_costs_the_reports(sandbox, write_config,
                                                              write_csv, invoke, tmp_path):
    """Found by review: a Latin-1 file name (from Windows or Samba) made the page fail, and
    with it every report, after customers were messaged, with exit 2 "nothing was sent"."""
    import os

    written = write_csv(people(3))
    source = tmp_path / os.fsdecode(b"clientes_a\xf1o.csv")
    written.rename(source)
    result = invoke("run", source, "--config", write_config(sandbox.url), "--out", "informe")
    assert result.exit_code == 0, result.output
    out = tmp_path / "informe"
    assert len(read_results(out)) == 3
    assert "clientes_a?o.csv" in (out / "report.html").read_text(encoding="utf-8")


def test_thousands_of_pauses_long_reasons_and_a_clock_set_keep_the_page_small(tmp_path):
    """Found by review: one shade per 429 pause and whole 60 KB reasons made pages of
    megabytes; requests a year apart (a clock set mid-run) made lists of a year of seconds."""
    from datetime import datetime, timedelta

    from importer.codes import ExitCode
    from importer.page import RowTally, RunFacts, build_page

    start = 1_800_000_000.0
    requests = [(start + n * 0.05, start + n * 0.05 + 0.1, 429 if n % 100 == 0 else 200)
                for n in range(100_000)]
    pauses = [(start + n * 5.0, start + n * 5.0 + 1.0) for n in range(1000)]
    tally = RowTally()
    for n in range(30):
        tally.add("invalid", f"code_{n}", "x" * 60_000, n + 2, "", "CL")
    began = datetime.fromtimestamp(start, UTC)
    facts = RunFacts("run", "x.csv", None, "acct", None, "out", None, 20.0, began,
                     began + timedelta(hours=2), ExitCode.OK, None, {"sent": 100_000},
                     requests, pauses)
    assert len(build_page(facts, tally).encode()) < 200_000
    jumped = facts.__class__(**{**facts.__dict__, "requests": [
        (start, start + 0.1, 200), (start + 365 * 86400, start + 365 * 86400 + 0.1, 200)]})
    page = _Page(build_page(jumped, RowTally()))
    assert "rate" not in page.tables
    assert "clock was set during the run" in "".join(page.text)


def test_report_refuses_a_folder_whose_last_run_did_not_finish(
        sandbox, write_config, write_csv, invoke, tmp_path):
    """Found by review: after a resume killed at once, `report` drew the earlier run's page
    with the killed one's half record ("sent 0"). It says what to do instead."""
    out = _run_with_every_status(sandbox, write_config, write_csv, invoke, tmp_path)
    db = sqlite3.connect(out / "journal.sqlite")
    db.execute("UPDATE meta SET value='9999999999' WHERE name='run_started'")
    db.commit()
    db.close()
    result = invoke("report", "--out", "clientes-import", api_key=None)
    assert result.exit_code == 2
    assert result.stderr == ("Error: clientes-import: its last run did not finish (stopped at"
                             " once, or killed): --resume finishes it and writes every"
                             " report\n")
