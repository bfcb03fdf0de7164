"""Settle unknown outcomes against the account, on evidence, never by opening a ticket.

A request whose outcome is unknown (a 500, a timeout, a dropped connection after sending)
may or may not have opened its ticket. Opening a ticket finds or creates the contact, so the
account can tell (``../shared/API.md``, "Evidence"):

- no contact whose phone digits equal the row's: the request was not processed (``failed``,
  ``not_processed``); ``--resume`` sends it;
- a contact created at or after the request was sent, or whose last message is the one the
  row sent and is no older than the request: it was processed (``sent``, with that contact);
- anything else stays ``unknown``, and the error states the evidence.

The search is fuzzy, so digits are compared exactly before a contact is trusted.

"At or after" is in the account's clock, never this machine's: the skew between them is
bounded from the ``Date`` header of every answer (:class:`importer.timing.ClockSkew`),
recorded with each request when it was sent, and pinned again now by look-ups timed across
the account's second ticks. A request counts as sent at the latest moment its bounds allow;
evidence inside the bounds' uncertainty decides nothing, and a skew that changed since the
request was sent (a clock was set) or that cannot be measured leaves the row ``unknown``.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from .client import VambeClient
from .codes import ErrorCode, RequestState, RowStatus
from .config import Config, load_config
from .exceptions import FatalApiError, ImporterError, OutputFolderError
from .journal import NOT_REACHED, FolderLock, Journal, read_journal
from .ledger import (
    Ledger,
    Policy,
    Unknown,
    account_pacer,
    identity_of,
    ledger_location,
    target_name,
)
from .report import Summary, plural, summary_from_meta, write_reports
from .timing import Pacer, clock

_NO_DATE = ("the account's clock cannot be compared with this machine's (its answers carry no"
            " Date header)")
# Look-ups timed across the account's second ticks narrow the skew to this (seconds), in at
# most this many look-ups (each may wait up to a second for its moment).
PIN_WIDTH = 0.01
PIN_PROBES = 8
# How far two clocks may drift apart between sending and reconciling: 5 ms, plus 50 parts
# per million of the time between (a quartz clock without time sync drifts less).
DRIFT = 0.005
DRIFT_RATE = 50e-6


class Verdict(NamedTuple):
    """What the account says about one unknown request."""

    state: RequestState
    ai_contact_id: str
    error_code: ErrorCode | str
    error: str


def _moment(value: object) -> float | None:
    """An API timestamp (ISO 8601, ``Z`` or an offset) as seconds; None when unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        # (FURB162: fromisoformat alone refuses a date with a bare Z, "2024-01-01Z"; this reads it)
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))  # noqa: FURB162
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _day(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d")


def judge(phone: str, sent_at: float, message: str | None, contacts: list[dict],
          skew: tuple[float, float] | str | None = (0.0, 0.0)) -> Verdict:
    """The evidence rule, on the contacts the search returned (with their details).
    ``skew``: the account's clock minus ours when the request was sent, (lowest, highest);
    a string says why it is not known."""
    digits = re.sub(r"\D", "", phone)
    mine = [contact for contact in contacts
            if re.sub(r"\D", "", str(contact.get("phone") or "")) == digits]
    if not mine:
        return Verdict(RequestState.FAILED, "", ErrorCode.NOT_PROCESSED,
                       "no such contact in the account: the request was not processed;"
                       " --resume sends it")
    contact = mine[0]
    contact_id = str(contact.get("id") or contact.get("ai_customer_id") or "")
    if not isinstance(skew, tuple):
        return Verdict(RequestState.UNKNOWN, contact_id, ErrorCode.OUTCOME_UNKNOWN,
                       f"still unknown after reconcile: the contact exists, and {skew or _NO_DATE}")
    # When the request reached the account, in its clock: at the latest (so that evidence
    # after it is after the request whatever the skew was), and at the earliest. The account
    # writes times to the millisecond (truncated): a contact our request created within the
    # millisecond reads as a moment before it.
    latest = math.floor((sent_at + skew[1]) * 1000) / 1000
    earliest = math.floor((sent_at + skew[0]) * 1000) / 1000
    created = _moment(contact.get("created_at"))
    if created is not None and created >= latest:
        return Verdict(RequestState.SENT, contact_id, "", "")
    last_at = _moment(contact.get("last_message_at"))
    last = contact.get("last_message_content")
    ours = message is not None and isinstance(last, str) and last.strip() == message.strip()
    if ours and last_at is not None and last_at >= latest:
        return Verdict(RequestState.SENT, contact_id, "", "")
    if ((created is not None and created >= earliest)
            or (ours and last_at is not None and last_at >= earliest)):
        return Verdict(RequestState.UNKNOWN, contact_id, ErrorCode.OUTCOME_UNKNOWN,
                       f"still unknown after reconcile: the contact's time is within the"
                       f" uncertainty of the two clocks ({(skew[1] - skew[0]) * 1000:.0f} ms)"
                       " around the request: it cannot tell whether it came before or after")
    since = f"since {_day(created)}" if created is not None else "(since an unknown date)"
    if last_at is None:
        tail = "it has no last message we can see"
    elif message is None:
        tail = f"its last message, on {_day(last_at)}, cannot be ours (this row sent none)"
    else:
        tail = f"its last message, on {_day(last_at)}, is not ours"
    return Verdict(RequestState.UNKNOWN, contact_id, ErrorCode.OUTCOME_UNKNOWN,
                   f"still unknown after reconcile: contact exists {since}; {tail}")


def skew_at_sending(request: Unknown, now: tuple[float, float] | None,
                    moment: float) -> tuple[float, float] | str:
    """The skew to judge ``request`` by: as recorded when it was sent, narrowed by the skew
    measured now (allowing for drift since). A string says why there is none (no Date
    header; a request an earlier release recorded without one; a clock set since)."""
    sent = request.skew_low is not None and request.skew_high is not None
    if now is None:
        if request.skew_low is None or request.skew_high is None:  # not sent
            return _NO_DATE
        return request.skew_low, request.skew_high
    drift = DRIFT + DRIFT_RATE * max(0.0, moment - (request.sent_at or moment))
    low, high = now[0] - drift, now[1] + drift
    if not sent:  # the skew then is unknown: the skew now says nothing of a clock set since
        return ("it was recorded by an earlier release, without the clocks' skew at sending:"
                " compare by hand")
    assert request.skew_low is not None and request.skew_high is not None
    if low > request.skew_high or high < request.skew_low:
        return (f"a clock was set since the request was sent: the account's clock was"
                f" {_offset(request.skew_low, request.skew_high)} this machine's then, and is"
                f" {_offset(*now)} it now; compare by hand")
    return max(low, request.skew_low), min(high, request.skew_high)


def _offset(low: float, high: float) -> str:
    middle = (low + high) / 2
    return f"{abs(middle):.3f} s {'ahead of' if middle >= 0 else 'behind'}"


async def pin_skew(client: VambeClient, pacer: Pacer | None, config: Config) -> None:
    """Narrow the client's clock skew to :data:`PIN_WIDTH` by look-ups (the stage listing)
    each timed to reach the account as its clock turns a second, if the skew is the middle
    of what is known: whether its Date shows the new second halves the uncertainty."""
    skew, now = client.skew, clock()
    api = config.api
    half_trip = 0.0
    for _ in range(PIN_PROBES):
        bounds = skew.bounds()
        if bounds is not None and bounds[1] - bounds[0] <= PIN_WIDTH:
            return
        if pacer is not None:
            await pacer.wait()
        if bounds is not None:
            middle = (bounds[0] + bounds[1]) / 2
            at = now.time()
            # our time of the account's next second, less half a round trip (the look-up
            # reaches the account that much after it leaves)
            tick = math.floor(at + middle + half_trip) + 1 - middle - half_trip
            await now.sleep(tick - at)
        sent = now.time()
        await client.list_pipelines(retries=api.max_retries, backoff=api.retry_backoff_seconds)
        half_trip = (now.time() - sent) / 2


async def settle(client: VambeClient, ledger: Ledger, config: Config,
                 on_note: Callable[[str], None] | None = None,
                 on_verdict: Callable[[str, Verdict], None] | None = None
                 ) -> dict[str, Verdict]:
    """Decide every unknown request of the ledger's folder, paced at the configured rate;
    records each verdict in the ledger, after ``on_verdict`` (the journal) has: a reconcile
    stopped between the two finds the row unknown in the ledger and decides it again (the
    other order left it failed in the ledger and unknown in the journal for good). Returns
    key -> verdict."""
    api = config.api
    pacer = account_pacer(api.rate_limit_per_second, ledger, clock())
    verdicts: dict[str, Verdict] = {}
    unknown = ledger.unknown_requests()
    if unknown:
        try:
            await pin_skew(client, pacer, config)
        except ImporterError as error:  # FatalApiError stops here as for every look-up
            if isinstance(error, FatalApiError):
                raise
            # the skew stays as wide as it is: rows inside it stay unknown
    for request in unknown:
        key, phone, sent_at, message = (request.key, request.phone, request.sent_at,
                                        request.message)
        if pacer is not None:
            await pacer.wait()
        contacts = await client.search_contacts(phone, retries=api.max_retries,
                                                backoff=api.retry_backoff_seconds)
        mine = [c for c in contacts
                if re.sub(r"\D", "", str(c.get("phone") or "")) == phone.lstrip("+")]
        if mine and message is not None and "last_message_content" not in mine[0]:
            if pacer is not None:
                await pacer.wait()
            details = await client.contact_info(str(mine[0].get("id")),
                                                retries=api.max_retries,
                                                backoff=api.retry_backoff_seconds)
            contacts = [{**mine[0], **details}]
        verdict = judge(phone, sent_at or 0.0, message, contacts,
                        skew_at_sending(request, client.skew.bounds(), clock().time()))
        verdicts[key] = verdict
        if on_verdict is not None:
            on_verdict(key, verdict)
        if verdict.state != RequestState.UNKNOWN:
            ledger.settle_unknown(key, verdict.state, ai_contact_id=verdict.ai_contact_id,
                                  error_code=verdict.error_code, error=verdict.error)
    if on_note is not None and verdicts:
        decided = sum(v.state != RequestState.UNKNOWN for v in verdicts.values())
        on_note(f"Reconciled {plural(len(verdicts), 'unknown row')}: {decided} decided,"
                f" {len(verdicts) - decided} still unknown")
    return verdicts


_STATUS = {RequestState.SENT: RowStatus.SENT, RequestState.FAILED: RowStatus.FAILED,
           RequestState.UNKNOWN: RowStatus.UNKNOWN}


def reconcile_folder(out_dir: str | Path, config: Config | str | Path, *, api_key: str,
                     ledger_path: str | Path | None = None, account: str | None = None,
                     on_note: Callable[[str], None] | None = None) -> Summary:
    """Look up every ``unknown`` row of the run in ``out_dir`` in the account, record the
    verdicts in the ledger and the journal, and rewrite the reports. Opens no ticket."""
    config = config if isinstance(config, Config) else load_config(config)
    out = Path(out_dir)
    lock = FolderLock(out)
    try:
        record = read_journal(out)
        if record is None or not record.started:
            raise OutputFolderError(f"{out} holds no run to reconcile")
        path = ledger_location(config, ledger_path)
        identity = identity_of(config, account)
        ledger = Ledger.open(path, target=target_name(**record.identity), folder=out,
                             policy=Policy(config.dedupe.across_runs_days),
                             origin=record.origin, timeout=config.api.timeout_seconds)
        try:
            if (record.ledger_id != ledger.id
                    or target_name(**record.identity) != target_name(**identity)):
                raise OutputFolderError(
                    f"{out} holds a run sent to another account, or recorded in another"
                    " ledger, than this config's; use the config (and ledger) of that run")
            journal = Journal.reopen(out)
            try:
                asyncio.run(_settle(config, api_key, ledger, on_note,
                                    journal_amender(journal)))
                # The run's own facts for report.html (when it started, how it ended).
                summary = summary_from_meta(journal.meta("report"), out)
                summary.finished_at = None
                summary.describe(config, record.identity)
                summary.ledger_path = ledger.description
                write_reports(out, journal.table(), journal.results(NOT_REACHED), summary,
                              journal)
                return summary
            finally:
                journal.close()
        finally:
            ledger.close()
    finally:
        lock.release()


async def _settle(config: Config, api_key: str, ledger: Ledger,
                  on_note: Callable[[str], None] | None,
                  on_verdict: Callable[[str, Verdict], None]) -> dict[str, Verdict]:
    api = config.api
    async with VambeClient(api.base_url, api_key, phone_id=api.phone_id, channel=api.channel,
                           timeout=api.timeout_seconds, max_connections=1) as client:
        return await settle(client, ledger, config, on_note, on_verdict)


def journal_amender(journal: Journal) -> Callable[[str, Verdict], None]:
    """Write each verdict into the journal's row for its key (a row of this run)."""
    rows = journal.unknown_rows()

    def amend(key: str, verdict: Verdict) -> None:
        if key in rows:
            journal.amend(rows[key], _STATUS[verdict.state], verdict.ai_contact_id,
                          verdict.error_code, verdict.error)
    return amend
