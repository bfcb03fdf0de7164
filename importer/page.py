"""report.html: one run's campaign report, a page people look at.

One self-contained file (no script, no font, nothing fetched: it opens offline and as an
e-mail attachment), written with the other reports and as they are (whole or absent, mode
0600), and again from the journal by ``vambe-import report``. Charts are inline SVG drawn
here: each pixel column of a long run holds the min and max of its seconds, so the page
stays small whatever the run's size; every chart has its numbers in a table beneath.

It shows no customer data beyond what errors.csv holds: counts, and up to three example
rows per error code with the reason (which names the cell that caused it).
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from .codes import ERROR_HELP, ErrorCode, ExitCode, RowStatus
from .timing import duration_text

MAX_SPAN = 7 * 86400  # requests over longer than this: a clock was set; no time charts
EXAMPLE_CHARS = 200  # an example's reason, cut: a 60 KB cell stays in errors.csv
WIDTH, HEIGHT = 720, 170  # a chart's drawing area, in CSS pixels (fits A4 portrait)
EXAMPLES = 3  # example rows shown per error code
TABLE_ROWS = 24  # a chart's table: at most this many intervals

_STATUS_COLOURS = {
    RowStatus.SENT: "#2e7d32", RowStatus.VALID: "#2e7d32", RowStatus.DUPLICATE: "#90a4ae",
    RowStatus.EXCLUDED: "#b0bec5", RowStatus.INVALID: "#c62828", RowStatus.FAILED: "#ef6c00",
    RowStatus.UNKNOWN: "#6a1b9a", RowStatus.SKIPPED: "#f9a825"}


def esc(text: object) -> str:
    """HTML-escaped, and a lone surrogate (a file name that is not UTF-8) as U+FFFD."""
    return html.escape(str(text), quote=True).encode("utf-8", "replace").decode("utf-8")


@dataclass
class RowTally:
    """What the page needs from every row, counted in the pass that writes the reports."""

    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    countries: dict[str, list[int]] = field(default_factory=dict)  # region -> [valid, invalid]
    skipped_until: dict[str, str] = field(default_factory=dict)  # code -> first row's reason
    _regions: dict[str, str] = field(default_factory=dict)

    def add(self, status: RowStatus, error_code: str, error: str, row: int, phone: str,
            country: str) -> None:
        if error_code:
            self.errors[error_code] += 1
            shown = self.examples.setdefault(error_code, [])
            if len(shown) < EXAMPLES:
                shown.append((row, error if len(error) <= EXAMPLE_CHARS
                              else error[:EXAMPLE_CHARS] + "…"))
            if error_code in (ErrorCode.OUTSIDE_WINDOW, ErrorCode.DAILY_LIMIT):
                self.skipped_until.setdefault(error_code, error)
        region = self._region_of(phone) if phone else (country or "")
        counts = self.countries.get(region)
        if counts is None:
            counts = self.countries[region] = [0, 0]
        counts[status == RowStatus.INVALID] += 1

    def _region_of(self, phone: str) -> str:
        """The main country of an E.164 number's calling code (+1 is US, +7 RU...)."""
        prefix = phone[:4]
        region = self._regions.get(prefix)
        if region is None:
            region = ""
            for length in (1, 2, 3):
                regions = COUNTRY_CODE_TO_REGION_CODE.get(int(prefix[1:1 + length] or 0))
                if regions:
                    region = regions[0]
                    break
            self._regions[prefix] = region
        return region


@dataclass
class RunFacts:
    """What the page says about the run besides its rows."""

    mode: str  # "run" or "validate"
    file: str
    sheet: str | None
    account: str  # the account's target, without any key
    ledger: str | None
    out_dir: str
    config: str | None
    rate: float | None
    started_at: datetime
    finished_at: datetime
    exit_code: ExitCode
    stopped: str | None
    counts: dict[str, int]
    requests: Sequence[tuple[float, float, int | None]] = ()  # (started, ended, status)
    pauses: Sequence[tuple[float, float]] = ()


