"""One rate budget per account: N runs sharing one ledger send at R together, not N x R.

    python bench/bench_team.py [--ledger file|team] [--processes 4] [--rate 40] [--rows 200]

N ``vambe-import run`` processes, each on its own list (the lists overlap by half), all with
``rate_limit_per_second = R`` and one ledger, against a sandbox in its own process that
allows R requests in any one-second window (more are answered 429). ``--ledger file``: one
ledger file on this machine (two terminals); ``--ledger team``: "laptops" (their own HOME and
data folder) sharing a team ledger on a throwaway PostgreSQL server started here (the
machine's own binaries, loopback). Printed: the combined rate of the ticket requests as the
sandbox saw them, as a fraction of R; the busiest one-second window; the 429s; whether every
customer got exactly one ticket; and, for the team ledger, the latency of a claim (200 keys)
and of a slot reservation, p50 and p99, while four other processes reserve slots.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _common import ROOT, STAGE, machine, received, sandbox_process, valid_mobiles

sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ledger", choices=["file", "team"], default="file")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40)
    parser.add_argument("--rows", type=int, default=200)
    options = parser.parse_args()
    count, rate, rows = options.processes, options.rate, options.rows
    print(f"bench_team on {machine()}: {count} runs, one {options.ledger} ledger,"
          f" R = {rate:g}/s each")
    phones = valid_mobiles(rows * (count + 1) // 2)
    database = None
    with tempfile.TemporaryDirectory() as name, \
            sandbox_process("--rate-limit", str(rate)) as url:
        folder = Path(name)
        if options.ledger == "team":
            from tests.postgres import PostgresServer

            database = PostgresServer.start()
            ledger = database.new_database()
        else:
            ledger = str(folder / "ledger.sqlite")
        try:
            seen = _campaign(folder, url, ledger, phones, count, rate, rows)
            if database is not None:
                _latencies(ledger, folder)
        finally:
            if database is not None:
                database.stop()
    tickets = [(at, status) for at, status, path in seen if path.startswith("/api/public/ticket")]
    times = sorted(at for at, status in tickets if status != 429)
    every = sorted(at for at, _, _ in seen)  # look-ups count against the limit too
    busiest = max(sum(1 for other in every if at <= other < at + 1) for at in every)
    span = times[-1] - times[0]
    throttled = sum(status == 429 for _, status in tickets)
    distinct = len(set(phones[:rows * (count + 1) // 2]))
    print(f"{len(times)} tickets for {distinct} customers"
          f" ({'exactly one each' if len(times) == distinct else 'NOT one each'})")
    print(f"combined rate {(len(times) - 1) / span:.1f}/s = {(len(times) - 1) / span / rate:.2f}"
          f" x R; busiest one-second window {busiest} requests (R = {rate:g}); answers 429:"
          f" {throttled}")


def _campaign(folder: Path, url: str, ledger: str, phones: list[str], count: int, rate: float,
              rows: int) -> list:
    config = folder / "config.toml"
    config.write_text(
        f'[api]\nbase_url = "{url}"\nphone_id = "123456789"\n'
        f"rate_limit_per_second = {rate}\nmax_concurrency = 8\nmax_throttle_seconds = 60\n"
        '[columns]\nphone = "Teléfono"\n'
        f'[defaults]\nstage_id = "{STAGE}"\ncountry = "CL"\n', encoding="utf-8")
    runs = []
    for n in range(count):
        home = folder / f"laptop-{n}"
        home.mkdir()
        env = {**os.environ, "VAMBE_API_KEY": "sandbox-key", "VAMBE_IMPORT_LEDGER": ledger,
               "HOME": str(home), "VAMBE_IMPORT_DATA": str(home / "data")}
        source = home / "lista.csv"
        start = n * rows // 2
        source.write_text("Teléfono\n" + "".join(f"+569{digits}\n" for digits in
                                                  phones[start:start + rows]), encoding="utf-8")
        runs.append(subprocess.Popen(
            [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
             "--out", str(home / "out"), "--quiet"], env=env, cwd=ROOT,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    codes = [run.wait(timeout=600) for run in runs]
    print(f"exit codes {dict(Counter(codes))}")
    return received(url)["received"]


def _reserve_until(url: str, folder: str, stop) -> None:
    from importer.ledger import Ledger, TeamURL, target_name

    ledger = Ledger.open(TeamURL(url), target=target_name(channel="whatsapp",
                                                          phone_id="987654321"),
                         folder=Path(folder))
    while not stop.is_set():
        ledger.reserve_slot(1 / 2000, 2000, 1.02)
    ledger.close()


def _latencies(url: str, folder: Path) -> None:
    """Claim and reservation latency on the team ledger, while four other processes reserve
    slots of the same account as fast as they can."""
    import multiprocessing

    from importer.ledger import Ledger, TeamURL, target_name

    stop = multiprocessing.Event()
    others = [multiprocessing.Process(target=_reserve_until, args=(url, str(folder / f"t{n}"),
                                                                   stop)) for n in range(4)]
    for process in others:
        process.start()
    me = Ledger.open(TeamURL(url), target=target_name(channel="whatsapp", phone_id="987654321"),
                     folder=folder / "me")
    reservations, claims = [], []
    for _ in range(2000):
        began = time.perf_counter()
        me.reserve_slot(1 / 2000, 2000, 1.02)
        reservations.append(time.perf_counter() - began)

    async def claim_batches() -> None:
        for batch in range(100):
            keys = [(f"k{batch}-{n}", n, f"+5690000{n:04d}") for n in range(200)]
            began = time.perf_counter()
            await me.claim(keys)
            claims.append(time.perf_counter() - began)

    asyncio.run(claim_batches())
    stop.set()
    for process in others:
        process.join()
    me.close()

    def p(values: list[float], q: int) -> str:
        return f"{statistics.quantiles(values, n=100)[q - 1] * 1000:.2f} ms"

    print(f"reservation p50 {p(reservations, 50)}, p99 {p(reservations, 99)};"
          f" claim of 200 keys p50 {p(claims, 50)}, p99 {p(claims, 99)}"
          " (four other processes reserving meanwhile)")


if __name__ == "__main__":
    main()
