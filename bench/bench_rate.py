"""Targets 1 and 2: a smooth rate from the first second, and concurrency that follows it.

    python bench/bench_rate.py

1. Against a sandbox process that allows 1.05 x R requests in any 1-second window, a run of
   600 rows at R = 100 must get no 429, hold at most R requests in every 1-second window
   (from the very first), and its sending phase (first request to last, as the server saw
   them) must last no more than 1.1 x 599 / R seconds.
2. With 0.2 s of latency, R = 50 needs 10 requests in flight: max_concurrency = 12 must reach
   the rate; max_concurrency = 4 cannot, and the importer must say so in one line.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import (
    machine,
    received,
    run_importer,
    sandbox_process,
    write_campaign,
    write_config,
)

KEY = {"VAMBE_API_KEY": "sandbox-key"}


def ticket_arrivals(url: str) -> tuple[list[float], int]:
    seen = [item for item in received(url)["received"] if "/ticket/" in item[2]]
    return sorted(at for at, _, _ in seen), sum(1 for _, status, _ in seen if status == 429)


def busiest_second(times: list[float]) -> int:
    """The most requests in any window [t, t + 1 s)."""
    most, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def rate_precision(folder: Path, rate: int = 100, rows: int = 600) -> None:
    source, config = folder / "rate.csv", folder / "rate.toml"
    write_campaign(source, rows)
    with sandbox_process("--rate-limit", str(rate * 1.05)) as url:
        write_config(config, url, rate=rate, concurrency=16)
        _, done = run_importer("run", str(source), "--config", str(config), "--out",
                               str(folder / "rate-out"), "--quiet", env=KEY)
        times, throttled = ticket_arrivals(url)
    phase = times[-1] - times[0]
    bound = 1.1 * (rows - 1) / rate
    first_second = sum(1 for at in times if at - times[0] < 1.0)
    print(f"1. rate {rate}/s, {rows} rows, server allowing {rate * 1.05:g}/s: exit"
          f" {done.returncode}, {throttled} answers 429 (target 0), {len(times)} requests;"
          f" busiest 1-second window {busiest_second(times)} (target <= {rate}), first second"
          f" {first_second}; sending phase {phase:.3f} s = {phase / ((rows - 1) / rate):.3f} x"
          f" ideal (target <= 1.1 x, {bound:.3f} s)")


def concurrency_follows_rate(folder: Path, rate: int = 50, rows: int = 300) -> None:
    source = folder / "latency.csv"
    write_campaign(source, rows)
    for concurrency in (4, 12):
        with sandbox_process("--latency", "0.2") as url:
            config = folder / f"latency-{concurrency}.toml"
            write_config(config, url, rate=rate, concurrency=concurrency)
            _, done = run_importer("run", str(source), "--config", str(config), "--out",
                                   str(folder / f"latency-out-{concurrency}"), "--quiet", env=KEY)
            times, _ = ticket_arrivals(url)
        achieved = (len(times) - 1) / (times[-1] - times[0])
        notes = [line for line in done.stderr.splitlines() if "max_concurrency" in line]
        print(f"2. rate {rate}/s, latency 0.2 s, max_concurrency {concurrency}: achieved"
              f" {achieved:.1f}/s = {achieved / rate:.2f} x rate; note: {notes or 'none'}")


def main() -> None:
    print(f"bench_rate on {machine()}")
    with tempfile.TemporaryDirectory() as folder:
        rate_precision(Path(folder))
        concurrency_follows_rate(Path(folder))


if __name__ == "__main__":
    main()
