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
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from .client import VambeClient
from .codes import ErrorCode, RequestState, RowStatus
from .config import Config, load_config
from .exceptions import OutputFolderError
from .journal import NOT_REACHED, FolderLock, Journal, read_journal
from .ledger import Ledger, Policy, identity_of, ledger_location, target_name
from .report import Summary, write_reports
from .send import account_pacer
from .timing import clock


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
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


def _day(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d")


def judge(phone: str, sent_at: float, message: str | None, contacts: list[dict]) -> Verdict:
    """The evidence rule, on the contacts the search returned (with their details)."""
    digits = re.sub(r"\D", "", phone)
    mine = [contact for contact in contacts
            if re.sub(r"\D", "", str(contact.get("phone") or "")) == digits]
    if not mine:
        return Verdict(RequestState.FAILED, "", ErrorCode.NOT_PROCESSED,
                       "no such contact in the account: the request was not processed;"
                       " --resume sends it")
    contact = mine[0]
    # The account writes times to the millisecond (truncated): a contact our request created
    # within the millisecond of the claim reads as a moment before it.
    sent_at = math.floor(sent_at * 1000) / 1000
    contact_id = str(contact.get("id") or contact.get("ai_customer_id") or "")
    created = _moment(contact.get("created_at"))
    if created is not None and created >= sent_at:
        return Verdict(RequestState.SENT, contact_id, "", "")
    last_at = _moment(contact.get("last_message_at"))
    last = contact.get("last_message_content")
    if (message is not None and last_at is not None and last_at >= sent_at
            and isinstance(last, str) and last.strip() == message.strip()):
        return Verdict(RequestState.SENT, contact_id, "", "")
    since = f"since {_day(created)}" if created is not None else "(since an unknown date)"
    if last_at is None:
        tail = "it has no last message we can see"
    elif message is None:
        tail = f"its last message, on {_day(last_at)}, cannot be ours (this row sent none)"
    else:
        tail = f"its last message, on {_day(last_at)}, is not ours"
    return Verdict(RequestState.UNKNOWN, contact_id, ErrorCode.OUTCOME_UNKNOWN,
                   f"still unknown after reconcile: contact exists {since}; {tail}")


async def settle(client: VambeClient, ledger: Ledger, config: Config,
                 on_note: Callable[[str], None] | None = None) -> dict[str, Verdict]:
    """Decide every unknown request of the ledger's folder, paced at the configured rate;
    records each verdict in the ledger. Returns key -> verdict."""
    api = config.api
    pacer = account_pacer(api.rate_limit_per_second, ledger, clock())
    verdicts: dict[str, Verdict] = {}
    for key, phone, sent_at, message in ledger.unknown_requests():
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
        verdict = judge(phone, sent_at or 0.0, message, contacts)
        verdicts[key] = verdict
        if verdict.state != RequestState.UNKNOWN:
            ledger.settle_unknown(key, verdict.state, ai_contact_id=verdict.ai_contact_id,
                                  error_code=verdict.error_code, error=verdict.error)
    if on_note is not None and verdicts:
        decided = sum(v.state != RequestState.UNKNOWN for v in verdicts.values())
        on_note(f"Reconciled {len(verdicts)} unknown rows: {decided} decided, "
                f"{len(verdicts) - decided} still unknown")
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
                verdicts = asyncio.run(_settle(config, api_key, ledger, on_note))
                rows = journal.unknown_rows()
                for key, verdict in verdicts.items():
                    if key in rows:
                        journal.amend(rows[key], _STATUS[verdict.state], verdict.ai_contact_id,
                                      verdict.error_code, verdict.error)
                summary = Summary("run", out_dir=out)
                summary.ledger_path = ledger.description
                write_reports(out, journal.table(), journal.results(NOT_REACHED), summary)
                return summary
            finally:
                journal.close()
        finally:
            ledger.close()
    finally:
        lock.release()


async def _settle(config: Config, api_key: str, ledger: Ledger,
                  on_note: Callable[[str], None] | None) -> dict[str, Verdict]:
    api = config.api
    async with VambeClient(api.base_url, api_key, phone_id=api.phone_id, channel=api.channel,
                           timeout=api.timeout_seconds, max_connections=1) as client:
        return await settle(client, ledger, config, on_note)
