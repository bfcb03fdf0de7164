"""Pacing, backoff and Retry-After, in virtual time (no real waiting). (Answer
classification is in test_client.py.)"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import random

import pytest

from importer.timing import (
    MAX_BACKOFF_SECONDS,
    FakeClock,
    Pacer,
    backoff,
    backoff_ceiling,
    parse_retry_after,
)


def _send_times(rate: float, callers: int, clock: FakeClock) -> list[float]:
    """When each of ``callers`` concurrent requests got its slot from one pacer."""
    times: list[float] = []

    async def main() -> None:
        pacer = Pacer(rate, clock)

        async def one() -> None:
            await pacer.wait()
            times.append(clock.monotonic())

        await asyncio.gather(*(one() for _ in range(callers)))

    asyncio.run(main())
    return sorted(times)


def _most_in_any_second(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


def test_pacer_spaces_requests_evenly_from_the_first_one():
    """At 4/s, twelve callers get slots a quarter of a second apart: no burst at the start."""
    clock = FakeClock(start=0.0)
    times = _send_times(4, 12, clock)
    assert times[:4] == [0.0, 0.25, 0.5, 0.75]
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.25 - 1e-9
    assert times[-1] <= 11 * 0.25 * 1.03  # the window's 2% margin, no more
    assert _most_in_any_second(times) <= 4


def test_pacer_window_holds_back_requests_after_a_late_wake_up():
    """A stalled event loop wakes several waiting requests at once; the sliding window still
    lets at most R through in any second (the slots alone would send them together)."""
    clock = FakeClock(start=0.0)
    clock.stall(1.5)  # the first sleeper wakes 1.5 s late, as on a busy machine
    times = _send_times(2, 6, clock)
    assert _most_in_any_second(times) <= 2
    assert len(times) == 6


def test_backoff_doubles_and_is_capped():
    """Full jitter under a ceiling that doubles per retry and never passes 60 s."""
    assert [backoff_ceiling(1.0, n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_ceiling(1.0, 10_000) == MAX_BACKOFF_SECONDS
    rng = random.Random(7)
    draws = [backoff(1.0, 30, rng) for _ in range(500)]
    assert max(draws) <= MAX_BACKOFF_SECONDS
    assert max(draws) > MAX_BACKOFF_SECONDS / 2  # jitter spans the range, not a constant


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0),
    (" 3 ", 3.0),
    ("1.5", 1.5),
    ("-5", 0.0),
    ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
    ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # in the past: no wait
    ("nan", None),
    ("soon", None),
    ("", None),
    (None, None),
])
def test_retry_after_as_seconds_or_http_date(value, seconds):
    """Retry-After is seconds or an HTTP date; the past, junk and NaN never mean a wait."""
    now = email.utils.parsedate_to_datetime("Wed, 21 Oct 2026 07:28:00 GMT").timestamp()
    assert parse_retry_after(value, now=now) == seconds


def test_an_idle_pacer_banks_no_credit_for_a_burst_later():
    """Issue 22 mutant (``slot = self._next`` without ``now``): after a long idle spell the
    next requests must still come 1/R apart, not all at once on the credit of the pause."""
    clock = FakeClock(start=0.0)
    times: list[float] = []

    async def main() -> None:
        pacer = Pacer(10, clock)
        await pacer.wait()
        await clock.sleep(100.0)  # nothing to send for 100 s
        for _ in range(5):
            await pacer.wait()
            times.append(clock.monotonic())

    asyncio.run(main())
    assert times[0] == 100.0
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.1 - 1e-9
