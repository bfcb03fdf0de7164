"""The two jobs a user runs, as plain functions: :func:`validate_file` and :func:`run_import`.

Both stream the input through read -> map -> validate, and read it at most twice.
``validate_file`` writes the reports as it goes (after a first pass that learns the last row
of each phone, for ``within_file = "last"``). ``run_import`` first reads and checks the
whole file (the plan pass: nothing is sent if any row cannot be read), then sends in a
second pass, claiming every request in the ledger; the reports come from the journal, which
keeps the cells of the rows that go to errors.csv. The library never prints: notes go to
the caller's ``on_note``. The CLI is a thin layer over these two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sqlite3
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .client import Pipeline, VambeClient
from .codes import RowStatus
from .config import Config, load_config
from .exceptions import ConfigError, InputFileError, LocalError, OutputFolderError
from .index import PhoneIndex
from .journal import FolderLock, Journal, JournalRecord, read_journal
from .ledger import Held, Ledger, Policy, identity_of, ledger_path_for, target_name
from .mapping import RowMapper
from .read import SourceRow, Table, open_table, opt_out_cells
from .reconcile import settle
from .schedule import SendWindow
from .timing import clock
from .report import ReportWriter, RowResult, Summary, write_reports
from .send import Sender, format_time
from .validate import CheckedRow, OptOuts, StageResolver, Validator


@dataclass(frozen=True)
class Plan:
    """What a run is about to do, from a first pass over the whole file."""

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

    @property
    def estimated_seconds(self) -> float | None:
        requests = self.to_send * (2 if self.lookups else 1)
        return requests / self.rate_per_second if self.rate_per_second else None

    @property
    def ledger_holds(self) -> int:
        return self.sent_before + self.unknown + self.in_progress

    def describe(self) -> str:
        pace = (f"at {self.rate_per_second:g}/s, about {duration_text(self.estimated_seconds)}"
                if self.rate_per_second else "with no rate limit")
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


def duration_text(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


PLAIN_TEXT_NOTE = (
    "plain-text messages reach only customers who wrote to you in the last 24 hours"
    " (WhatsApp's customer service window); to start conversations, use an approved template:"
    " [message] template_id"
)


def default_out_dir(input_path: str | Path) -> Path:
    """``clientes.csv`` -> ``./clientes-import``: one folder per input, in the current directory."""
    return Path(f"{Path(input_path).stem}-import")


def _as_config(config: Config | str | Path) -> Config:
    return config if isinstance(config, Config) else load_config(config)


def _open_input(input_path: str | Path, config: Config, sheet: str | None) -> Table:
    table = open_table(input_path, sheet=sheet or config.input.sheet,
                       encoding=config.input.encoding, delimiter=config.input.delimiter)
    config.check_columns(list(table.headers), table.path.name)
    for path in config.exclude_paths():
        if not path.is_file():
            raise ConfigError(f"{config.source}: [dedupe] exclude: {path} not found")
    return table


def _checked(table: Table, config: Config, validator: Validator
             ) -> Iterator[tuple[SourceRow, CheckedRow]]:
    """The pipeline up to the verdict, streaming: read -> map -> validate."""
    mapper = RowMapper(config, table.headers)
    for source in table.rows():
        yield source, validator.check(mapper.map(source))


# What the plan pass makes of a row. For within_file = "last" it is packed with the row
# number and a message bit into the phone index (row << 4 | kind << 1 | message), so the
# verdict of each phone's last row is known at the end of the pass without a third read.
_NOT_SENT, _TO_SEND, _SENT_HERE, _SENT_BEFORE, _UNKNOWN, _IN_PROGRESS = range(6)
_HELD_KIND = {RowStatus.SENT: _SENT_HERE, RowStatus.DUPLICATE: _SENT_BEFORE,
              RowStatus.UNKNOWN: _UNKNOWN, RowStatus.SKIPPED: _IN_PROGRESS}


def _held(checked: CheckedRow, ledger: Ledger | None) -> Held | None:
    if checked.request is None or ledger is None:
        return None
    return ledger.held(checked.request.key)


def _kind(checked: CheckedRow, ledger: Ledger | None) -> int:
    if checked.request is None:
        return _NOT_SENT
    held = _held(checked, ledger)
    return _TO_SEND if held is None else _HELD_KIND[held.status]


class _Tally:
    """The plan's counts, fed rows in file order."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.kinds = [0] * 6
        self.to_send = self.messages = self.held_back = 0

    def add(self, kind: int, has_message: bool) -> None:
        if kind == _TO_SEND and self.limit is not None and self.to_send >= self.limit:
            self.held_back += 1
        elif kind == _TO_SEND:
            self.to_send += 1
            self.messages += has_message
        else:
            self.kinds[kind] += 1


