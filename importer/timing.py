"""Time, waiting and backoff: the one seam through which the importer waits.

Every pause (the pacer's slots, a 429 pause, a retry's backoff, a daily-limit window) asks
:func:`clock` for the time and sleeps through it. Tests swap in a :class:`FakeClock` with
:func:`use_clock`, as ``stamina.set_testing`` does for retries, so backoffs and windows cost
no real time and a test never depends on how busy the machine is.
"""

from __future__ import annotations

import asyncio
import email.utils
import heapq
import itertools
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

# The longest wait between two tries of a request that never reached the API (503, refused
# connection): long enough to ride out a deploy or a restart, short enough that a run that
# cannot get through says so within minutes, not hours.
MAX_BACKOFF_SECONDS = 60.0


class Clock:
    """Real time: ``time.monotonic`` for intervals, ``time.time`` for what reports show."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock(Clock):
    """Virtual time for tests: sleepers are woken one at a time, earliest deadline first, and
    the clock jumps to each deadline, so pauses cost no real time and concurrent waits keep
    their order. ``stall(s)`` makes the next sleep wake ``s`` seconds late, as a busy
    machine does."""

    # Turns of the event loop between two wake-ups, so that a woken task can run and ask for
    # its next sleep before a later sleeper is woken.
    _SETTLE_TURNS = 3

    def __init__(self, start: float = 1000.0, wall: float = 1_800_000_000.0) -> None:
        self.now = start
        self._wall_offset = wall - start
        self._stalls: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()
        self._waking = False

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + self._wall_offset

    def stall(self, seconds: float) -> None:
        self._stalls.append(seconds)

    async def sleep(self, seconds: float) -> None:
        late = self._stalls.pop(0) if self._stalls else 0.0
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds) + late,
                                        next(self._order), woken))
        if not self._waking:
            self._waking = True
            self._wake_later(loop, self._SETTLE_TURNS)
        await woken

    def _wake_later(self, loop: asyncio.AbstractEventLoop, turns: int) -> None:
        if turns:
            loop.call_soon(self._wake_later, loop, turns - 1)
            return
        while self._sleepers:
            deadline, _, woken = heapq.heappop(self._sleepers)
            if not woken.done():  # a cancelled sleeper is skipped
                self.now = max(self.now, deadline)
                woken.set_result(None)
                break
        if self._sleepers:
            self._wake_later(loop, self._SETTLE_TURNS)
        else:
            self._waking = False


_clock: Clock = Clock()


def clock() -> Clock:
    """The clock every wait goes through."""
    return _clock


class ShiftedClock(Clock):
    """Real time, this many seconds off (tests: a machine whose clock is an hour behind)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def time(self) -> float:
        return time.time() + self.offset


class ClockSkew:
    """How far the account's clock is from this machine's (account minus ours), bounded by
    the ``Date`` header of every answer: one sent at ``sent`` and answered at ``received``
    (our clock) carrying ``date`` (whole seconds, truncated) says the skew lies within
    ``[date - received, date + 1 - sent]``; answers are intersected. Answers that cannot
    all be true (a clock was set while the run went on) start a new :attr:`epoch`.
    """

    def __init__(self) -> None:
        self.low = -math.inf
        self.high = math.inf
        self.epoch = 0
        self.samples = 0

    def observe(self, sent: float, received: float, date_header: str | None) -> None:
        """Take one answer's ``Date`` header into the bounds (an unreadable one is ignored)."""
        if not date_header:
            return
        try:
            when = email.utils.parsedate_to_datetime(date_header)
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        if when.tzinfo is None:  # "-0000" or the asctime form: HTTP dates are always UTC
            when = when.replace(tzinfo=UTC)
        date = when.timestamp()
        low, high = date - received, date + 1 - sent
        if low > self.high or high < self.low:  # a clock was set: what we knew is stale
            self.low, self.high = low, high
            self.epoch += 1
        else:
            self.low, self.high = max(self.low, low), min(self.high, high)
        self.samples += 1

    def bounds(self) -> tuple[float, float] | None:
        """(lowest, highest) skew in seconds, or None before any answer had a Date."""
        return None if self.samples == 0 else (self.low, self.high)


