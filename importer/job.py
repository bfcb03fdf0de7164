"""The two jobs a user runs, as plain functions: :func:`validate_file` and :func:`run_import`.

Both stream the input through read -> map -> validate. ``validate_file`` writes the reports
as it goes. ``run_import`` reads the file more than once: a pre-pass for
``within_file = "last"``, a plan pass before anything is sent, the sending pass, and the
reports (results from the journal beside the file's rows). The library never prints: notes
go to the caller's ``on_note``. The CLI is a thin layer over these two.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .client import Pipeline, VambeClient
from .config import Config, load_config
from .codes import RowStatus
from .exceptions import ConfigError, InputFileError, OutputFolderError
from .journal import Journal, holds_run
from .mapping import RowMapper
from .read import SourceRow, Table, open_table, opt_out_cells
from .report import ReportWriter, RowResult, Summary, with_sources
from .send import Sender, format_time
from .validate import CheckedRow, StageResolver, Validator


@dataclass(frozen=True)
class Plan:
    """What a run is about to do, for the confirmation question."""

    rows: int
    to_send: int
    messages: int
    already_sent: int
    not_valid: int
    rate_per_second: float
    base_url: str
    phone_id: str
    held_back: int = 0  # valid rows left for a later --resume by --limit

    @property
    def estimated_seconds(self) -> float | None:
        return self.to_send / self.rate_per_second if self.rate_per_second else None

    def describe(self) -> str:
        pace = (f"at {self.rate_per_second:g}/s, about {duration_text(self.estimated_seconds)}"
                if self.rate_per_second else "with no rate limit")
        return (
            f"About to open {self.to_send} tickets and send {self.messages} WhatsApp messages"
            f" through {self.base_url} (phone ID {self.phone_id}) {pace}."
            f" {self.rows} rows: {self.not_valid} will not be sent (invalid or duplicate),"
            f" {self.already_sent} were sent by an earlier run"
            + (f", {self.held_back} are left for --resume by --limit." if self.held_back else ".")
        )


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


def _prepared_validator(table: Table, config: Config, stages: StageResolver) -> Validator:
    """A validator that has read the opt-out files and, for ``within_file = "last"``, which
    row holds each phone last: pre-passes done once per job, however many passes follow."""
    validator = Validator(config, stages)
    for path in config.exclude_paths():
        _learn_opt_outs(validator, path, config)
    if config.dedupe.within_file == "last":
        phone_column = table.headers.index(config.columns.phone)
        validator.learn_last_rows((row.number, row.cells[phone_column]) for row in table.rows())
    return validator


def _checked(table: Table, config: Config, validator: Validator
             ) -> Iterator[tuple[SourceRow, CheckedRow]]:
    """The pipeline up to the verdict, streaming: read -> map -> validate."""
    mapper = RowMapper(config, table.headers)
    validator = validator.fresh()
    for source in table.rows():
        yield source, validator.check(mapper.map(source))


MAX_SHOWN_PROBLEMS = 5


def _learn_opt_outs(validator: Validator, path: Path, config: Config) -> None:
    """Read one opt-out file, failing closed: a list that only partly works is worse than
    none, so an unreadable file, a file without a phone, or any entry that cannot be read as
    a phone stops the job before anything is sent, naming the line and the cell."""
    where = f"{config.source}: [dedupe] exclude: {path.name}"
    try:
        learned, unreadable = validator.learn_exclusions(path.name, opt_out_cells(path))
    except InputFileError as error:
        raise ConfigError(f"{config.source}: [dedupe] exclude: {error}") from None
    if unreadable:
        shown = "; ".join(f"row {row} {column!r}: {problem}"
                          for row, column, problem in unreadable[:MAX_SHOWN_PROBLEMS])
        more = (f" and {len(unreadable) - MAX_SHOWN_PROBLEMS} more"
                if len(unreadable) > MAX_SHOWN_PROBLEMS else "")
        raise ConfigError(f"{where}: {len(unreadable)} entries cannot be read as a phone, so"
                          f" nobody is contacted until they are fixed: {shown}{more}")
    if not learned:
        raise ConfigError(f"{where}: holds no phone number, so nobody is contacted until it"
                          " does (an empty opt-out list is almost always the wrong file)")


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
                  sheet: str | None = None) -> Summary:
    """Check every row and write the reports, sending nothing.

    With an API key, stage names and IDs are checked against the account's pipelines;
    without one, stage cells are taken as written. ``summary.preview`` holds the exact
    bodies of the first rows that would be sent, ``summary.estimated_seconds`` the time
    sending them all would take at the configured rate.
    """
    config = _as_config(config)
    table = _open_input(input_path, config, sheet)
    out = Path(out_dir) if out_dir is not None else default_out_dir(input_path)
    if holds_run(out):
        raise OutputFolderError(
            f"{out} holds a run; validating into it would overwrite its reports;"
            " choose another --out folder"
        )
    pipelines = asyncio.run(_fetch_pipelines(config, api_key)) if api_key else None
    stages = StageResolver(pipelines)
    _check_default_stage(config, stages)
    summary = Summary("validate", out_dir=out)
    if config.message is not None and not config.message.is_template:
        summary.notes.append(PLAIN_TEXT_NOTE)
    writer = ReportWriter(out, table)
    try:
        for source, checked in _checked(table, config,
                                        _prepared_validator(table, config, stages)):
            result = RowResult(checked.number, checked.status, checked.phone,
                               error_code=checked.error_code, error=checked.error)
            summary.counts[result.status] += 1
            writer.add(result, source)
            if checked.request is not None and len(summary.preview) < PREVIEW_ROWS:
                summary.preview.append(checked.request.body)
    except BaseException:
        writer.discard()
        raise
    if config.api.rate_limit_per_second:
        summary.estimated_seconds = summary.counts[RowStatus.VALID] / config.api.rate_limit_per_second
    if stages.unchecked or (pipelines is None and config.defaults.stage_id):
        summary.notes.append(
            f"stages were not checked against the account ({stages.unchecked} rows name one):"
            " set VAMBE_API_KEY to check them"
        )
    summary.finished_at = datetime.now(timezone.utc)
    writer.commit(summary)
    return summary


def run_import(input_path: str | Path, config: Config | str | Path, *, api_key: str,
               out_dir: str | Path | None = None, sheet: str | None = None,
               resume: bool = False, retry_unknown: bool = False, limit: int | None = None,
               confirm: Callable[[Plan], bool] | None = None,
               on_result: Callable[[RowResult], None] | None = None,
               on_note: Callable[[str], None] | None = None,
               handle_signals: bool = True) -> Summary:
    """Open one ticket per valid row and write the reports; returns the run's summary.

    ``limit`` sends at most that many rows (a pilot); the others are ``skipped`` and a later
    ``resume=True`` run sends them. ``confirm`` is shown the :class:`Plan` before anything is
    sent; returning False ends
    the run with nothing sent (``summary.stopped == "declined"``). With ``handle_signals``
    (main thread only) a first Ctrl-C or SIGTERM lets requests in flight finish and writes
    the reports; a second stops at once and leaves the reports to ``--resume``.
    """
    config = _as_config(config)
    table = _open_input(input_path, config, sheet)
    out = Path(out_dir) if out_dir is not None else default_out_dir(input_path)
    api = config.api
    identity = {"base_url": api.base_url, "channel": api.channel, "phone_id": api.phone_id}
    journal = Journal.open(out, identity=identity, resume=resume)
    try:
        return asyncio.run(_run(table, config, journal, api_key, retry_unknown=retry_unknown,
                                limit=limit, confirm=confirm, on_result=on_result,
                                on_note=on_note, handle_signals=handle_signals))
    finally:
        journal.close()


async def _run(table: Table, config: Config, journal: Journal, api_key: str, *,
               retry_unknown: bool, limit: int | None, confirm: Callable[[Plan], bool] | None,
               on_result: Callable[[RowResult], None] | None,
               on_note: Callable[[str], None] | None, handle_signals: bool) -> Summary:
    api = config.api
    summary = Summary("run", out_dir=journal.path.parent)
    async with VambeClient(api.base_url, api_key, phone_id=api.phone_id, channel=api.channel,
                           timeout=api.timeout_seconds,
                           max_connections=api.max_concurrency) as client:
        stages = StageResolver(await client.list_pipelines(retries=api.max_retries,
                                                           backoff=api.retry_backoff_seconds))
        _check_default_stage(config, stages)
        validator = _prepared_validator(table, config, stages)
        sender = Sender(client, journal, api, retry_unknown=retry_unknown, limit=limit,
                        on_result=on_result, on_note=on_note)
        _warn_before_sending(config, sender)
        counts_messages = api.daily_message_limit is not None and config.message is not None
        if confirm is not None or counts_messages:
            plan = _plan(table, config, validator, journal, limit)
            if counts_messages and plan.messages > sender.daily.left:
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
        rows = (checked for _, checked in _checked(table, config, validator))
        with _stop_on_signals(sender, enabled=handle_signals) as stop:
            try:
                await sender.run(rows)
            except asyncio.CancelledError:
                if not stop.hard:
                    raise
                summary.interrupted = True
                summary.stopped = "stopped at once by a second Ctrl-C; reports not written"
                return summary
    summary.interrupted = stop.count > 0
    summary.stopped = sender.stopped
    summary.fatal_error = sender.fatal.error if sender.fatal else None
    if sender.daily.refused:
        summary.notes.append(
            f"the daily message limit is reached: {sender.daily.refused} rows with a message"
            f" were skipped; --resume from {format_time(sender.daily.resume_from())}"
        )
    _write_run_reports(table, journal, summary)
    return summary


def _warn_before_sending(config: Config, sender: Sender) -> None:
    """What the operator should know before a campaign starts, said once."""
    if config.api.channel == "web-whatsapp":
        sender.note(f"Note: WhatsApp Web (QR) connections are not meant for campaigns and get"
                    f" blocked for fast or unsolicited sending; sending at"
                    f" {config.api.rate_limit_per_second:g}/s")
    elif config.message is not None and not config.message.is_template:
        sender.note(f"Note: {PLAIN_TEXT_NOTE}")


def _plan(table: Table, config: Config, validator: Validator, journal: Journal,
          limit: int | None) -> Plan:
    rows = to_send = messages = already_sent = held_back = 0
    for _, checked in _checked(table, config, validator):
        rows += 1
        if checked.request is None:
            continue
        prior = journal.prior(checked.request.key)
        if prior is not None and prior.state == "sent":
            already_sent += 1
        elif limit is not None and to_send >= limit:
            held_back += 1
        else:
            to_send += 1
            messages += checked.request.has_message
    return Plan(rows, to_send, messages, already_sent,
                rows - to_send - already_sent - held_back, config.api.rate_limit_per_second,
                config.api.base_url, config.api.phone_id, held_back)


def _write_run_reports(table: Table, journal: Journal, summary: Summary) -> None:
    writer = ReportWriter(journal.path.parent, table)
    try:
        for result, source in with_sources(journal.results(), table.rows()):
            summary.counts[result.status] += 1
            writer.add(result, source)
    except BaseException:
        writer.discard()
        raise
    summary.finished_at = datetime.now(timezone.utc)
    writer.commit(summary)


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
