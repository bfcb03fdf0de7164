"""The run page in a real browser: Debian's Chromium, driven by Playwright.

Run on their own, without xdist: ``pytest -m browser -n 0`` (the README's test command does).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from importer.sandbox import Faults

from .conftest import people, start_run

pytestmark = pytest.mark.browser

# Where the tests leave their screenshots (docs/images/ holds copies for the docs).
SHOTS = Path(os.environ.get("VAMBE_IMPORT_SCREENSHOTS", "")) if os.environ.get(
    "VAMBE_IMPORT_SCREENSHOTS") else None


def test_a_run_with_faults_shows_the_limit_the_429s_and_the_next_step(
        chromium, sandbox, write_config, write_csv, tmp_path):
    """Issue 23's "done when": a sandbox run with --throttle, --fail-500 and --drop; its
    page, rendered by Chromium with no network, shows the limit line, the 429 marks and the
    unknown rows' next step, and its numbers are summary.json's."""
    sandbox.state.faults = Faults(throttle=0.15, fail_500=0.08, drop=0.05, seed=7, latency=0.01)
    config = write_config(sandbox.url, api={"rate_limit_per_second": 25})
    # A real process: Playwright's sync API holds this thread's event loop.
    run = start_run(config, write_csv(people(60)), cwd=tmp_path)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 5, stderr
    out = tmp_path / "clientes-import"
    page = chromium.new_page(viewport={"width": 800, "height": 1200})
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    try:
        page.goto((out / "report.html").as_uri())
        assert fetched == [(out / "report.html").as_uri()]  # nothing else, from anywhere
        chart = page.get_by_role("img", name="Requests per second")
        assert chart.is_visible()
        assert chart.locator("line.limit").count() == 1
        assert chart.locator("rect.m429").count() >= 1
        unknown = page.locator("section[aria-labelledby=unknown]")
        assert "--resume --reconcile --until-settled" in unknown.inner_text()
        import json

        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        rows = page.locator("section[aria-labelledby=statuses] tbody tr")
        shown = {rows.nth(n).locator("td").nth(0).inner_text():
                 int(rows.nth(n).locator("td").nth(1).inner_text().replace(",", ""))
                 for n in range(rows.count())}
        assert shown == {status: summary[status] for status in shown}
        assert summary["unknown"] == shown["unknown"] > 0
        shot = (SHOTS or tmp_path) / "report-page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        page.emulate_media(media="print")  # prints: the charts stay whole on A4
        pdf = page.pdf(format="A4")
        assert pdf.startswith(b"%PDF")
    finally:
        page.close()
