"""Target 4: reading, validating and reporting stream. The peak memory of `validate` grows by at
most 10 MiB per 100,000 rows (only the compact index of phones seen may grow) and stays under
400 MiB for 2,000,000 rows; XLSX is read in a streaming mode.

    python bench/bench_memory.py [--sizes 200000,1000000,2000000] [--xlsx 50000,250000]

The first size is past the point where the bounded caches (65,536 phones, 16,384 emails)
are full, so the growth measured is what grows with the file.

Every phone is distinct (the index's worst case) and valid. Peak memory is the resident set
high-water mark of the `vambe-import validate` process (os.wait4), so it counts everything:
interpreter, libraries, buffers.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import HEADERS, machine, write_config


def distinct_rows(count: int):
    for n in range(count):
        # +56 9 5... and +56 9 8... are all valid; 7919 spreads n over the 10^7 numbers
        digits = f"{'58'[n % 2]}{(n // 2) * 7919 % 10_000_000:07d}"
        yield [f"Cliente {n}", f"+56 9 {digits[:4]} {digits[4:]}", f"cliente{n}@example.com",
               f"Empresa {n % 97}", str(100_000 + n)]


def write_csv(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADERS)
        writer.writerows(distinct_rows(count))


def write_xlsx(path: Path, count: int) -> None:
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Clientes")
    sheet.append(HEADERS)
    for row in distinct_rows(count):
        sheet.append(row)
    workbook.save(path)


def peak_of_validate(source: Path, config: Path, out: Path) -> tuple[float, float]:
    """(peak resident MiB, seconds) of one `vambe-import validate` process."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "importer", "validate", str(source),
                                "--config", str(config), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "VAMBE_API_KEY": "",
                                    "VAMBE_IMPORT_LEDGER": str(out.with_suffix(".ledger")),
                                    "VAMBE_IMPORT_DATA": str(out.with_suffix(".data"))})
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(process.stderr.read().decode())
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def measure(folder: Path, kind: str, sizes: list[int]) -> None:
    config = folder / "config.toml"
    write_config(config, "http://127.0.0.1:9", rate=5, concurrency=8)
    peaks = []
    for size in sizes:
        source = folder / f"rows-{size}.{kind}"
        (write_xlsx if kind == "xlsx" else write_csv)(source, size)
        peak, seconds = peak_of_validate(source, config, folder / f"out-{kind}-{size}")
        peaks.append(peak)
        print(f"{kind} {size:>9,} rows: peak {peak:6.1f} MiB, {seconds:6.1f} s"
              f" ({size / seconds:,.0f} rows/s)")
        source.unlink()
    growth = (peaks[-1] - peaks[0]) / ((sizes[-1] - sizes[0]) / 100_000)
    print(f"{kind}: growth {growth:.2f} MiB per 100,000 rows between {sizes[0]:,} and"
          f" {sizes[-1]:,} rows (target <= 10); peak at {sizes[-1]:,}: {peaks[-1]:.1f} MiB"
          + (" (target < 400 at 2,000,000)" if kind == "csv" else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200000,1000000,2000000")
    parser.add_argument("--xlsx", default="50000,250000")
    options = parser.parse_args()
    print(f"bench_memory on {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        measure(Path(folder), "csv", [int(size) for size in options.sizes.split(",")])
        measure(Path(folder), "xlsx", [int(size) for size in options.xlsx.split(",")])


if __name__ == "__main__":
    main()