# ---------------------------------------------------------------- the page


def build_page(facts: RunFacts, tally: RowTally) -> str:
    """The whole page, as text."""
    parts = [_HEAD, f"<h1>Campaign report: {esc(facts.file)}</h1>", _run_section(facts),
             _status_section(facts)]
    if facts.requests and facts.requests[-1][0] - facts.requests[0][0] > MAX_SPAN:
        parts.append('<p class="note">The requests span more than a week, so this machine\'s'
                     " clock was set during the run: the time charts are left out.</p>")
    elif facts.requests:
        line = _Timeline.of(facts.requests)
        parts.append(_rate_section(facts, line))
        parts.append(_latency_section(facts, line))
    parts.append(_errors_section(tally, sum(facts.counts.values())))
    parts.append(_countries_section(tally))
    parts.append(_unknown_section(facts))
    parts.append(_waiting_section(tally, facts))
    parts.append("</main></body></html>\n")
    return "\n".join(part for part in parts if part)


_HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>vambe-import campaign report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
margin:0;background:#fff}
main{max-width:760px;margin:0 auto;padding:16px}
h1{font-size:20px;margin:8px 0 12px}h2{font-size:16px;margin:22px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:3px}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
dt{color:#555}dd{margin:0}
.next{background:#fff8e1;border:1px solid #f9a825;padding:8px;margin:10px 0}
.next code,td code{background:#f4f4f4;padding:0 3px}
svg{display:block;max-width:100%;height:auto}
.note{color:#555;font-size:12px}
@media print{@page{size:A4;margin:12mm}main{max-width:none;padding:0}
h2{break-after:avoid}svg,table,.next{break-inside:avoid}}
</style></head><body><main>"""


def _run_section(facts: RunFacts) -> str:
    duration = (facts.finished_at - facts.started_at).total_seconds()
    rows = [("File", facts.file + (f" (sheet {facts.sheet})" if facts.sheet else "")),
            ("Account", facts.account), ("Ledger", facts.ledger or "none"),
            ("Output folder", facts.out_dir),
            ("Started", _when(facts.started_at)), ("Finished", _when(facts.finished_at)),
            ("Duration", duration_text(duration)),
            ("Rate limit", f"{facts.rate:g} requests/s" if facts.rate else "none"),
            ("Ended", f"exit {int(facts.exit_code)}: {facts.exit_code.meaning}"
                      + (f" ({facts.stopped})" if facts.stopped and facts.stopped
                         not in ("interrupted", "declined") else ""))]
    items = "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in rows)
    return (f'<section aria-labelledby="run"><h2 id="run">The run</h2><dl>{items}</dl>'
            f'<p class="next" role="note"><strong>Next step:</strong> {_next_step(facts)}</p>'
            "</section>")


def _next_step(facts: RunFacts) -> str:
    counts = facts.counts
    config = esc(facts.config or "CONFIG")
    out = esc(facts.out_dir)
    code = facts.exit_code
    if facts.mode == "validate":
        return ("fix the rows in errors.csv, or run the file: nothing was sent."
                if counts.get(RowStatus.INVALID) else "run the file: nothing was sent.")
    if code == ExitCode.FATAL_API:
        return (f"check the API key and [api] phone_id, then <code>vambe-import run FILE"
                f" --config {config} --out {out} --resume</code>.")
    if code == ExitCode.LOCAL_ERROR:
        return (f"fix the cause on this machine, then <code>vambe-import run FILE --config"
                f" {config} --out {out} --resume</code>.")
    if counts.get(RowStatus.UNKNOWN):
        return (f"settle the unknown rows: <code>vambe-import run FILE --config {config}"
                f" --out {out} --resume --reconcile --until-settled</code> (or"
                f" <code>vambe-import reconcile --out {out} --config {config}</code>).")
    if code in (ExitCode.SETTLEABLE, ExitCode.INTERRUPTED):
        return (f"<code>vambe-import run FILE --config {config} --out {out} --resume</code>"
                " sends the rows left.")
    if counts.get(RowStatus.INVALID):
        return "fix the rows in errors.csv and import it again (nobody is sent twice)."
    return "nothing: every row is settled."


def _status_section(facts: RunFacts) -> str:
    counts = {status: facts.counts.get(status, 0) for status in RowStatus
              if facts.counts.get(status, 0)}
    total = sum(counts.values()) or 1
    x = 0.0
    bars = []
    for status, count in counts.items():
        width = WIDTH * count / total
        bars.append(f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="28"'
                    f' fill="{_STATUS_COLOURS[status]}"><title>{status}: {count:,}</title>'
                    "</rect>")
        if width > 60:
            bars.append(f'<text x="{x + 4:.1f}" y="19" fill="#fff" font-size="12">'
                        f"{esc(status)} {count:,}</text>")
        x += width
    svg = (f'<svg viewBox="0 0 {WIDTH} 28" width="{WIDTH}" height="28" role="img"'
           f' aria-labelledby="status-title"><title id="status-title">Rows by status</title>'
           + "".join(bars) + "</svg>")
    table = "".join(f'<tr><td>{esc(status)}</td><td class="n">{count:,}</td>'
                    f'<td class="n">{100 * count / total:.1f}%</td></tr>'
                    for status, count in counts.items())
    return (f'<section aria-labelledby="statuses"><h2 id="statuses">Rows: {sum(counts.values()):,}'
            f"</h2>{svg}<table><thead><tr><th>Status</th><th>Rows</th><th>Share</th></tr>"
            f"</thead><tbody>{table}</tbody></table></section>")


# ---------------------------------------------------------------- time charts


@dataclass
class _Timeline:
    """The run's requests in pixel columns: per column the min and max of the requests
    started in each of its seconds, its 429s and 503s, and a sample of latencies."""

    start: float
    seconds: int
    columns: int
    per_second: list[int]
    throttled: list[int]
    unavailable: list[int]

    @classmethod
    def of(cls, requests: Sequence[tuple[float, float, int | None]]) -> _Timeline:
        start = requests[0][0]
        end = max(requests[-1][0], start)
        seconds = int(end - start) + 1
        per_second = [0] * seconds
        throttled = [0] * seconds
        unavailable = [0] * seconds
        for began, _, status in requests:
            second = int(began - start)
            per_second[second] += 1
            if status != 200:
                if status == 429:
                    throttled[second] += 1
                elif status == 503:
                    unavailable[second] += 1
        return cls(start, seconds, min(seconds, WIDTH), per_second, throttled, unavailable)

    def column_of(self, second: int) -> int:
        return second * self.columns // self.seconds

    def spans(self, count: int) -> list[tuple[int, int]]:
        """``count`` (or fewer) runs of whole seconds covering the run, for tables."""
        step = math.ceil(self.seconds / min(count, self.seconds))
        return [(first, min(first + step, self.seconds)) for first in range(0, self.seconds, step)]


def _axis(x_seconds: int, y_max: float, unit: str) -> str:
    """The frame, the y axis's top label and the x axis's end label."""
    return (f'<line x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}" stroke="#999"/>'
            f'<text x="2" y="11" font-size="11" fill="#555">{y_max:g} {esc(unit)}</text>'
            f'<text x="{WIDTH - 2}" y="{HEIGHT + 13}" font-size="11" fill="#555"'
            f' text-anchor="end">{duration_text(x_seconds)}</text>'
            f'<text x="0" y="{HEIGHT + 13}" font-size="11" fill="#555">0 s</text>')


def _rate_section(facts: RunFacts, line: _Timeline) -> str:
    peak = max(line.per_second)
    top = max(peak, facts.rate or 0) * 1.15 or 1
    scale = HEIGHT / top
    column_width = WIDTH / line.columns
    low = [math.inf] * line.columns
    high = [0] * line.columns
    marks_429 = [0] * line.columns
    marks_503 = [0] * line.columns
    for second in range(line.seconds):
        column = line.column_of(second)
        count = line.per_second[second]
        low[column] = min(low[column], count)
        high[column] = max(high[column], count)
        marks_429[column] += line.throttled[second]
        marks_503[column] += line.unavailable[second]
    # One bar a pixel column: light up to its busiest second, dark up to its quietest.
    gap = 1.0 if column_width > 4 else 0.0
    highs = "".join(f"M{column * column_width:.1f} {HEIGHT}V{HEIGHT - high[column] * scale:.1f}"
                    f"h{column_width - gap:.1f}V{HEIGHT}z" for column in range(line.columns)
                    if high[column])
    lows = "".join(f"M{column * column_width:.1f} {HEIGHT}V{HEIGHT - low[column] * scale:.1f}"
                   f"h{column_width - gap:.1f}V{HEIGHT}z" for column in range(line.columns)
                   if low[column])
    # Pauses merged where they touch within a pixel: one shade each, however many 429s.
    spans: list[list[float]] = []
    for began, ended in facts.pauses:
        left = max(0.0, (began - line.start) / line.seconds * WIDTH)
        right = min(float(WIDTH), (ended - line.start) / line.seconds * WIDTH)
        if right <= left:
            continue
        if spans and left <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], right)
        else:
            spans.append([left, right])
    shades = [f'<rect class="pause" x="{left:.1f}" y="0" width="{right - left:.1f}"'
              f' height="{HEIGHT}" fill="#ffe0b2"><title>paused by the API</title></rect>'
              for left, right in spans]
    marks = "".join(
        f'<rect class="m429" x="{column * column_width:.1f}" y="{HEIGHT + 16}"'
        f' width="{max(column_width, 2):.1f}" height="6" fill="#c62828"/>'
        for column in range(line.columns) if marks_429[column]) + "".join(
        f'<rect class="m503" x="{column * column_width:.1f}" y="{HEIGHT + 23}"'
        f' width="{max(column_width, 2):.1f}" height="6" fill="#ef6c00"/>'
        for column in range(line.columns) if marks_503[column])
    limit = ""
    if facts.rate:
        y = HEIGHT - facts.rate * scale
        limit = (f'<line class="limit" x1="0" y1="{y:.1f}" x2="{WIDTH}" y2="{y:.1f}"'
                 f' stroke="#1565c0" stroke-dasharray="6 4"/><text x="{WIDTH - 4}"'
                 f' y="{y - 4:.1f}" font-size="11" fill="#1565c0" text-anchor="end">limit'
                 f" {facts.rate:g}/s</text>")
    svg = (f'<svg viewBox="0 -2 {WIDTH} {HEIGHT + 32}" width="{WIDTH}" height="{HEIGHT + 34}"'
           f' role="img" aria-labelledby="rate-title rate-desc"><title id="rate-title">'
           f"Requests per second</title><desc id=\"rate-desc\">{esc(_rate_text(line, facts))}"
           f"</desc>{''.join(shades)}{_axis(line.seconds, round(top, 1), 'req/s')}"
           f'<path class="busiest" d="{highs}" fill="#a5d6a7"/>'
           f'<path class="quietest" d="{lows}" fill="#2e7d32"/>{limit}{marks}</svg>')
    legend = ('<p class="note">Bars: requests started each second (where a bar stands for'
              " several seconds, dark green up to the quietest of them, light green up to the"
              " busiest). Dashed: the configured limit. Red marks below: 429 answers; orange:"
              " 503. Shaded: pauses the API asked for.</p>")
    rows = []
    for first, last in line.spans(TABLE_ROWS):
        seconds = line.per_second[first:last]
        rows.append(f"<tr><td>{duration_text(first)}&ndash;{duration_text(last)}</td>"
                    f'<td class="n">{sum(seconds):,}</td><td class="n">{max(seconds):,}</td>'
                    f'<td class="n">{sum(line.throttled[first:last]):,}</td>'
                    f'<td class="n">{sum(line.unavailable[first:last]):,}</td></tr>')
    return (f'<section aria-labelledby="rate"><h2 id="rate">Requests per second</h2>'
            f"<p>{esc(_rate_text(line, facts))}</p>{svg}{legend}<table><thead><tr>"
            "<th>From&ndash;to</th><th>Requests</th><th>Busiest second</th><th>429</th>"
            f"<th>503</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def _rate_text(line: _Timeline, facts: RunFacts) -> str:
    total = sum(line.per_second)
    throttled = sum(line.throttled)
    text = (f"{total:,} requests in {duration_text(line.seconds)}; busiest second"
            f" {max(line.per_second):,}")
    if facts.rate:
        text += f" against a limit of {facts.rate:g}/s"
    text += f"; {throttled:,} answered 429, {sum(line.unavailable):,} answered 503"
    if facts.pauses:
        text += f"; {len(facts.pauses):,} pauses asked by the API"
    return text + "."


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    values.sort()
    last = len(values) - 1
    return tuple(values[round(last * share)] for share in (0.5, 0.9, 0.99))  # type: ignore[return-value]


def _latency_section(facts: RunFacts, line: _Timeline) -> str:
    per_column: list[list[float]] = [[] for _ in range(line.columns)]
    per_span = line.spans(TABLE_ROWS)
    span_values: list[list[float]] = [[] for _ in per_span]
    span_width = per_span[0][1] - per_span[0][0]
    start, columns, seconds = line.start, line.columns, line.seconds
    for began, ended, status in facts.requests:
        if status is None:
            continue  # no answer: its time says nothing of the API's speed
        second = int(began - start)
        took = ended - began
        per_column[second * columns // seconds].append(took)
        span_values[second // span_width].append(took)
    points = [(column, _percentiles(values)) for column, values in enumerate(per_column)
              if values]
    if not points:
        return ""
    top = max(p[2] for _, p in points) * 1.15 or 1
    column_width = WIDTH / line.columns
    lines = []
    for index, (name, colour) in enumerate((("p50", "#2e7d32"), ("p90", "#ef6c00"),
                                            ("p99", "#c62828"))):
        coords = " ".join(f"{(column + 0.5) * column_width:.1f},"
                          f"{HEIGHT - p[index] / top * HEIGHT:.1f}" for column, p in points)
        lines.append(f'<polyline points="{coords}" fill="none" stroke="{colour}"'
                     f' stroke-width="1.5"><title>{name}</title></polyline>')
    svg = (f'<svg viewBox="0 -2 {WIDTH} {HEIGHT + 18}" width="{WIDTH}" height="{HEIGHT + 20}"'
           ' role="img" aria-labelledby="latency-title"><title id="latency-title">Answer time'
           f" p50, p90, p99 over the run</title>{_axis(line.seconds, round(top * 1000), 'ms')}"
           f"{''.join(lines)}</svg>")
    rows = []
    for (first, last), values in zip(per_span, span_values, strict=True):
        if values:
            p50, p90, p99 = _percentiles(values)
            rows.append(f"<tr><td>{duration_text(first)}&ndash;{duration_text(last)}</td>"
                        f'<td class="n">{len(values):,}</td><td class="n">{p50 * 1000:.0f}</td>'
                        f'<td class="n">{p90 * 1000:.0f}</td><td class="n">{p99 * 1000:.0f}'
                        "</td></tr>")
    return ('<section aria-labelledby="latency"><h2 id="latency">Answer time</h2>'
            f'{svg}<p class="note">Green p50, orange p90, red p99, in milliseconds, of the'
            " requests answered.</p><table><thead><tr><th>From&ndash;to</th><th>Answers</th>"
            "<th>p50 ms</th><th>p90 ms</th><th>p99 ms</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></section>")


# ---------------------------------------------------------------- rows


def _errors_section(tally: RowTally, total: int) -> str:
    if not tally.errors:
        return ('<section aria-labelledby="errors"><h2 id="errors">Error codes</h2>'
                "<p>No row has an error code.</p></section>")
    rows = []
    for code, count in tally.errors.most_common():
        meaning, action = ERROR_HELP.get(code, ("", ""))  # type: ignore[call-overload]
        examples = "<br>".join(f"row {row}: {esc(error)}" for row, error in
                               tally.examples.get(code, []))
        rows.append(f"<tr><td><code>{esc(code)}</code></td><td class=\"n\">{count:,}</td>"
                    f'<td class="n">{100 * count / max(total, 1):.1f}%</td>'
                    f"<td>{esc(meaning)}</td><td>{esc(action)}</td><td>{examples}</td></tr>")
    return ('<section aria-labelledby="errors"><h2 id="errors">Error codes</h2><table><thead>'
            "<tr><th>Code</th><th>Rows</th><th>Share</th><th>Meaning</th><th>What to do</th>"
            f"<th>Examples</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>")


def _countries_section(tally: RowTally) -> str:
    if not tally.countries:
        return ""
    ordered = sorted(tally.countries.items(), key=lambda item: -sum(item[1]))
    rows = "".join(f"<tr><td>{esc(_country_name(region))}</td>"
                   f'<td class="n">{valid + invalid:,}</td><td class="n">{valid:,}</td>'
                   f'<td class="n">{invalid:,}</td></tr>' for region, (valid, invalid) in ordered)
    return ('<section aria-labelledby="countries"><h2 id="countries">Countries</h2>'
            '<p class="note">By the number\'s calling code; a row without a usable number by'
            " the country it was read in.</p><table><thead><tr><th>Country</th><th>Rows</th>"
            f"<th>Valid</th><th>Invalid</th></tr></thead><tbody>{rows}</tbody></table>"
            "</section>")


def _country_name(region: str) -> str:
    if not region:
        return "unknown"
    import pycountry

    found = pycountry.countries.get(alpha_2=region)
    return f"{found.name} ({region})" if found is not None else region


def _unknown_section(facts: RunFacts) -> str:
    unknown = facts.counts.get(RowStatus.UNKNOWN, 0)
    if not unknown:
        return ""
    since = min((began for began, _, status in facts.requests
                 if status is None or status in (500, 502, 504)), default=None)
    when = f", the first since {_when(_at(since))}" if since is not None else ""
    config = esc(facts.config or "CONFIG")
    out = esc(facts.out_dir)
    return ('<section aria-labelledby="unknown"><h2 id="unknown">Unknown rows</h2>'
            f"<p><strong>{unknown:,}</strong> rows have an unknown outcome{esc(when)}: the"
            " customer may have got the ticket, so they are never sent again blindly.</p>"
            f'<p class="next">Settle them against the account: <code>vambe-import run FILE'
            f" --config {config} --out {out} --resume --reconcile --until-settled</code>"
            "</p></section>")


def _waiting_section(tally: RowTally, facts: RunFacts) -> str:
    if not tally.skipped_until:
        return ""
    items = "".join(f"<li><code>{esc(code)}</code>: {tally.errors[code]:,} rows; for example:"
                    f" {esc(reason)}</li>" for code, reason in tally.skipped_until.items())
    return ('<section aria-labelledby="waiting"><h2 id="waiting">Send windows and daily limit'
            f"</h2><ul>{items}</ul></section>")


# ---------------------------------------------------------------- text


def _at(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fallback_page(counts: dict[str, int], problem: str) -> str:
    """A page that says it could not be drawn, with the counts (the CSVs hold the rest)."""
    rows = "".join(f'<tr><td>{esc(status)}</td><td class="n">{count:,}</td></tr>'
                   for status, count in counts.items() if count)
    return (f"{_HEAD}<h1>Campaign report</h1><p>This page could not be drawn"
            f" ({esc(problem)}); results.csv, errors.csv and summary.json are whole.</p>"
            f'<section aria-labelledby="statuses"><h2 id="statuses">Rows</h2><table><tbody>'
            f"{rows}</tbody></table></section></main></body></html>\n")
