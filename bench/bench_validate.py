"""Target 5: `validate` of a 200,000-row CSV runs at no less than half the speed of a bare
phonenumbers loop (parse + is_valid_number + format_number) over the same phone column.

    python bench/bench_validate.py [--rows 200000] [--distinct 50000]

The campaign repeats people (``--distinct`` of them), as real files do; a second run with
every phone distinct is printed too, for the worst case.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import phonenumbers

from _common import machine, run_importer, write_campaign, write_config


def bare_loop(path: Path) -> float:
    with path.open(encoding="utf-8", newline="") as handle:
        phones = [row[1] for row in csv.reader(handle)][1:]
    started = time.perf_counter()
    for text in phones:
        number = phonenumbers.parse(text, "CL")
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return time.perf_counter() - started


def compare(folder: Path, rows: int, distinct: int | None, repeats: int) -> None:
    source = folder / f"campaign-{distinct}.csv"
    write_campaign(source, rows, distinct=distinct)
    config = folder / "config.toml"
    write_config(config, "http://127.0.0.1:9", rate=5, concurrency=8)
    bare, importer = [], []
    for attempt in range(repeats):
        bare.append(bare_loop(source))
        seconds, done = run_importer("validate", str(source), "--config", str(config),
                                     "--out", str(folder / f"out-{distinct}-{attempt}"),
                                     env={"VAMBE_API_KEY": ""})
        if done.returncode not in (0, 1):
            raise SystemExit(done.stderr)
        importer.append(seconds)
    bare_s, importer_s = statistics.median(bare), statistics.median(importer)
    label = f"{distinct} distinct people" if distinct else "every phone distinct"
    print(f"{rows} rows, {label}: bare phonenumbers loop {bare_s:.2f} s"
          f" ({rows / bare_s:,.0f} rows/s), vambe-import validate {importer_s:.2f} s"
          f" ({rows / importer_s:,.0f} rows/s); speed ratio {bare_s / importer_s:.2f}"
          f" (target >= 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--distinct", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    print(f"bench_validate on {machine()}; medians of {options.repeats} runs side by side")
    with tempfile.TemporaryDirectory() as folder:
        compare(Path(folder), options.rows, options.distinct, options.repeats)
        compare(Path(folder), options.rows, None, options.repeats)


if __name__ == "__main__":
    main()