def _plan_pass(table: Table, config: Config, validator: Validator, ledger: Ledger | None,
               limit: int | None) -> Plan:
    """Read and check the whole file before anything is sent (a row that cannot be read
    stops the job here), and count what sending would do. For ``within_file = "last"`` it
    also teaches ``validator`` the last row of every phone."""
    last = config.dedupe.within_file == "last"
    mapper = RowMapper(config, table.headers)
    checking = validator.fresh()
    tally = _Tally(limit)
    latest = PhoneIndex()
    rows = outside = 0
    window = SendWindow(config.schedule) if config.schedule is not None else None
    now = clock().time()
    for source in table.rows():
        rows += 1
        checked = checking.check(mapper.map(source), dedupe=not last)
        if window is not None and checked.request is not None:
            outside += window.opens_at(checked.phone, now) is not None
        if last and checked.phone and checked.status != RowStatus.EXCLUDED:
            has_message = checked.request is not None and checked.request.has_message
            latest.put(checked.phone,
                       source.number << 4 | _kind(checked, ledger) << 1 | has_message)
        else:
            tally.add(_kind(checked, ledger),
                      checked.request is not None and checked.request.has_message)
    if last:
        packed = array("q")
        for phone, value in latest.items():
            validator.learn_last_row(phone, value >> 4)
            packed.append(value)
        for value in (sorted(packed) if limit is not None else packed):
            tally.add(value >> 1 & 7, bool(value & 1))
    to_send, kinds = tally.to_send, tally.kinds
    return Plan(rows, to_send, tally.messages, kinds[_SENT_HERE],
                rows - to_send - tally.held_back - sum(kinds[_SENT_HERE:]),
                config.api.rate_limit_per_second, config.api.base_url, config.api.phone_id,
                tally.held_back, kinds[_SENT_BEFORE], kinds[_UNKNOWN], kinds[_IN_PROGRESS],
                config.dedupe.skip_open_tickets, outside)


MAX_SHOWN_PROBLEMS = 5


def read_opt_outs(config: Config) -> OptOuts:
    """Read the ``[dedupe] exclude`` files, failing closed: a list that only partly works is
    worse than none, so an unreadable file, a file without a phone, or any entry that cannot
    be read as a phone stops the job before any request, naming the row and the cell."""
    opt_outs = OptOuts(config.defaults.country)
    for path in config.exclude_paths():
        where = f"{config.source}: [dedupe] exclude: {path.name}"
        try:
            learned, unreadable = opt_outs.learn(path.name, opt_out_cells(path))
        except InputFileError as error:
            raise ConfigError(f"{config.source}: [dedupe] exclude: {error}") from None
        if unreadable:
            shown = "; ".join(f"row {row} {column!r}: {problem}"
                              for row, column, problem in unreadable[:MAX_SHOWN_PROBLEMS])
            more = (f" and {len(unreadable) - MAX_SHOWN_PROBLEMS} more"
                    if len(unreadable) > MAX_SHOWN_PROBLEMS else "")
            raise ConfigError(f"{where}: {len(unreadable)} entries cannot be read as a phone,"
                              f" so nobody is contacted until they are fixed: {shown}{more}")
        if not learned:
            raise ConfigError(f"{where}: holds no phone number, so nobody is contacted until"
                              " it does (an empty opt-out list is almost always the wrong file)")
    return opt_outs


