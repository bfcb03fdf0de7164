"""report.html's cost: the page built for runs of 10,000 and 1,000,000 rows, and its size.

The journal's requests are read first (as `vambe-import report` reads them), then timed
apart: the tally of every row (done in the pass that writes results.csv) and building the
page itself. Run: .venv/bin/python bench/bench_page.py
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

from importer.codes import ErrorCode, ExitCode, RowStatus
from importer.page import RowTally, RunFacts, build_page

RATE = 20.0


def main() -> None:
    for rows in (10_000, 1_000_000):
        rng = random.Random(1)
        start = 1_800_000_000.0
        requests = []
        for n in range(rows):
            began = start + n / RATE + rng.random() * 0.01
            status = 429 if rng.random() < 0.01 else (500 if rng.random() < 0.002 else 200)
            requests.append((began, began + 0.05 + rng.random() * 0.2, status))
        pauses = [(start + n * 3600.0, start + n * 3600.0 + 30) for n in range(1, 5)]
        began_at = datetime.fromtimestamp(start, UTC)
        counts = {RowStatus.SENT: rows - rows // 50, RowStatus.INVALID: rows // 50}
        tally = RowTally()
        phones = [f"+5698765{n:04d}" for n in range(1000)]
        clock = time.perf_counter()
        for n in range(rows):
            if n % 50 == 0:
                tally.add(RowStatus.INVALID, ErrorCode.PHONE_TOO_SHORT,
                          f"phone '{n}' is too short for CL", n + 2, "", "CL")
            else:
                tally.add(RowStatus.SENT, "", "", n + 2, phones[n % 1000], "CL")
        tallied = time.perf_counter() - clock
        facts = RunFacts("run", "campana.csv", None, "https://api.vambe.me (whatsapp, phone ID"
                         " 1)", "ledger.sqlite", "campana-import", "config.toml", RATE,
                         began_at, began_at + timedelta(seconds=rows / RATE), ExitCode.OK,
                         None, counts, requests, pauses)
        clock = time.perf_counter()
        page = build_page(facts, tally)
        built = time.perf_counter() - clock
        print(f"{rows:>9,} rows: page {len(page.encode()) / 1024:.0f} KB, built in"
              f" {built:.2f} s; the rows' tally {tallied:.2f} s"
              f" ({tallied / rows * 1e6:.2f} us a row, in the reports' pass)")


if __name__ == "__main__":
    main()
