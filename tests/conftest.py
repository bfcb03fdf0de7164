"""Shared fixtures: a real sandbox API on a free loopback port, configs, input files, the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from importer.cli import cli
from importer.ledger import TeamURL
from importer.sandbox import DEFAULT_API_KEY, Faults, SandboxServer, SandboxState
from importer.timing import FakeClock, use_clock

from .browser import ARGS, launch_chromium
from .postgres import PostgresServer, PostgresUnavailable

# Child processes (``python -m importer`` runs, the XLSX reader process) start in test
# folders, where ``importer`` is found through the installed package, which may be another
# checkout's (git worktrees sharing one virtualenv): they import this checkout's code.
ROOT = Path(__file__).resolve().parent.parent
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

# Valid Chilean mobiles (libphonenumber's data); +56 9 1... is unallocated, so not valid.
PHONES = [f"+5698765{n:04d}" for n in range(4321, 4421)]
STAGE_NEW = "550e8400-e29b-41d4-a716-446655440000"
STAGE_CONTACTED = "550e8400-e29b-41d4-a716-446655440001"
SUPPORT_NEW = "7c9e6679-7425-40de-944b-e07fc1f90ae7"


@pytest.fixture
def ledger_kind() -> str:
    """Which ledger a test's runs use: "file" (a test module may parametrize it with
    "team": a fresh database on the session's PostgreSQL server)."""
    return "file"


@pytest.fixture(autouse=True)
def ledger(tmp_path: Path, monkeypatch, request, ledger_kind: str) -> Path | str:
    """Every test's send ledger is its own temporary file (or, for "team", its own fresh
    database), and its data folder (the index of ledgers) a temporary folder, never the
    user's real ones (subprocesses inherit them). Returns the ledger's name as messages
    give it."""
    monkeypatch.setenv("VAMBE_IMPORT_DATA", str(tmp_path / "data"))  # the index of ledgers
    if ledger_kind == "team":
        url = request.getfixturevalue("team_database")
        monkeypatch.setenv("VAMBE_IMPORT_LEDGER", url)
        return TeamURL(url).display
    path = tmp_path / "ledger" / "ledger.sqlite"
    monkeypatch.setenv("VAMBE_IMPORT_LEDGER", str(path))
    return path


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL cluster for the session (this xdist worker's), from the
    machine's server binaries; skipped where there are none, unless
    VAMBE_IMPORT_REQUIRE_POSTGRES=1 (CI) makes that a failure."""
    try:
        server = PostgresServer.start()
    except PostgresUnavailable as reason:
        if os.environ.get("VAMBE_IMPORT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"no PostgreSQL server could start ({reason}), and"
                        " VAMBE_IMPORT_REQUIRE_POSTGRES=1 says it must")
        pytest.skip(f"no PostgreSQL server binaries ({reason}): apt-get install postgresql"
                    " to run the team ledger tests")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium page factory for the browser tests (marked ``browser``, run in
    their own ``pytest -m browser -n 0``)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    executable = launch_chromium(sync_playwright)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def team_database(postgres_server) -> str:
    """The URL of a fresh, empty database for one test's team ledger."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def _shared_sandbox():
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox(_shared_sandbox):
    """A fresh sandbox API served over HTTP on 127.0.0.1: one server for the session (a
    restart costs 0.2 s), its state reset for each test."""
    _shared_sandbox.state.reset()
    yield _shared_sandbox
    _shared_sandbox.state.wait_idle()


@pytest.fixture
def fake_clock():
    """Every wait of the importer (pacing, 429 pauses, backoff) in virtual time: the test
    costs no real waiting and does not depend on the machine's load."""
    with use_clock(FakeClock()) as clock:
        yield clock


@pytest.fixture
def make_sandbox():
    """Start sandboxes with chosen faults; all are stopped after the test."""
    servers = []

    def start(**faults) -> SandboxServer:
        server = SandboxServer(SandboxState(faults=Faults(**faults))).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(v)}' for k, v in value.items()) + " }"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def config_text(sections: dict) -> str:
    lines = []
    for section, values in sections.items():
        if values is None:
            continue
        lines.append(f"[{section}]")
        lines.extend(f'"{key}" = {_toml_value(value)}' for key, value in values.items()
                     if value is not None)
        lines.append("")
    return "\n".join(lines)


