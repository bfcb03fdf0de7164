"""Memory against a hostile server: 8 requests in flight, each answered by a 1 GB body or a
gzip bomb that expands to 4 GB. The importer reads at most 1 MiB of any answer, after
decompression, so its peak stays flat (target: under 200 MiB).

    .venv/bin/python bench/bench_hostile.py     # about a minute

Each case runs a whole `vambe-import run` in its own process against a sandbox process in
its hostile mode, and reads the run's peak resident memory from the kernel (os.wait4). The
clean run beside them is the baseline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, sandbox_process, write_campaign, write_config

ROWS = 16
CONCURRENCY = 8
CASES = {
    "clean answers": [],
    "1 GB bodies": ["--huge-body", str(1 << 30)],
    "gzip bombs (4 GB each)": ["--gzip-bomb", str(4 << 30)],
}


def peak_of_run(source: Path, config: Path, folder: Path) -> tuple[float, float, int]:
    """(peak resident MiB, seconds, exit code) of one `vambe-import run` process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "importer", "run", str(source), "--config", str(config),
         "--out", str(folder / "out"), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env={**os.environ, "VAMBE_API_KEY": "sandbox-key",
             "VAMBE_IMPORT_LEDGER": str(folder / "ledger.sqlite"),
             "VAMBE_IMPORT_DATA": str(folder / "data")})
    _, status, usage = os.wait4(process.pid, 0)
    return (usage.ru_maxrss / 1024, time.perf_counter() - started,
            os.waitstatus_to_exitcode(status))


def main() -> None:
    print(f"bench_hostile on {machine()}; {ROWS} rows, {CONCURRENCY} in flight")
    for label, options in CASES.items():
        with tempfile.TemporaryDirectory() as name, sandbox_process(*options) as url:
            folder = Path(name)
            source, config = folder / "campaign.csv", folder / "config.toml"
            write_campaign(source, ROWS)
            write_config(config, url, rate=0, concurrency=CONCURRENCY)
            peak, seconds, code = peak_of_run(source, config, folder)
            print(f"{label}: peak {peak:.1f} MiB (target < 200), {seconds:.1f} s, exit {code}")


if __name__ == "__main__":
    main()