def _check_default_stage(config: Config, stages: StageResolver) -> None:
    stage_id = config.defaults.stage_id
    if stage_id is not None and not stages.exists(stage_id):
        raise ConfigError(
            f"{config.source}: [defaults] stage_id: stage {stage_id} is not in the account's"
            " pipelines (vambe-import stages lists them)"
        )


async def _fetch_pipelines(config: Config, api_key: str) -> list[Pipeline]:
    api = config.api
    async with VambeClient(api.base_url, api_key, phone_id=api.phone_id, channel=api.channel,
                           timeout=api.timeout_seconds, max_connections=1) as client:
        return await client.list_pipelines(retries=api.max_retries,
                                           backoff=api.retry_backoff_seconds)


def list_stages(config: Config | str | Path, *, api_key: str) -> list[Pipeline]:
    """The account's pipelines and their stages (``GET /api/public/pipeline``)."""
    config = _as_config(config)
    return asyncio.run(_fetch_pipelines(config, api_key))


PREVIEW_ROWS = 3


def validate_file(input_path: str | Path, config: Config | str | Path, *,
                  out_dir: str | Path | None = None, api_key: str | None = None,
                  sheet: str | None = None, ledger_path: str | Path | None = None) -> Summary:
    """Check every row and write the reports, sending nothing.

    With an API key, stage names and IDs are checked against the account's pipelines;
    without one, stage cells are taken as written. Rows the ledger holds back (sent before,
    unknown, being sent) get the status a run would give them. ``summary.preview`` holds the
    exact bodies of the first rows that would be sent, ``summary.estimated_seconds`` the
    time sending them all would take at the configured rate.
    """
    config = _as_config(config)
    table = _open_input(input_path, config, sheet)
    out = Path(out_dir) if out_dir is not None else default_out_dir(input_path)
    lock = FolderLock(out)
    try:
        record = read_journal(out)
        if record is not None and record.started:
            raise OutputFolderError(
                f"{out} holds a run; validating into it would overwrite its reports;"
                " choose another --out folder"
            )
        path = ledger_path_for(config, ledger_path)
        ledger = Ledger.peek(path, target=target_name(**identity_of(config)), folder=out,
                             policy=Policy(config.dedupe.across_runs_days))
        try:
            return _validate(table, config, out, api_key, ledger)
        finally:
            if ledger is not None:
                ledger.close()
    finally:
        lock.release()


