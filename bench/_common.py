"""Shared pieces of the benchmarks: campaign data, a sandbox in its own process, timing.

Every benchmark builds its own data in a temporary folder, runs the importer and a bare
baseline side by side in the same run, and prints ratios: the machines are shared and noisy,
so absolute seconds mean little and ratios measured together mean a lot.
"""

from __future__ import annotations

import csv
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import phonenumbers

ROOT = Path(__file__).resolve().parent.parent
STAGE = "550e8400-e29b-41d4-a716-446655440000"
HEADERS = ["Nombre", "Teléfono", "Correo", "Empresa", "Pedido"]
FORMATS = (
    lambda d: f"+56 9 {d[:4]} {d[4:]}",
    lambda d: f"569{d}",
    lambda d: f"9 {d[:4]} {d[4:]}",
    lambda d: f"(+56) 9-{d[:4]}-{d[4:]}",
    lambda d: f"+569{d}",
)


def valid_mobiles(count: int, seed: int = 1) -> list[str]:
    """``count`` distinct 8-digit subscriber parts of valid Chilean mobiles (+56 9 ...)."""
    rng = random.Random(seed)
    found: set[str] = set()
    while len(found) < count:
        digits = f"{rng.randint(50_000_000, 99_999_999)}"
        if digits not in found and phonenumbers.is_valid_number(
                phonenumbers.parse(f"+569{digits}")):
            found.add(digits)
    return sorted(found)


def people(rows: int, distinct: int | None, seed: int, rng: random.Random):
    """(row index, person, the person's 8 mobile digits) for each row; with ``distinct``,
    people (and their phones) repeat across rows."""
    pool = valid_mobiles(distinct or rows, seed)
    for n in range(rows):
        person = n if distinct is None else rng.randrange(len(pool))
        yield n, person, pool[person]


def write_campaign(path: Path, rows: int, *, distinct: int | None = None, seed: int = 1) -> None:
    """A campaign CSV; with ``distinct``, phones (and their people) repeat across rows."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        for n, person, digits in people(rows, distinct, seed, rng):
            writer.writerow([f"Cliente {person}", FORMATS[person % len(FORMATS)](digits),
                             f"cliente{person}@example.com", f"Empresa {person % 97}",
                             str(100_000 + n)])


def write_config(path: Path, base_url: str, *, rate: float, concurrency: int,
                 dedupe: str = "first") -> None:
    path.write_text(
        f'[api]\nbase_url = "{base_url}"\nphone_id = "123456789"\n'
        f"rate_limit_per_second = {rate}\nmax_concurrency = {concurrency}\n"
        "timeout_seconds = 30\n"
        '[columns]\nphone = "Teléfono"\ncontact_name = "Nombre"\nemail = "Correo"\n'
        f'[defaults]\nstage_id = "{STAGE}"\ncountry = "CL"\n'
        '[contact_metadata]\ncompany = "Empresa"\n[ticket_metadata]\norder_id = "Pedido"\n'
        f'[dedupe]\nwithin_file = "{dedupe}"\n',
        encoding="utf-8",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def sandbox_process(*options: str):
    """``vambe-import sandbox`` in its own process (its own core); yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "sandbox", "--port", str(port), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                received(url)
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox process did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def received(url: str) -> dict:
    request = urllib.request.Request(f"{url}/_sandbox/received",
                                     headers={"x-api-key": "sandbox-key"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def run_importer(*args: str, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``vambe-import`` as a user would, with a send ledger of its own (never the user's,
    and never one that remembers an earlier repeat); returns wall seconds and the process."""
    with tempfile.TemporaryDirectory() as ledger:
        env = {**os.environ, "VAMBE_IMPORT_LEDGER": f"{ledger}/ledger.sqlite",
               "VAMBE_IMPORT_DATA": f"{ledger}/data", **(env or {})}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "importer", *args], capture_output=True,
                              text=True, env=env, stdin=subprocess.DEVNULL, check=False)
        return time.perf_counter() - started, done


def machine() -> str:
    import platform

    return f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"
