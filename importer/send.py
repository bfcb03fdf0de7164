"""Send valid rows to the API: paced, bounded in flight, journaled, never blindly retried.

One producer walks the checked rows in file order and decides what each needs (already
sent in an earlier run, unknown, skipped because the run is stopping, or to send); a fixed
pool of workers sends. Every request waits for a rate-limit slot, is journaled
``in_flight``, sent, and journaled with its outcome. Only answers that prove the request
was not processed (429, 503, connection never made) are retried.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Iterable

from aiolimiter import AsyncLimiter

from .client import FATAL, REJECTED, RETRY, SENT, THROTTLED, Answer, VambeClient
from .config import ApiSettings
from .journal import Journal, PriorRequest, RowResult
from .validate import CheckedRow

MAX_BACKOFF_SECONDS = 60.0
SLOWDOWN_FACTOR = 0.8  # each burst of 429s takes the rate down by a fifth
MIN_RATE = 0.2


class Sender:
    """Sends one run's rows; :meth:`request_stop` lets requests in flight finish."""

    def __init__(self, client: VambeClient, journal: Journal, api: ApiSettings, *,
                 retry_unknown: bool = False, on_result: Callable[[RowResult], None] | None = None,
                 on_note: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.journal = journal
        self.api = api
        self.retry_unknown = retry_unknown
        self.stopped: str | None = None  # why the run stopped taking rows
        self.fatal: Answer | None = None
        self.rate = api.rate_limit_per_second
        self._on_result = on_result or (lambda result: None)
        self._on_note = on_note or (lambda text: print(text, file=sys.stderr))
        self._resume_at = 0.0
        self._last_slowdown = -1e9
        self._started = time.monotonic()
        self._requests = 0
        self._limiter: AsyncLimiter | None = None

    def request_stop(self, reason: str = "interrupted") -> None:
        if self.stopped is None:
            self.stopped = reason

    async def run(self, rows: Iterable[CheckedRow]) -> None:
        # A limiter of one slot per 1/R seconds never bursts; AsyncLimiter(R, 1) lets R
        # through at once at the start (FIELD-NOTES). Created here, inside the running loop.
        self._limiter = AsyncLimiter(1, 1 / self.rate) if self.rate else None
        self._started = time.monotonic()
        queue: asyncio.Queue = asyncio.Queue(maxsize=2 * self.api.max_concurrency)
        workers = [asyncio.create_task(self._worker(queue))
                   for _ in range(self.api.max_concurrency)]
        try:
            for index, row in enumerate(rows):
                item = self._route(row)
                if item is not None:
                    await queue.put(item)
                elif index % 256 == 0:
                    await asyncio.sleep(0)  # let workers run through long stretches of bad rows
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.journal.flush()

    def _route(self, row: CheckedRow) -> tuple[CheckedRow, int] | None:
        """Record what needs no request; return what must be sent, with its earlier attempts."""
        if row.request is None:
            self._record(RowResult(row.number, row.status, row.phone,
                                   error_code=row.error_code, error=row.error))
            return None
        prior = self.journal.prior(row.request.key)
        if prior is not None and prior.state == "sent":
            self._record(self._from_prior(row, prior, "sent", ""))
            return None
        if prior is not None and prior.state == "unknown" and not self.retry_unknown:
            self._record(self._from_prior(
                row, prior, "unknown",
                f"{prior.error} (earlier run; --retry-unknown sends it again)",
            ))
            return None
        if self.stopped is not None:
            self._record(self._skipped(row, prior.attempts if prior else 0))
            return None
        return row, prior.attempts if prior else 0

    @staticmethod
    def _from_prior(row: CheckedRow, prior: PriorRequest, status: str, error: str) -> RowResult:
        return RowResult(row.number, status, row.phone, prior.ai_contact_id, prior.http_status,
                         prior.attempts, prior.error_code if error else "", error)

    def _skipped(self, row: CheckedRow, attempts: int) -> RowResult:
        return RowResult(row.number, "skipped", row.phone, attempts=attempts,
                         error_code="not_attempted",
                         error=f"not sent: the run stopped ({self.stopped})")

    def _record(self, result: RowResult) -> None:
        self.journal.add_result(result)
        self._on_result(result)

    async def _worker(self, queue: asyncio.Queue) -> None:
        while (item := await queue.get()) is not None:
            row, attempts = item
            if self.stopped is not None:
                self._record(self._skipped(row, attempts))
            else:
                await self._send(row, attempts)

    async def _send(self, row: CheckedRow, attempts: int) -> None:
        request = row.request
        body = json.dumps(request.body, ensure_ascii=False).encode()
        throttled_since: float | None = None
        retries = 0
        while True:
            await self._slot()
            if self.stopped is not None:
                self._record(self._skipped(row, attempts))
                return
            self.journal.begin(request.key, row.number, request.phone)
            attempts += 1
            self._requests += 1
            try:
                answer = await self.client.open_ticket(body, request.key)
            except asyncio.CancelledError:
                self._finish(row, attempts, "unknown", Answer(
                    "unknown", error_code="outcome_unknown",
                    error="stopped at once while the request was in flight: the ticket may exist",
                ))
                raise
            if answer.outcome == SENT:
                return self._finish(row, attempts, "sent", answer)
            if answer.outcome in (REJECTED, FATAL):
                if answer.outcome == FATAL and self.fatal is None:
                    self.fatal = answer
                    self.request_stop(answer.error)
                return self._finish(row, attempts, "failed", answer)
            if answer.outcome == THROTTLED:
                now = time.monotonic()
                throttled_since = throttled_since or now
                if now - throttled_since >= self.api.max_throttle_seconds:
                    return self._finish(row, attempts, "failed", Answer(
                        "failed", answer.http_status, error_code="throttled",
                        error=f"throttled by the API (HTTP 429) for"
                              f" {self.api.max_throttle_seconds:g} s; not processed",
                    ))
                self._throttle(answer.retry_after)
            elif answer.outcome == RETRY:
                if retries >= self.api.max_retries:
                    return self._finish(row, attempts, "failed", Answer(
                        "failed", answer.http_status, error_code=answer.error_code,
                        error=f"{answer.error} (gave up after {retries + 1} attempts;"
                              " not processed, safe to resume)",
                    ))
                delay = _backoff(self.api.retry_backoff_seconds, retries)
                retries += 1
                self.journal.settle(request.key, "failed", answer.error_code, answer.error,
                                    answer.http_status)
                await asyncio.sleep(max(delay, answer.retry_after or 0.0))
                continue
            else:
                return self._finish(row, attempts, "unknown", answer)
            self.journal.settle(request.key, "failed", answer.error_code, answer.error,
                                answer.http_status)

    def _finish(self, row: CheckedRow, attempts: int, state: str, answer: Answer) -> None:
        result = RowResult(row.number, state, row.phone, answer.ai_contact_id,
                           answer.http_status, attempts, answer.error_code, answer.error)
        self.journal.finish(row.request.key, state, result)
        self._on_result(result)

    async def _slot(self) -> None:
        """Wait out a run-wide 429 pause, then take the next rate-limit slot."""
        while (delay := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        if self._limiter is not None:
            await self._limiter.acquire()

    def _throttle(self, retry_after: float | None) -> None:
        """A 429 pauses the whole run and slows it down; retries do not each hammer alone."""
        now = time.monotonic()
        pause = retry_after if retry_after is not None else 1.0
        self._resume_at = max(self._resume_at, now + pause)
        if now - self._last_slowdown > max(pause, 1.0):
            self._last_slowdown = now
            if not self.rate:  # unpaced: start pacing below the pace that was throttled
                self.rate = self._requests / max(now - self._started, 1.0)
            self.rate = max(MIN_RATE, self.rate * SLOWDOWN_FACTOR)
            self._limiter = AsyncLimiter(1, 1 / self.rate)
            self._on_note(f"API throttled the run (HTTP 429): pausing {pause:g} s, then"
                          f" sending at {self.rate:.3g}/s")


def _backoff(first: float, retries: int) -> float:
    """Exponential backoff with full jitter, so retrying workers do not come back together."""
    return random.uniform(0, min(MAX_BACKOFF_SECONDS, first * 2**retries))
