"""Debian's Chromium driven by Playwright, for the browser tests (``pytest -m browser -n 0``).

Skipped with one line where Chromium or Playwright is missing, unless
VAMBE_IMPORT_REQUIRE_BROWSER=1 (CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
# Chromium as root in a container, on a machine whose network is closed: no sandbox, no GPU,
# none of the background connections it would make at every start.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def launch_chromium(playwright_factory):
    """A headless Chromium, or a skip (a failure under VAMBE_IMPORT_REQUIRE_BROWSER=1)."""
    missing = None
    if not os.path.exists(CHROMIUM):
        missing = f"no {CHROMIUM}: apt-get install chromium to run the browser tests"
    elif playwright_factory is None:
        missing = "no playwright: pip install -e '.[test]' to run the browser tests"
    if missing is not None:
        if os.environ.get("VAMBE_IMPORT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{missing}, and VAMBE_IMPORT_REQUIRE_BROWSER=1 says they must run")
        pytest.skip(missing)
    return shutil.which(CHROMIUM) or CHROMIUM
