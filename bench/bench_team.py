"""One rate budget per account: N runs sharing one ledger send at R together, not N x R.

    python bench/bench_team.py [--processes 4] [--rate 40] [--rows 200]

N ``vambe-import run`` processes on this machine, each on its own output folder and its own
list (the lists overlap by half), all with ``rate_limit_per_second = R`` and one ledger,
against a sandbox in its own process that allows R requests in any one-second window (more
are answered 429). Printed: the combined rate of the ticket requests as the sandbox saw them,
as a fraction of R; the busiest one-second window; the 429s; and whether every customer got
exactly one ticket. (The team ledger on PostgreSQL, for several machines, is not in this
release: this measures the SQLite ledger's shared budget.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from _common import STAGE, machine, received, sandbox_process, valid_mobiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rate", type=float, default=40)
    parser.add_argument("--rows", type=int, default=200)
    options = parser.parse_args()
    count, rate, rows = options.processes, options.rate, options.rows
    print(f"bench_team on {machine()}: {count} runs, one ledger, R = {rate:g}/s each")
    phones = valid_mobiles(rows * (count + 1) // 2)
    with tempfile.TemporaryDirectory() as name, \
            sandbox_process("--rate-limit", str(rate)) as url:
        folder = Path(name)
        config = folder / "config.toml"
        config.write_text(
            f'[api]\nbase_url = "{url}"\nphone_id = "123456789"\n'
            f"rate_limit_per_second = {rate}\nmax_concurrency = 8\nmax_throttle_seconds = 60\n"
            '[columns]\nphone = "Teléfono"\n'
            f'[defaults]\nstage_id = "{STAGE}"\ncountry = "CL"\n', encoding="utf-8")
        env = {**os.environ, "VAMBE_API_KEY": "sandbox-key",
               "VAMBE_IMPORT_LEDGER": str(folder / "ledger.sqlite"),
               "VAMBE_IMPORT_DATA": str(folder / "data")}
        runs = []
        for n in range(count):
            source = folder / f"lista-{n}.csv"
            start = n * rows // 2
            source.write_text("Teléfono\n" + "".join(f"+569{digits}\n" for digits in
                                                      phones[start:start + rows]),
                              encoding="utf-8")
            runs.append(subprocess.Popen(
                [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
                 "--out", str(folder / f"out-{n}"), "--quiet"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        codes = [run.wait(timeout=600) for run in runs]
        seen = received(url)["received"]
    tickets = [(at, status) for at, status, path in seen if path.startswith("/api/public/ticket")]
    times = sorted(at for at, status in tickets if status != 429)
    busiest = max(sum(1 for other in times if at <= other < at + 1) for at in times)
    span = times[-1] - times[0]
    throttled = sum(status == 429 for _, status in tickets)
    distinct = len(set(phones[:rows * (count + 1) // 2]))
    print(f"exit codes {Counter(codes)}; {len(times)} tickets for {distinct} customers"
          f" ({'exactly one each' if len(times) == distinct else 'NOT one each'})")
    print(f"combined rate {(len(times) - 1) / span:.1f}/s = {(len(times) - 1) / span / rate:.2f}"
          f" x R; busiest one-second window {busiest} (R = {rate:g}); answers 429: {throttled}")


if __name__ == "__main__":
    main()
