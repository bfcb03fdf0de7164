"""Send the planned requests: paced, bounded in flight, journaled, never blindly retried.

One producer reads the plan from the journal in plan order (never the input file) and claims
it in the ledger a batch at a time: the ledger's verdict on each key (sent before, unknown,
being sent by another run) is made there, once. It then applies the run's own limits
(``--limit``, the daily message limit, send windows) and queues the rest for a fixed pool of
workers. Every request waits for a rate-limit slot, is marked ``in_flight`` in the ledger,
sent, and recorded with its outcome. Only answers that prove the request was not processed
(429, 503, connection never made) are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import math
import sqlite3
from collections.abc import Callable, Iterable

from .client import Answer, VambeClient
from .codes import ErrorCode, Outcome, RequestState, RowStatus
from .config import ApiSettings
from .exceptions import FatalApiError, ImporterError
from .journal import Journal, Planned
from .ledger import Ledger
from .report import RowResult
from .schedule import SendWindow
from .timing import (
    ARRIVAL_JITTER,
    MAX_BACKOFF_SECONDS,
    SHARING_CHECK_SECONDS,
    Clock,
    Pacer,
    backoff,
    clock,
    format_time,
)
from .validate import OptOuts

DAY = 86400.0


class DailyMessages:
    """WhatsApp's messaging limit: at most ``limit`` messages in any 24 hours, counting every
    run to the same account in the ledger. Past it messages are silently not delivered, so
    rows beyond it are not sent at all. This counts down from the ledger's count at the
    start; :meth:`Ledger.begin` checks each message against every run's in the ledger."""

    def __init__(self, ledger: Ledger, limit: int | None, clock: Clock) -> None:
        self._clock = clock
        self.limit = limit
        self.left: int | None = None
        self._earlier: list[float] = []
        self._first_taken: float | None = None
        if limit is not None:
            self._earlier = ledger.message_times(clock.time() - DAY)
            self.left = max(0, limit - len(self._earlier))
        self.refused = 0

    def take(self) -> bool:
        """Count one more message if the limit allows it."""
        if self.left is None:
            return True
        if self.left == 0:
            self.refused += 1
            return False
        self.left -= 1
        self._first_taken = self._first_taken or self._clock.time()
        return True

    def exhausted(self) -> None:
        """The ledger says every run together has used the day's messages: take no more."""
        self.left = 0
        self.refused += 1

    def resume_from(self) -> float:
        """When the oldest message in the window leaves it, so one more may go."""
        oldest = self._earlier[0] if self._earlier else (
            self._first_taken or self._clock.time())
        return oldest + DAY

    def refusal(self) -> str:
        return (f"not sent: the daily message limit ({self.limit} in 24 hours) is reached;"
                f" --resume from {format_time(self.resume_from())}")


class _Stopping(Exception):
    """A wait ended because the run is stopping."""


SLOWDOWN_FACTOR = 0.8  # each burst of 429s takes the rate down by a fifth
MIN_RATE = 0.2


