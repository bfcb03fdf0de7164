"""The local page end to end in Chromium, as a person who never saw a TOML file uses it.

Run on their own, without xdist: ``pytest -m browser -n 0`` (the README's test command does).
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from importer.ui import UiServer

from .conftest import start_run

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ["VAMBE_IMPORT_SCREENSHOTS"]) if os.environ.get(
    "VAMBE_IMPORT_SCREENSHOTS") else None
# What must match between the page's results.csv and the CLI's (contact IDs are the
# sandbox's own per run; attempts depend on the pilot, the stop and the resume).
COMPARED = ("row", "status", "error_code", "error", "phone_as_written", "phone",
            "phone_column", "name", "http_status")


def _rows(path: Path) -> list[tuple[str, ...]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [tuple(row[name] for name in COMPARED) for row in csv.DictReader(handle)]


def test_from_the_sample_spreadsheet_to_a_finished_campaign_in_the_browser(
        chromium, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shots = SHOTS or tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    sample = tmp_path / "campana_noviembre.csv"
    shutil.copy(ROOT / "sample_data" / "campana_noviembre.csv", sample)
    server = UiServer().start()
    page = chromium.new_page(viewport={"width": 1100, "height": 900})

    def button(name: str):
        return page.get_by_role("button", name=name, exact=True)

    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"ui-{name}.png"), full_page=True)

    try:
        page.goto(server.url)
        # 1. File: upload the sample, to the sandbox.
        page.set_input_files("#upload", str(sample))
        button("Upload").click()
        assert "campana_noviembre.csv" in page.get_by_role("status").inner_text()
        page.get_by_label("Send to the built-in sandbox").check()
        shot("1-file")
        button("Next").click()
        # 2. Mapping: init's guesses; change one column (no email) and the pace.
        assert page.get_by_label("Phone", exact=True).input_value() == "Teléfono"
        page.get_by_label("Email").select_option("")
        page.get_by_label("Requests per second").fill("4")
        button("Update preview").click()
        assert '"to_phone_number": "+56972530829"' in page.locator("#body").inner_text()
        assert "email" not in page.locator("#toml").inner_text()
        shot("2-mapping")
        button("Next").click()
        # 3. Check: validate's counts, the rows that would not be sent.
        status = page.get_by_role("status").inner_text()
        assert "valid\t40" in status and "invalid\t4" in status and "duplicate\t1" in status
        shot("3-check")
        button("Validate").click()  # again: the same
        assert "valid\t40" in page.get_by_role("status").inner_text()
        button("Next").click()
        # 4. Pilot: five rows.
        page.get_by_label("Rows to send").fill("5")
        button("Send pilot").click()
        page.wait_for_url("**/result", timeout=60_000)
        assert "sent\t5" in page.get_by_role("status").inner_text()
        button("Next").click()
        # 5. Send: the plan as the CLI asks it, then Send all, then Stop.
        button("Send all").wait_for(timeout=60_000)
        assert "About to open 35 tickets" in page.get_by_role("status").inner_text()
        shot("5-send")
        button("Send all").click()
        page.wait_for_url("**/progress")
        shot("5-progress")
        button("Stop").click()
        page.wait_for_url("**/result", timeout=60_000)
        # 6. Result, then Resume sends what the stop left.
        button("Resume").click()
        page.wait_for_url("**/result", timeout=120_000)
        status = page.get_by_role("status").inner_text()
        assert "sent\t40" in status and "skipped" not in status
        report = page.frame_locator("iframe[title='Campaign report']")
        assert "Campaign report: campana_noviembre.csv" in report.locator("h1").inner_text()
        shot("6-result")
        with page.expect_download() as download:
            button("Download results").click()
        downloaded = tmp_path / "downloaded-results.csv"
        download.value.save_as(downloaded)
        page.goto(f"http://127.0.0.1:{server.port}/runs")
        assert page.get_by_role("button", name="Open campana_noviembre-import").count() == 1
        sandbox = server.session.sandbox_server
        assert sandbox is not None
        assert max(sandbox.state.tickets_per_phone().values()) == 1
        assert len(sandbox.state.tickets) == 40
    finally:
        page.close()
        server.stop()
    # The same file and the config the page saved, through the CLI: the same results.
    config = tmp_path / "campana_noviembre.vambe.toml"
    run = start_run(config, sample, "--sandbox", "--out", "cli", cwd=tmp_path)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr  # invalid rows, as on the page
    assert _rows(downloaded) == _rows(tmp_path / "cli" / "results.csv")