def base_sections(url: str) -> dict:
    return {
        "api": {"base_url": url, "phone_id": "123456789", "rate_limit_per_second": 200,
                "max_concurrency": 8, "timeout_seconds": 5, "max_retries": 3,
                "retry_backoff_seconds": 0.01},
        "columns": {"phone": "Teléfono", "contact_name": "Nombre", "email": "Correo"},
        "defaults": {"stage_id": STAGE_NEW, "country": "CL"},
    }


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a config for ``url``; ``changes`` replace or drop (None) whole sections."""

    def write(url: str = "http://127.0.0.1:9", name: str = "config.toml", **changes) -> Path:
        sections = base_sections(url)
        for section, values in changes.items():
            if values is not None and section in sections and isinstance(values, dict):
                sections[section] = {**sections[section], **values}
            else:
                sections[section] = values
        path = tmp_path / name
        path.write_text(config_text(sections), encoding="utf-8")
        return path

    return write


def csv_bytes(rows: list[list[str]], *, delimiter: str = ",", encoding: str = "utf-8",
              newline: str = "\n") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=newline).writerows(rows)
    return buffer.getvalue().encode(encoding)


@pytest.fixture
def write_csv(tmp_path: Path):
    """Write rows (header first) as a CSV file and return its path."""

    def write(rows: list[list[str]], name: str = "clientes.csv", **options) -> Path:
        path = tmp_path / name
        path.write_bytes(csv_bytes(rows, **options))
        return path

    return write


def people(count: int, start: int = 0) -> list[list[str]]:
    """A header and ``count`` valid rows of name, phone and email."""
    return [["Nombre", "Teléfono", "Correo"]] + [
        [f"Cliente {n}", PHONES[n], f"cliente{n}@example.com"]
        for n in range(start, start + count)]


@pytest.fixture
def invoke(tmp_path: Path, monkeypatch):
    """Run ``vambe-import`` in process, in tmp_path, with the sandbox's key in the environment."""
    monkeypatch.chdir(tmp_path)

    def run(*args: str, api_key: str | None = DEFAULT_API_KEY, input: str | None = None) -> Result:
        env = {"VAMBE_API_KEY": api_key} if api_key is not None else {"VAMBE_API_KEY": ""}
        return CliRunner().invoke(cli, [str(arg) for arg in args], env=env, input=input,
                                  catch_exceptions=False)

    return run


def read_results(out_dir: Path) -> list[dict[str, str]]:
    with (out_dir / "results.csv").open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def read_errors(out_dir: Path, encoding: str = "utf-8", delimiter: str = ",") -> list[list[str]]:
    with (out_dir / "errors.csv").open(encoding=encoding, newline="") as handle:
        return list(csv.reader(handle, delimiter=delimiter))


def _run_rows(sandbox, write_config, write_csv, invoke, tmp_path, rows, **config_changes):
    """``run`` on ``rows`` (header first) with the base config and ``config_changes``: the
    CLI's result and the rows of results.csv."""
    source = write_csv(rows)
    result = invoke("run", source, "--config", write_config(sandbox.url, **config_changes))
    return result, read_results(tmp_path / "clientes-import")


def start_run(config: Path, source: Path, *options, cwd: Path | None = None
              ) -> subprocess.Popen:
    """``vambe-import run`` as a real process without a terminal (as cron or a pipe runs it)."""
    env = {**os.environ, "VAMBE_API_KEY": DEFAULT_API_KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
         "--quiet", *map(str, options)],
        env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


def wait_until(condition, limit: float = 30) -> None:
    """Poll for a condition with a deadline (never a fixed sleep)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "the condition was not met in time"
        time.sleep(0.01)
