"""The plan pass: what writing the plan into the journal costs, and how big the journal is.

    python bench/bench_plan.py [--rows 1000000] [--repeats 3]

The file is bench_validate's campaign file, every phone distinct: eight columns like the
sample's (name, phone, email, company, order, city, amount, country), 2% invalid phones,
and a config mapping name, email, two contact and two ticket metadata fields. Printed, side
by side in one process (medians of ``--repeats``):

1. reading and checking every row (read -> map -> validate, nothing written) against the
   whole plan pass (the same, plus the journal): the plan's own rate, rows per second of
   the difference (target >= 100,000 rows/s);
2. the journal's size per row once the plan is written (target < 400 bytes).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import machine
from bench_validate import write_config, write_file

from importer.config import load_config
from importer.journal import JOURNAL_NAME, Journal
from importer.mapping import RowMapper
from importer.plan import plan_file
from importer.read import open_table
from importer.validate import StageResolver, Validator


def check_only(source: Path, config_path: Path) -> float:
    config = load_config(config_path)
    table = open_table(source)
    started = time.perf_counter()
    validator = Validator(config, StageResolver(None))
    mapper = RowMapper(config, table.headers)
    for row in table.rows():
        validator.check(mapper.map(row))
    return time.perf_counter() - started


def plan(source: Path, config_path: Path, out: Path) -> float:
    config = load_config(config_path)
    table = open_table(source)
    started = time.perf_counter()
    out.mkdir()
    journal = Journal.create(out, identity={}, ledger_id=None, ledger_path=None, table=table,
                             config_digest="")
    plan_file(table, config, Validator(config, StageResolver(None)), journal)
    journal.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    rows = options.rows
    print(f"bench_plan on {machine()}; medians of {options.repeats} runs side by side")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        config = folder / "config.toml"
        write_config(config)
        source = folder / "campaign.csv"
        write_file(source, rows, distinct=None)
        checks, plans = [], []
        for attempt in range(options.repeats):
            checks.append(check_only(source, config))
            plans.append(plan(source, config, folder / f"out-{attempt}"))
        check_s, plan_s = statistics.median(checks), statistics.median(plans)
        extra = max(plan_s - check_s, 1e-9)
        print(f"{rows:,} rows: read and check {check_s:.2f} s, plan pass {plan_s:.2f} s;"
              f" writing the plan costs {extra:.2f} s = {rows / extra:,.0f} rows/s"
              " (target >= 100,000)")
        size = (folder / "out-0" / JOURNAL_NAME).stat().st_size
        print(f"journal: {size / 2**20:.1f} MiB, {size / rows:.0f} bytes a row"
              f" (target < 400; the CSV itself: {source.stat().st_size / rows:.0f} bytes a row)")


if __name__ == "__main__":
    main()