@contextmanager
def use_clock(replacement: Clock) -> Iterator[Clock]:
    """Wait through ``replacement`` inside the block (tests), then through real time again."""
    global _clock  # noqa: PLW0603 - the module's one seam for time, swapped on purpose
    previous, _clock = _clock, replacement
    try:
        yield replacement
    finally:
        _clock = previous


def backoff_ceiling(first: float, retries: int) -> float:
    """The longest wait before retry number ``retries + 1``: doubling, capped."""
    return min(MAX_BACKOFF_SECONDS, first * 2.0 ** min(retries, 64))


def backoff(first: float, retries: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter, so workers retrying together do not come back
    together (the AWS architecture blog's "full jitter")."""
    return (rng or random).uniform(0, backoff_ceiling(first, retries))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: a number of seconds or an HTTP date (RFC 9110).
    None when absent or unreadable; never negative, never infinite or NaN."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (clock().time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


WINDOW_MARGIN = 1.02
# How much later than its slot a request may reach the API (a new connection, a busy core):
# while other runs share the account, its window is that much wider, since the shared budget
# is kept on slots, not on the sends themselves (a run alone checks its own sends). 0.03 s:
# four runs at R = 40 saw no 429 and R in the busiest second; 0 let one through in the first
# second (bench/bench_team.py).
ARRIVAL_JITTER = 0.03
SHARING_CHECK_SECONDS = 5.0  # how often a run asks whether other runs share the account


class Pacer:
    """Evenly spaced request slots: at most N requests in any N/R seconds (N = floor(R),
    so at most R in any second for a whole R), never a burst, not even at the start.
    The window has a 2% margin, so the server sees the same.

    Each caller reserves the next slot (1/R after the last one) and sleeps until it, so
    the average rate is R, not less; a sliding window over the last N sends then holds a
    request back if a late wake-up would crowd it against earlier ones. aiolimiter's
    ``AsyncLimiter(1, 1/R)`` also never bursts, but sleeps a whole interval after a
    failed try and ran 8% under the rate here (bench/bench_rate.py).
    """

    def __init__(self, rate: float, clock: Clock,
                 sleep: Callable[[float], Awaitable[None]] | None = None,
                 shared: Callable[[float, int, float], float] | None = None) -> None:
        self._clock = clock
        self._sleep = sleep or clock.sleep
        # The account's budget, shared by every run using the same ledger: called with the
        # interval, the window's count and its length, it reserves the account's next slot
        # and returns it (wall-clock time).
        self._shared = shared
        self._next = 0.0
        self._recent: deque[float] = deque()
        self.set_rate(rate)

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self._interval = 1 / rate
        self._count = max(1, math.floor(rate))
        # 2% wider than N/R: what leaves here at 1.00 s apart can reach the server closer
        # together (journal commit, HTTP stack, the server's own scheduling).
        self._window = self._count / rate * WINDOW_MARGIN
        while len(self._recent) > self._count:
            self._recent.popleft()

    async def wait(self) -> None:
        clock = self._clock
        now = clock.monotonic()
        if self._shared is not None:
            slot = max(now + self._shared(self._interval, self._count, self._window)
                       - clock.time(), self._next)
        else:
            slot = max(self._next, now)  # an idle pacer gives no credit: no burst after a pause
        self._next = slot + self._interval
        if slot > now:
            await self._sleep(slot - now)
        recent = self._recent
        while len(recent) == self._count and (
            gap := recent[0] + self._window - clock.monotonic()
        ) > 0:
            await self._sleep(gap)
        recent.append(clock.monotonic())
        if len(recent) > self._count:
            recent.popleft()

    def hold_until(self, moment: float) -> None:
        """No slot before ``moment`` (a run-wide 429 pause)."""
        self._next = max(self._next, moment)


def format_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration_text(seconds: float) -> str:
    """``1 h 5 min``, ``3 min 4 s``, ``7 s``: a duration as the plan and the pages say it."""
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