class Sender:
    """Sends one run's planned requests; :meth:`request_stop` lets requests in flight finish."""

    CLAIM_BATCH = 200  # keys judged and reserved in the ledger per transaction

    def __init__(self, client: VambeClient, journal: Journal, ledger: Ledger, api: ApiSettings,
                 *, limit: int | None = None, open_tickets: dict[str, str] | None = None,
                 window: SendWindow | None = None, wait_for_windows: bool = False,
                 start_at: float | None = None, opt_outs: OptOuts | None = None,
                 reached_keys: dict[str, RowStatus] | None = None,
                 reached_phones: set[str] | None = None,
                 on_result: Callable[[RowResult], None] | None = None,
                 on_note: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.journal = journal
        self.ledger = ledger
        self.api = api
        self.clock = clock()
        self.limit = limit  # a pilot: send at most this many rows in this run
        # With [dedupe] skip_open_tickets: stage ID -> name, to say where the ticket is.
        self.open_tickets = open_tickets
        # [schedule]: rows outside their window are skipped, or with --wait deferred (in a
        # heap by opening time, then row) and sent when it opens.
        self.window = window
        self.wait_for_windows = wait_for_windows
        self.start_at = start_at
        # The opt-out lists as they are now: a customer who opted out since the plan (a
        # resumed run) is never reached.
        self.opt_outs = opt_outs
        # A resumed run's own record of what it sent (or may have), by content key: trusted
        # whatever the ledger says. With --replan also by phone: a row whose request changed
        # since has a new key, so only its phone says its customer was reached.
        self.reached_keys = reached_keys or {}
        self.reached_phones = reached_phones or set()
        self._deferred: list[tuple[float, int, Planned]] = []
        self._routed = 0
        self.daily = DailyMessages(ledger, api.daily_message_limit, self.clock)
        self.stopped: str | None = None  # why the run stopped taking rows
        self.fatal: Answer | None = None
        self.local_error: str | None = None  # a failure here (a full disk...) stopped the run
        self.requests = 0  # requests that went out (tickets and look-ups)
        self._stopping: asyncio.Event | None = None  # set with stopped, ends every wait
        self.rate = api.rate_limit_per_second
        self._on_result = on_result or (lambda result: None)
        self._on_note = on_note or (lambda text: None)  # the library never prints
        self._resume_at = 0.0
        self._last_slowdown = -1e9
        self._started = 0.0  # set by run()
        self._latency = 0.0  # moving average of answered requests' round trips
        self._answered = 0
        self._said_concurrency = False
        self._said_paused = False
        self._pacer: Pacer | None = None
        self._sharing = False  # other runs use the account's budget now
        self._skew_epoch: dict[str, int] = {}  # key -> the clock skew's epoch at its send
        self._sharing_checked = -math.inf

    def _new_pacer(self) -> Pacer:
        """A pacer whose slots are the account's, reserved in the ledger: every run using
        it shares rate_limit_per_second (two terminals at R together send at R)."""
        # Longer than any pause a 429 may ask of this run: a slot further ahead is stale.
        horizon = self.api.max_throttle_seconds + 3600

        def reserve(interval: float, count: int, window: float) -> float:
            now = self.clock.monotonic()
            if now >= self._sharing_checked + SHARING_CHECK_SECONDS:
                self._sharing_checked = now
                self._sharing = self.ledger.other_live_runs() > 0
            if self._sharing:
                window += ARRIVAL_JITTER
            slot = self.ledger.reserve(interval, count, window, horizon)
            own_pause = self._resume_at > self.clock.monotonic()  # said by _throttle
            if slot - self.clock.time() > 5 and not own_pause and not self._said_paused:
                self._said_paused = True  # another run's 429 pauses the whole account
                self.note(f"The account is paused until {format_time(slot)} (another run"
                          " sharing this ledger was told to wait by the API); waiting")
            return slot

        return Pacer(self.rate, self.clock, self._pause, shared=reserve)

    def note(self, text: str) -> None:
        """Tell the operator something once, through the caller's ``on_note``."""
        self._on_note(text)

    def request_stop(self, reason: str = "interrupted") -> None:
        """Take no more rows; every wait (a pause, a backoff, a slot) ends now, and requests
        in flight end within timeout_seconds."""
        if self.stopped is None:
            self.stopped = reason
        if self._stopping is not None:
            self._stopping.set()

    def _fail_locally(self, error: BaseException) -> None:
        """A failure on this machine while sending stops the run as a fatal answer does."""
        if self.local_error is None:
            self.local_error = f"{type(error).__name__}: {error}" if not isinstance(
                error, ImporterError) else str(error)
            self.request_stop(f"a local error: {self.local_error}")

    async def _pause(self, seconds: float) -> None:
        """Wait, unless the run is stopping (then raise :class:`_Stopping` at once)."""
        stopping = self._stopping
        assert stopping is not None
        if stopping.is_set():
            raise _Stopping
        if seconds <= 0:
            return
        waiter = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        if stopping.is_set():
            raise _Stopping

    async def run(self, batches: Iterable[list[Planned]]) -> None:
        """Send the planned requests, batch by batch in plan order. Every error on this
        machine (a full disk, a ledger that moved) stops the run: never an exception."""
        self._stopping = asyncio.Event()
        if self.stopped is not None:
            self._stopping.set()
        self._pacer = self._new_pacer() if self.rate else None
        self._started = self.clock.monotonic()  # sending starts now, not when the sender was made
        queue: asyncio.Queue = asyncio.Queue(maxsize=2 * self.api.max_concurrency)
        await self._wait_for_start()
        workers = [asyncio.create_task(self._worker(queue))
                   for _ in range(self.api.max_concurrency)]
        try:
            try:
                await self._produce(batches, queue)
            except Exception as error:  # noqa: BLE001 - a full disk, a ledger that moved: the run's local error
                self._fail_locally(error)
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            for flush in (self.ledger.finish, self.journal.flush):
                try:
                    flush()
                except Exception as error:  # noqa: BLE001 - the disk may still refuse: the run's local error
                    self._fail_locally(error)

    async def _produce(self, batches: Iterable[list[Planned]], queue: asyncio.Queue) -> None:
        """Claim each batch in the ledger (its verdict on every key, once), record what needs
        no request, and queue the rest for the workers."""
        for planned_batch in batches:
            if self.stopped is not None:
                return  # the rows not reached are reported skipped, from the plan
            batch = [planned for planned in planned_batch if not self._opted_out(planned)]
            if self.limit is not None and self._routed >= self.limit and not self._deferred:
                self._beyond_limit(batch)  # nothing more will be sent: no claim to write
                await asyncio.sleep(0)
                continue
            verdicts = await self.ledger.claim([(p.key, p.row, p.phone) for p in batch])
            for planned, held in zip(batch, verdicts, strict=True):
                if (held is not None and held.status == RowStatus.UNKNOWN
                        and self.reached_keys.get(planned.key) == RowStatus.SENT):
                    # The journal saw the API's answer, which the ledger could not record
                    # (its database was down): the ledger learns it, the row stays sent.
                    self.ledger.settle_unknown(planned.key, RequestState.SENT)
                    self._record(self._reached_before(planned) or held.result(
                        planned.row, planned.phone))
                elif held is not None:
                    self._record(held.result(planned.row, planned.phone))
                elif (earlier := self._reached_before(planned)) is not None:
                    self._not_sent(planned, earlier)
                elif self._route(planned):
                    await queue.put(planned)
                if self._deferred:
                    await self._release_due(queue)
            await asyncio.sleep(0)  # let workers run through stretches of held rows
        await self._wait_for_windows(queue)

    def _beyond_limit(self, batch: list[Planned]) -> None:
        """Rows past ``--limit``: what the ledger holds for them (read only), else
        ``over_limit``."""
        held = self.ledger.held_many([planned.key for planned in batch])
        for planned in batch:
            holding = held.get(planned.key)
            self._record(holding.result(planned.row, planned.phone) if holding is not None
                         else self._over_limit(planned))

    def _over_limit(self, planned: Planned) -> RowResult:
        return RowResult(planned.row, RowStatus.SKIPPED, planned.phone,
                         error_code=ErrorCode.OVER_LIMIT,
                         error=f"not sent: beyond --limit {self.limit}; --resume sends it")

    def _reached_before(self, planned: Planned) -> RowResult | None:
        """The row's result when this folder's run reached its customer before (its own
        record), though the ledger would let it be sent."""
        status = self.reached_keys.get(planned.key)
        if status == RowStatus.SENT:
            return RowResult(planned.row, RowStatus.SENT, planned.phone, attempts=1,
                             error="sent by an earlier run into this folder")
        if status == RowStatus.UNKNOWN and not self.ledger.policy.retry_unknown:
            return RowResult(planned.row, RowStatus.UNKNOWN, planned.phone,
                             error_code=ErrorCode.OUTCOME_UNKNOWN,
                             error="an earlier run into this folder may have sent it"
                                   " (--retry-unknown sends it again)")
        if status is None and planned.phone in self.reached_phones:
            return RowResult(planned.row, RowStatus.DUPLICATE, planned.phone,
                             error_code=ErrorCode.SENT_BEFORE,
                             error="this run reached this customer before its plan changed"
                                   " (--replan); not sent again")
        return None

    def _opted_out(self, planned: Planned) -> bool:
        source = self.opt_outs.source_of(planned.phone) if self.opt_outs else None
        if source is None:
            return False
        self._record(RowResult(planned.row, RowStatus.EXCLUDED, planned.phone,
                               error_code=ErrorCode.OPTED_OUT,
                               error=f"phone is in {source} (opt-outs): never contacted"))
        return True

    def _route(self, planned: Planned) -> bool:
        """For a claimed row: True to send it now; else it is recorded (and given back)."""
        if self.stopped is not None:
            self._not_sent(planned, self._skipped(planned))
            return False
        if self.window is not None:
            opens = self.window.opens_at(planned.phone, self.clock.time())
            if opens is not None:
                if self.wait_for_windows and opens != math.inf:
                    heapq.heappush(self._deferred, (opens, planned.row, planned))
                else:
                    self._not_sent(planned, self._outside_window(planned, opens))
                return False
        return self._admit(planned)

    def _admit(self, planned: Planned) -> bool:
        """The run's own limits (--limit, then daily messages); True for a row to send now.
        (--limit first: a row it holds back must not use up the day's messages.)"""
        if self.limit is not None and self._routed >= self.limit:
            self._not_sent(planned, self._over_limit(planned))
            return False
        if planned.has_message and not self.daily.take():
            self._not_sent(planned, RowResult(planned.row, RowStatus.SKIPPED, planned.phone,
                                              error_code=ErrorCode.DAILY_LIMIT,
                                              error=self.daily.refusal()))
            return False
        self._routed += 1
        return True

    async def _wait_for_start(self) -> None:
        """``--start-at``: no request before then (Ctrl-C still ends the wait at once)."""
        wait = (self.start_at or 0) - self.clock.time()
        if wait > 0 and self.start_at is not None:
            self.note(f"Waiting until {format_time(self.start_at)} to start (--start-at)")
            with contextlib.suppress(_Stopping):
                await self._pause(wait)

    async def _release_due(self, queue: asyncio.Queue) -> None:
        """Queue the deferred rows whose window has opened, in file order within it."""
        now = self.clock.time()
        assert self.window is not None
        while self._deferred and self._deferred[0][0] <= now:
            _, _, planned = heapq.heappop(self._deferred)
            if self.stopped is not None:
                self._not_sent(planned, self._skipped(planned))
                continue
            opens = self.window.opens_at(planned.phone, now)
            if opens is not None:  # another of its zones is still closed
                heapq.heappush(self._deferred, (opens, planned.row, planned))
            elif self._admit(planned):
                await queue.put(planned)

    async def _wait_for_windows(self, queue: asyncio.Queue) -> None:
        """``--wait``: after the file, wait for each deferred row's window to open."""
        told = None
        while self._deferred and self.stopped is None:
            assert self.window is not None
            opens, _, planned = self._deferred[0]
            if opens != told:
                told = opens
                self.note(f"Waiting for send windows: {len(self._deferred)} rows; the next"
                          f" opens {self.window.describe_opening(planned.phone, opens)}")
            try:
                await self._pause(opens - self.clock.time())
            except _Stopping:
                break
            await self._release_due(queue)
        while self._deferred:  # the run stopped while they waited: still outside their window
            opens, _, planned = heapq.heappop(self._deferred)
            self._not_sent(planned, self._outside_window(planned, opens))

    def _outside_window(self, planned: Planned, opens: float) -> RowResult:
        """A row whose send window is closed now: when it opens, or that it never does."""
        assert self.window is not None
        return RowResult(
            planned.row, RowStatus.SKIPPED, planned.phone, error_code=ErrorCode.OUTSIDE_WINDOW,
            error=self.window.never_opens(planned.phone) if opens == math.inf
            else f"not sent: outside the send window ([schedule]); it opens"
                 f" {self.window.describe_opening(planned.phone, opens)}; --resume (or"
                 " --wait) sends it then")

    def _skipped(self, planned: Planned, attempts: int = 0) -> RowResult:
        return RowResult(planned.row, RowStatus.SKIPPED, planned.phone, attempts=attempts,
                         error_code=ErrorCode.NOT_ATTEMPTED,
                         error=f"not sent: the run stopped ({self.stopped})")

    def _not_sent(self, planned: Planned, result: RowResult) -> None:
        """Record a claimed row this run does not send, and give its key back."""
        self.ledger.release(planned.key)
        self._record(result)

    def _record(self, result: RowResult) -> None:
        self.journal.add_result(result)
        self._on_result(result)

    async def _worker(self, queue: asyncio.Queue) -> None:
        """Send rows until told to end. A worker never dies of an error: a failure here
        stops the whole run (no new rows), so the producer never waits on a dead pool."""
        while (planned := await queue.get()) is not None:
            try:
                if self.stopped is not None:
                    self._not_sent(planned, self._skipped(planned))
                else:
                    await self._send(planned)
            except Exception as error:  # noqa: BLE001 - a full disk, a bug: the run's local error, never a hang
                self._fail_locally(error)
                # The disk may still refuse: the failure is already the run's local error.
                with contextlib.suppress(ImporterError, OSError, sqlite3.Error):
                    self._record(self._skipped(planned))

    async def _send(self, planned: Planned) -> None:
        if self.open_tickets is not None and await self._has_open_ticket(planned):
            return
        body = planned.body.encode()
        message = planned.message if planned.has_message else None
        throttled_since: float | None = None
        retries = 0
        attempts = 0
        while True:
            if await self._stopped_waiting(planned, attempts):
                return
            skew = self.client.skew
            self._skew_epoch[planned.key] = skew.epoch
            attempts = await self.ledger.begin(planned.key, planned.has_message, message,
                                               skew.bounds(), self.daily.limit)
            if attempts == 0:  # other runs used up the day's messages meanwhile
                self.daily.exhausted()
                self._not_sent(planned, RowResult(planned.row, RowStatus.SKIPPED, planned.phone,
                                                  error_code=ErrorCode.DAILY_LIMIT,
                                                  error=self.daily.refusal()))
                return
            self.requests += 1
            sent_at = self.clock.monotonic()
            started = self.clock.time()
            try:
                answer = await self.client.open_ticket(body, planned.key, planned.path)
                self._observe(self.clock.monotonic() - sent_at)
                self.journal.add_request(started, self.clock.time(), planned.row, attempts,
                                         answer.http_status)
            except asyncio.CancelledError:
                self.journal.add_request(started, self.clock.time(), planned.row, attempts, None)
                self._finish(planned, attempts, RowStatus.UNKNOWN, answer=None,
                             error_code=ErrorCode.OUTCOME_UNKNOWN,
                             error="stopped at once while the request was in flight:"
                                   " the ticket may exist")
                raise
            except Exception as error:  # noqa: BLE001 - the run's local error; the row unknown
                self._fail_locally(error)
                with contextlib.suppress(ImporterError):  # the journal may be what failed
                    self.journal.add_request(started, self.clock.time(), planned.row,
                                             attempts, None)
                self._finish(planned, attempts, RowStatus.UNKNOWN, answer=None,
                             error_code=ErrorCode.OUTCOME_UNKNOWN,
                             error=f"a local error while the request was in flight"
                                   f" ({type(error).__name__}): the ticket may exist")
                return
            if answer.outcome == Outcome.SENT:
                return self._finish(planned, attempts, RowStatus.SENT, answer)
            if answer.outcome in (Outcome.REJECTED, Outcome.FATAL):
                if answer.outcome == Outcome.FATAL and self.fatal is None:
                    self.fatal = answer
                    self.request_stop(answer.error)
                return self._finish(planned, attempts, RowStatus.FAILED, answer)
            if answer.outcome == Outcome.THROTTLED:
                now = self.clock.monotonic()
                throttled_since = throttled_since or now
                if now - throttled_since >= self.api.max_throttle_seconds or self.stopped:
                    if self.stopped:
                        return self._not_sent(planned, self._skipped(planned, attempts))
                    return self._finish(
                        planned, attempts, RowStatus.FAILED, answer,
                        error=f"throttled by the API (HTTP 429) for"
                              f" {self.api.max_throttle_seconds:g} s; not processed")
                self._throttle(answer.retry_after)  # the whole run waits, in _slot()
                delay = 0.0
            elif answer.outcome == Outcome.RETRY:
                if retries >= self.api.max_retries:
                    return self._finish(
                        planned, attempts, RowStatus.FAILED, answer,
                        error=f"{answer.error} (gave up after {retries + 1} attempts;"
                              " not processed, safe to resume)")
                # A 503's Retry-After is honoured up to the backoff cap, never beyond.
                delay = min(max(backoff(self.api.retry_backoff_seconds, retries),
                                answer.retry_after or 0.0), MAX_BACKOFF_SECONDS)
                retries += 1
            else:
                return self._finish(planned, attempts, RowStatus.UNKNOWN, answer)
            # Not processed, so safe to send again: the key goes back to reserved (a crash
            # while waiting leaves it free for a later run, not in flight).
            self.ledger.record(planned.key, RequestState.CLAIMED,
                               http_status=answer.http_status, error_code=answer.error_code,
                               error=answer.error)
            try:
                await self._pause(delay)
            except _Stopping:
                return self._not_sent(planned, self._skipped(planned, attempts))

    async def _stopped_waiting(self, planned: Planned, attempts: int = 0) -> bool:
        """Wait for the next request slot; True, with the row recorded ``skipped``, when the
        run stopped instead."""
        try:
            await self._slot()
        except _Stopping:
            pass
        if self.stopped is None:
            return False
        self._not_sent(planned, self._skipped(planned, attempts))
        return True

    async def _has_open_ticket(self, planned: Planned) -> bool:
        """Look the phone up (one paced request); True, with the row recorded ``skipped``,
        when the contact already has an active ticket, or when the look-up failed."""
        if await self._stopped_waiting(planned):
            return True
        assert self.open_tickets is not None
        digits = planned.phone.lstrip("+")
        self.requests += 1
        try:
            contacts = await self.client.search_contacts(
                planned.phone, retries=self.api.max_retries,
                backoff=self.api.retry_backoff_seconds)
        except FatalApiError as error:
            if self.fatal is None:
                self.fatal = Answer(Outcome.FATAL, error=str(error))
                self.request_stop(str(error))
            self._not_sent(planned, self._skipped(planned))
            return True
        except ImporterError as error:
            self._not_sent(planned, RowResult(planned.row, RowStatus.SKIPPED, planned.phone,
                                     error_code=ErrorCode.OPEN_TICKET,
                                     error=f"not sent: could not check for an open ticket"
                                           f" ({error}); --resume tries again"))
            return True
        for contact in contacts:
            ticket = contact.get("active_ticket_v2") or contact.get("active_ticket")
            if "".join(filter(str.isdigit, str(contact.get("phone") or ""))) == digits and ticket:
                stage = ticket.get("current_stage_id") if isinstance(ticket, dict) else None
                where = f", in stage {self.open_tickets.get(stage, stage)}" if stage else ""
                self._not_sent(planned, RowResult(planned.row, RowStatus.SKIPPED, planned.phone,
                                         error_code=ErrorCode.OPEN_TICKET,
                                         error=f"already has an open ticket{where}"))
                return True
        return False

    def _skew_since(self, key: str) -> tuple[float, float] | None:
        """The clock skew as now known, if no clock was set since ``key``'s request went
        out (every answer since narrowed it); else None, keeping what was known then."""
        skew = self.client.skew
        return skew.bounds() if self._skew_epoch.pop(key, None) == skew.epoch else None

    def _finish(self, planned: Planned, attempts: int, status: RowStatus,
                answer: Answer | None, *, error_code: ErrorCode | None = None,
                error: str | None = None) -> None:
        """Record a request's final status; ``error_code``/``error`` override the answer's."""
        result = RowResult(
            planned.row, status, planned.phone,
            answer.ai_contact_id if answer else "", answer.http_status if answer else None,
            attempts, error_code or (answer.error_code if answer else ""),
            error if error is not None else (answer.error if answer else ""))
        self.ledger.record(planned.key, RequestState(status),
                           http_status=result.http_status, ai_contact_id=result.ai_contact_id,
                           error_code=result.error_code, error=result.error,
                           skew=self._skew_since(planned.key))
        self._record(result)

    def _observe(self, latency: float) -> None:
        """Say once when max_concurrency, not the rate limit, sets the pace: in flight = rate x
        latency."""
        self._answered += 1
        self._latency += (latency - self._latency) / min(self._answered, 50)
        concurrency = self.api.max_concurrency
        if (self._said_concurrency or not self.rate or self._latency <= 0
                or self._answered < max(20, 2 * concurrency)):
            return  # (a coarse clock can measure a fast answer as taking no time at all)
        reachable = concurrency / self._latency
        if reachable < 0.95 * self.rate:
            self._said_concurrency = True
            needed = math.ceil(self.rate * self._latency * 1.2)
            self.note(
                f"max_concurrency = {concurrency} cannot reach {self.rate:g} requests/s at the"
                f" observed latency of {self._latency:.2f} s (about {reachable:.3g}/s);"
                f" set max_concurrency to {needed} or more to reach it"
            )

    async def _slot(self) -> None:
        """Wait out a run-wide 429 pause, then take the next rate-limit slot."""
        while True:
            while (delay := self._resume_at - self.clock.monotonic()) > 0:
                await self._pause(delay)
            if self._pacer is not None:
                await self._pacer.wait()
            if self.clock.monotonic() >= self._resume_at:
                return

    def _throttle(self, retry_after: float | None) -> None:
        """A 429 pauses the whole run and slows it down; retries do not each hammer alone."""
        now = self.clock.monotonic()
        # Retry-After within reason: at least a second (0, negative or past would make the
        # retries hammer), and never longer than a row may be throttled in all.
        pause = min(max(retry_after if retry_after is not None else 1.0, 1.0),
                    self.api.max_throttle_seconds)
        if now + pause > self._resume_at:
            wall = self.clock.time()
            self.journal.add_pause(wall + max(0.0, self._resume_at - now), wall + pause)
        self._resume_at = max(self._resume_at, now + pause)
        if now - self._last_slowdown > max(pause, 1.0):
            self._last_slowdown = now
            if not self.rate:  # unpaced: start pacing below the pace that was throttled
                self.rate = self.requests / max(now - self._started, 1.0)
            self.rate = max(MIN_RATE, self.rate * SLOWDOWN_FACTOR)
            if self._pacer is None:
                self._pacer = self._new_pacer()
            self._pacer.set_rate(self.rate)
            self.note(f"API throttled the run (HTTP 429): pausing {pause:g} s, then"
                          f" sending at {self.rate:.3g}/s")
        if self._pacer is not None:
            self._pacer.hold_until(self._resume_at)
        # Every run on the account waits too: they share its rate limit.
        self.ledger.hold_budget(self.clock.time() + (self._resume_at - now))