def _validate(table: Table, config: Config, out: Path, api_key: str | None,
              ledger: Ledger | None) -> Summary:
    opt_outs = read_opt_outs(config)
    pipelines = asyncio.run(_fetch_pipelines(config, api_key)) if api_key else None
    stages = StageResolver(pipelines)
    _check_default_stage(config, stages)
    summary = Summary("validate", out_dir=out)
    if config.message is not None and not config.message.is_template:
        summary.notes.append(PLAIN_TEXT_NOTE)
    validator = Validator(config, stages, opt_outs)
    validator.phones.classify_lines = True  # before any phone is read: verdicts are cached
    if config.dedupe.within_file == "last":
        _plan_pass(table, config, validator, None, None)  # learns each phone's last row
    held_back = dict.fromkeys(_HELD_KIND, 0)
    window = SendWindow(config.schedule) if config.schedule is not None else None
    openings: list[tuple[float, str]] = []  # valid rows outside their window: (opens, phone)
    now = clock().time()
    checking = validator.fresh()
    writer = ReportWriter(out, table)
    try:
        for source, checked in _checked(table, config, checking):
            held = _held(checked, ledger)
            if held is not None:
                held_back[held.status] += 1
                result = RowResult(checked.number, held.status, checked.phone,
                                   held.ai_contact_id, held.http_status, held.attempts,
                                   held.error_code, held.error)
            else:
                result = RowResult(checked.number, checked.status, checked.phone,
                                   error_code=checked.error_code, error=checked.error)
            summary.counts[result.status] += 1
            writer.add(result, source)
            if result.status == RowStatus.VALID and window is not None:
                opens = window.opens_at(checked.phone, now)
                if opens is not None:
                    openings.append((opens, checked.phone))
            if result.status == RowStatus.VALID and len(summary.preview) < PREVIEW_ROWS:
                summary.preview.append(checked.request.body)
                summary.preview_paths.append(checked.request.path)
    except BaseException:
        writer.discard()
        raise
    if config.api.rate_limit_per_second:
        requests = summary.counts[RowStatus.VALID] * (2 if config.dedupe.skip_open_tickets else 1)
        summary.estimated_seconds = requests / config.api.rate_limit_per_second
    _phone_notes(config, checking.tallies, summary)
    if window is not None and summary.counts[RowStatus.VALID]:
        inside = summary.counts[RowStatus.VALID] - len(openings)
        text = f"{inside} of the {summary.counts[RowStatus.VALID]} valid rows are inside their"
        text += " send window now ([schedule])"
        if openings:
            first = min(openings, key=lambda item: item[0])
            text += (f"; the other {len(openings)} open from"
                     f" {window.describe_opening(first[1], first[0])}")
        summary.notes.append(text)
    if stages.unchecked:
        summary.notes.append(
            f"stages were not checked against the account ({stages.unchecked} rows name one):"
            " set VAMBE_API_KEY to check them"
        )
    if any(held_back.values()):
        note = ledger_note(held_back[RowStatus.DUPLICATE], held_back[RowStatus.UNKNOWN],
                           held_back[RowStatus.SKIPPED])
        summary.notes.append(f"{note} (ledger: {ledger.path})")
    summary.ledger_path = None if ledger is None else ledger.path
    summary.finished_at = datetime.now(timezone.utc)
    writer.commit(summary)
    return summary


def _phone_notes(config: Config, tallies, summary: Summary) -> None:
    """What validate can say about the phones beyond each row's verdict."""
    defaults = config.defaults
    if tallies["international"] and not defaults.international_without_plus:
        summary.notes.append(
            f"{tallies['international']} rows hold a number written without + that is valid"
            " only as an international number; [defaults] international_without_plus = true"
            " would accept them")
    if tallies["fixed_line"]:
        what = ("refused" if defaults.phone_check == "mobile" else
                'sent; [defaults] phone_check = "mobile" refuses them')
        summary.notes.append(f"{tallies['fixed_line']} rows hold fixed-line numbers, which"
                             f" cannot receive WhatsApp messages unless the line has it:"
                             f" {what}")


