"""The plan: read the input once, decide every row once, and write it into the journal.

This is the one place where a row's fate is decided from the file (``run``, ``validate``
and ``run --resume --replan`` all plan through :func:`plan_file`): its status, error code
and reason, and for a row to send the exact request (endpoint, body, content key). What
happens to a planned row later depends only on the account and the run, never on the file:
the ledger at claim time (:mod:`importer.ledger`) and the run's own limits (``--limit``,
the daily message limit, send windows) in :mod:`importer.send`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .codes import RowStatus
from .config import Config
from .journal import Fingerprint, Journal, Planned, file_identity, fingerprint
from .ledger import Held, Ledger
from .mapping import RowMapper
from .read import SourceRow, Table
from .report import RowResult
from .schedule import SendWindow
from .timing import duration_text, format_time
from .validate import CheckedRow, Validator

# The exact bytes of every body sent: compact, and UTF-8 as written (one encoder, made once:
# json.dumps with options builds a new one per call).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def checked_groups(table: Table, config: Config, validator: Validator
                   ) -> Iterator[list[tuple[SourceRow, CheckedRow]]]:
    """The single read of the input: every row checked, in small groups."""
    mapper = RowMapper(config, table.headers)
    check, map_row = validator.check, mapper.map
    group: list[tuple[SourceRow, CheckedRow]] = []
    for source in table.rows():
        group.append((source, check(map_row(source))))
        if len(group) == _STEP:
            yield group
            group = []
    yield group


def plan_file(table: Table, config: Config, validator: Validator, journal: Journal
              ) -> Fingerprint:
    """Read ``table`` once, from the first data row to the last, and write every row's
    verdict into ``journal``. A row that cannot be read stops the plan (nothing is sent from
    a plan that is not whole); so does a file that changes while it is read."""
    before = file_identity(table.path)
    for group in checked_groups(table, config, validator):
        _record(group, journal)
    if config.dedupe.within_file == "last":
        journal.supersede(list(validator.superseded()))
    found = fingerprint(table.path, before)  # refuses a file that changed while it was read
    journal.finish_plan(found)
    return found


def validation_results(table: Table, config: Config, validator: Validator,
                       ledger: Ledger | None, preview: list[tuple[str | None, dict]]
                       ) -> Iterator[tuple[RowResult, SourceRow]]:
    """``validate`` without a plan to keep (nothing will be sent from it): each row's result
    as a run would give it, straight from the single read, in row order; the ledger is read
    a group at a time, and only if it has ever sent to this account. The requests of the
    first valid rows go to ``preview``. (Not for ``within_file = "last"``, which needs the
    whole file before any verdict: that goes through a plan.)"""
    before = file_identity(table.path)
    knowing = ledger if ledger is not None and ledger.knows_target else None
    for group in checked_groups(table, config, validator):
        held = knowing.held_many([checked.request.key for _, checked in group
                                  if checked.request is not None]) if knowing is not None else {}
        for source, checked in group:
            request = checked.request
            holding = held.get(request.key) if held and request is not None else None
            if holding is not None:
                result = holding.result(checked.number, checked.phone)
            else:
                if request is not None and len(preview) < PREVIEW_ROWS:
                    preview.append((request.path, request.body))
                result = RowResult(checked.number, checked.status, checked.phone,
                                   error_code=checked.error_code, error=checked.error)
            yield result._replace(row=source.origin or checked.number, written=checked.written,
                                  column=checked.column, name=checked.name,
                                  country=checked.country), source
    fingerprint(table.path, before)  # a file that changed while it was read: no reports


PREVIEW_ROWS = 3


# Rows are checked in small groups, then recorded: a group's objects stay in the CPU's
# caches (recording rows one by one, or in groups of thousands, cost twice as much).
_STEP = 64


def _record(rows: list[tuple[SourceRow, CheckedRow]], journal: Journal) -> None:
    """Write a group of verdicts into the plan: for a row to send, its content key and the
    exact JSON body; the cells of every row that may go to errors.csv."""
    encode = _JSON.encode
    add = journal.add_planned
    for source, checked in rows:
        status = checked.status
        request = checked.request
        shown = (source.origin, checked.written, checked.column, checked.name, checked.country)
        if request is not None:
            add((checked.number, status, checked.phone, "", "", request.key,
                 int(request.has_message), *shown),
                (checked.number, source.cells, source.origin, request.path,
                 encode(request.body)))
        else:
            add((checked.number, status, checked.phone, checked.error_code, checked.error,
                 None, None, *shown),
                (checked.number, source.cells, source.origin, None, None)
                if status == RowStatus.INVALID else None)


@dataclass(frozen=True)
class Plan:
    """What a run is about to do: the plan in the journal, counted against the ledger."""

    rows: int
    to_send: int
    messages: int
    already_sent: int  # by an earlier run into this folder
    not_valid: int  # invalid, duplicate or excluded
    rate_per_second: float
    base_url: str
    phone_id: str
    held_back: int = 0  # valid rows left for a later --resume by --limit
    sent_before: int = 0  # the ledger: sent from another folder within across_runs_days
    unknown: int = 0  # the ledger: outcome unknown, held back without --retry-unknown
    in_progress: int = 0  # the ledger: being sent by another live run
    lookups: bool = False  # [dedupe] skip_open_tickets: a look-up before each ticket
    outside_window: int = 0  # [schedule]: rows to send whose window is closed now
    start_at: float | None = None  # --start-at: no request before then
    other_ledgers: tuple[str, ...] = ()  # other ledgers on this machine with this account
    sharing: int = 0  # other runs using this ledger now: they share the rate

    @property
    def estimated_seconds(self) -> float | None:
        requests = self.to_send * (2 if self.lookups else 1)
        return requests / self.rate_per_second if self.rate_per_second else None

    @property
    def ledger_holds(self) -> int:
        return self.sent_before + self.unknown + self.in_progress

    def describe(self) -> str:
        pace = (f"at {self.rate_per_second:g}/s, about {duration_text(self.estimated_seconds)}"
                if self.rate_per_second and self.estimated_seconds is not None
                else "with no rate limit")
        text = (
            f"About to open {self.to_send} tickets and send {self.messages} WhatsApp messages"
            f" through {self.base_url} (phone ID {self.phone_id}) {pace}."
            f" {self.rows} rows: {self.not_valid} will not be sent (invalid or duplicate),"
            f" {self.already_sent} were sent by an earlier run"
            + (f", {self.held_back} are left for --resume by --limit." if self.held_back else ".")
        )
        if self.ledger_holds:
            text += f" {ledger_note(self.sent_before, self.unknown, self.in_progress)}."
        if self.outside_window:
            text += (f" {self.outside_window} of them are outside their send window now"
                     " ([schedule]): --wait sends them when it opens, else they are skipped"
                     " for --resume.")
        if self.start_at is not None:
            text += f" Sending starts at {format_time(self.start_at)} (--start-at)."
        if self.sharing and self.rate_per_second:
            runs = "1 other run is" if self.sharing == 1 else f"{self.sharing} other runs are"
            text += (f" {runs} using this ledger now: they share the account's"
                     f" {self.rate_per_second:g}/s, so this one will take longer.")
        if self.other_ledgers:
            text += (f" Warning: another send ledger on this machine, {self.other_ledgers[0]},"
                     " has recorded this account, and this run's ledger does not know its"
                     " customers: they may be messaged again (one ledger per account).")
        if self.lookups:
            text += (" Each row is first looked up for an open ticket ([dedupe]"
                     " skip_open_tickets): the look-ups share the rate, so tickets go out at"
                     " half of it.")
        return text


def ledger_note(sent_before: int, unknown: int, in_progress: int) -> str:
    """How many rows the ledger holds back, and why."""
    parts = [f"{count} {what}" for count, what in (
        (sent_before, "sent before from another folder"),
        (unknown, "with an unknown outcome (--retry-unknown sends them)"),
        (in_progress, "being sent by another run")) if count]
    return f"The ledger holds back {sent_before + unknown + in_progress} rows: {', '.join(parts)}"


def held_in_ledger(journal: Journal, ledger: Ledger | None
                   ) -> Iterable[tuple[Planned, Held | None]]:
    """Each planned request with what the ledger holds for it now (read in batches; the
    claim, when sending, is the check that counts)."""
    for batch in journal.planned_requests(bodies=False):
        held = ledger.held_many([planned.key for planned in batch]) if ledger else {}
        for planned in batch:
            yield planned, held.get(planned.key)


_HELD_FIELD = {RowStatus.SENT: "already_sent", RowStatus.DUPLICATE: "sent_before",
               RowStatus.UNKNOWN: "unknown", RowStatus.SKIPPED: "in_progress"}


def summarize(journal: Journal, ledger: Ledger, config: Config, *, limit: int | None,
              now: float, start_at: float | None = None) -> Plan:
    """The plan as the operator confirms it: the journal's verdicts, what the ledger holds
    back, ``--limit`` and send windows."""
    counts = journal.plan_counts()
    rows = sum(count for count, _ in counts.values())
    window = SendWindow(config.schedule) if config.schedule is not None else None
    held = dict.fromkeys(_HELD_FIELD.values(), 0)
    to_send = messages = held_back = outside = 0
    for planned, holding in held_in_ledger(journal, ledger):
        if holding is not None:
            held[_HELD_FIELD[holding.status]] += 1
        elif limit is not None and to_send >= limit:
            held_back += 1
        else:
            to_send += 1
            messages += planned.has_message
            if window is not None:
                outside += window.opens_at(planned.phone, now) is not None
    api = config.api
    return Plan(rows, to_send, messages, held["already_sent"],
                rows - counts.get(RowStatus.VALID, (0, 0))[0], api.rate_limit_per_second,
                api.base_url, api.phone_id, held_back, held["sent_before"], held["unknown"],
                held["in_progress"], config.dedupe.skip_open_tickets, outside, start_at)