def run_import(input_path: str | Path, config: Config | str | Path, *, api_key: str,
               out_dir: str | Path | None = None, sheet: str | None = None,
               resume: bool = False, retry_unknown: bool = False, limit: int | None = None,
               confirm: Callable[[Plan], bool] | None = None,
               on_result: Callable[[RowResult], None] | None = None,
               on_note: Callable[[str], None] | None = None,
               handle_signals: bool = True, ledger_path: str | Path | None = None,
               account: str | None = None, reconcile: bool = False, wait: bool = False,
               start_at: float | None = None) -> Summary:
    """Open one ticket per valid row and write the reports; returns the run's summary.

    The whole file is read and checked before the first request (a :class:`Plan`); every
    request is claimed in the send ledger before it goes out, so no other run, folder or
    file sends it again. ``limit`` sends at most that many rows (a pilot); the others are
    ``skipped`` and a later ``resume=True`` run sends them. ``retry_unknown`` sends again
    rows whose outcome is unknown. ``confirm`` is shown the plan before anything is sent;
    returning False ends the run with nothing sent (``summary.stopped == "declined"``).
    With ``handle_signals`` (main thread only) a first Ctrl-C or SIGTERM lets requests in
    flight finish and writes the reports; a second stops at once and leaves the reports to
    ``--resume``. ``ledger_path`` overrides where the ledger is; ``account`` names the API
    in the ledger and journal instead of its base URL (the sandbox, whose port changes).
    ``reconcile`` first settles the folder's unknown rows against the account
    (:mod:`importer.reconcile`), so the resumed run sends exactly the unprocessed ones.
    With ``[schedule]``, rows outside their send window are skipped, or with ``wait`` sent
    when it opens; ``start_at`` (epoch seconds) holds the first request until then.
    """
    config = _as_config(config)
    table = _open_input(input_path, config, sheet)
    opt_outs = read_opt_outs(config)
    out = Path(out_dir) if out_dir is not None else default_out_dir(input_path)
    lock = FolderLock(out)
    try:
        record = read_journal(out)
        started = record is not None and record.started
        if started and not resume:
            raise OutputFolderError(
                f"{out} already holds a run; continue it with --resume (rows already sent"
                " are never sent again) or choose another --out folder"
            )
        if resume and not started:
            raise OutputFolderError(f"--resume: {out} holds no run to resume")
        identity = identity_of(config, account)
        path = ledger_path_for(config, ledger_path)
        ledger = Ledger.open(path, target=target_name(**identity), folder=out,
                             policy=Policy(config.dedupe.across_runs_days, retry_unknown))
        try:
            if started:
                _check_resumable(out, record, identity, ledger)
            journal = Journal.open(out, identity=identity, ledger_id=ledger.id,
                                   ledger_path=path, table=table)
            try:
                return asyncio.run(_run(table, config, journal, ledger, api_key, opt_outs,
                                        reconcile=reconcile, wait=wait, start_at=start_at,
                                        limit=limit,
                                        confirm=confirm, on_result=on_result, on_note=on_note,
                                        handle_signals=handle_signals))
            finally:
                journal.close()
        finally:
            ledger.close()
    finally:
        lock.release()


def _check_resumable(out: Path, record: JournalRecord, identity: dict[str, str],
                     ledger: Ledger) -> None:
    """A run is resumed against the ledger that recorded it, and against the same account
    unless no request of it was processed (a wrong phone ID stopped it at once)."""
    if record.ledger_id is not None and record.ledger_id != ledger.id:
        raise OutputFolderError(
            f"{out} was recorded in the ledger at {record.ledger_path}, not in {ledger.path}"
            " (moved, deleted or another one): set [ledger] path or VAMBE_IMPORT_LEDGER to it;"
            " nothing was sent"
        )
    before = record.identity
    if before != identity and ledger.folder_has_outcomes(target_name(**before)):
        raise OutputFolderError(
            f"{out} holds a run sent to {before.get('base_url')} (phone ID"
            f" {before.get('phone_id')}), not to {identity.get('base_url')} (phone ID"
            f" {identity.get('phone_id')}); use another --out folder"
        )


async def _run(table: Table, config: Config, journal: Journal, ledger: Ledger, api_key: str,
               opt_outs: OptOuts, *, reconcile: bool, wait: bool, start_at: float | None,
               limit: int | None, confirm: Callable[[Plan], bool] | None,
               on_result: Callable[[RowResult], None] | None,
               on_note: Callable[[str], None] | None, handle_signals: bool) -> Summary:
    api = config.api
    summary = Summary("run", out_dir=journal.path.parent)
    summary.ledger_path = ledger.path
    async with VambeClient(api.base_url, api_key, phone_id=api.phone_id, channel=api.channel,
                           timeout=api.timeout_seconds, max_connections=api.max_concurrency,
                           from_phone_number=api.from_phone_number) as client:
        stages = StageResolver(await client.list_pipelines(retries=api.max_retries,
                                                           backoff=api.retry_backoff_seconds))
        _check_default_stage(config, stages)
        if reconcile:
            await settle(client, ledger, config, on_note)
        validator = Validator(config, stages, opt_outs)
        open_tickets = stages.names() if config.dedupe.skip_open_tickets else None
        window = SendWindow(config.schedule) if config.schedule is not None else None
        sender = Sender(client, journal, ledger, api, limit=limit, on_result=on_result,
                        on_note=on_note, open_tickets=open_tickets, window=window,
                        wait_for_windows=wait, start_at=start_at)
        _warn_before_sending(config, sender)
        plan = _plan_pass(table, config, validator, ledger, limit)
        if start_at is not None and start_at > clock().time():
            plan = dataclasses.replace(plan, start_at=start_at)
        summary.plan = plan
        if api.daily_message_limit is not None and plan.messages > sender.daily.left:
            sender.note(
                f"Note: this run has {plan.messages} rows with a message, but the daily"
                f" message limit ({api.daily_message_limit} in 24 hours) allows"
                f" {sender.daily.left} more now: the other"
                f" {plan.messages - sender.daily.left} are skipped; --resume sends them"
                f" from {format_time(sender.daily.resume_from())}"
            )
        if confirm is not None and not confirm(plan):
            summary.stopped = "declined"
            return summary
        journal.mark_started()
        with _stop_on_signals(sender, enabled=handle_signals) as stop:
            try:
                await sender.run(_checked(table, config, validator.fresh()))
            except asyncio.CancelledError:
                if not stop.hard:
                    raise
                summary.interrupted = True
                summary.stopped = "stopped at once by a second Ctrl-C; reports not written"
                return summary
    summary.interrupted = stop.count > 0
    summary.stopped = sender.stopped
    summary.fatal_error = sender.fatal.error if sender.fatal else None
    summary.local_error = sender.local_error
    if sender.daily.refused:
        summary.notes.append(
            f"the daily message limit is reached: {sender.daily.refused} rows with a message"
            f" were skipped; --resume from {format_time(sender.daily.resume_from())}"
        )
    try:
        write_reports(journal.path.parent, table, journal.results(), summary)
    except (OutputFolderError, OSError, sqlite3.Error) as error:
        if summary.local_error is None:
            raise LocalError(f"the run ended but its reports could not be written ({error});"
                             " --resume writes them once the cause is fixed") from None
        summary.notes.append(f"the reports could not be written ({error}); --resume writes"
                             " them once the cause is fixed")
    return summary


def _warn_before_sending(config: Config, sender: Sender) -> None:
    """What the operator should know before a campaign starts, said once."""
    if config.api.plain_http_off_machine:
        sender.note(f"Warning: [api] base_url {config.api.base_url} is plain http to another"
                    " machine: the API key and your customers' data travel unencrypted")
    if config.api.channel == "web-whatsapp":
        sender.note(f"Note: WhatsApp Web (QR) connections are not meant for campaigns and get"
                    f" blocked for fast or unsolicited sending; sending at"
                    f" {config.api.rate_limit_per_second:g}/s")
    elif config.message is not None and not config.message.is_template:
        sender.note(f"Note: {PLAIN_TEXT_NOTE}")


class _stop_on_signals:
    """First SIGINT/SIGTERM: stop taking rows. Second: cancel the run where it stands."""

    def __init__(self, sender: Sender, *, enabled: bool) -> None:
        self.sender = sender
        self.enabled = enabled
        self.count = 0
        self.hard = False
        self._task: asyncio.Task | None = None
        self._installed: list[int] = []

    def _on_signal(self) -> None:
        self.count += 1
        if self.count == 1:
            self.sender.request_stop("interrupted")
            self.sender.note("Stopping: letting requests in flight finish (Ctrl-C again to stop"
                             " at once)")
        elif self._task is not None and not self.hard:
            self.hard = True
            self._task.cancel()

    def __enter__(self) -> _stop_on_signals:
        if not self.enabled:
            return self
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, self._on_signal)
            except (RuntimeError, ValueError, NotImplementedError):
                continue  # not the main thread, or no signal support: Ctrl-C works as usual
            self._installed.append(signum)
        return self

    def __exit__(self, *exc_info: object) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._installed:
            loop.remove_signal_handler(signum)
