"""The two jobs a user runs, as plain functions: :func:`validate_file` and :func:`run_import`.

Both read the input exactly once, in the plan pass (:mod:`importer.plan`), which decides
every row and writes the plan into the output folder's journal; the reports are written
from the journal. ``run_import`` then sends the planned requests, read back from the journal
(never from the file), claiming each in the ledger; ``--resume`` continues from the journal
alone, once the file is shown to be the one planned. The library never prints: notes go to
the caller's ``on_note``. The CLI is a thin layer over these two.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

from .client import Pipeline, VambeClient
from .codes import ErrorCode, RequestState, RowStatus
from .config import Config, load_config
from .exceptions import ConfigError, InputFileError, OutputFolderError
from .journal import (
    NOT_REACHED,
    FolderLock,
    Journal,
    JournalRecord,
    Reached,
    file_identity,
    fingerprint,
    read_journal,
)
from .ledger import (
    Ledger,
    Policy,
    account_pacer,
    identity_of,
    ledger_location,
    other_ledgers,
    remember_ledger,
    target_name,
)
from .plan import (
    PREVIEW_ROWS,
    Plan,
    duration_text,
    held_in_ledger,
    ledger_note,
    plan_file,
    summarize,
    validation_results,
)
from .read import SourceRow, Table, open_table, opt_out_cells
from .reconcile import Verdict, journal_amender, settle
from .report import RowResult, Summary, plural, rewrite_page, write_reports
from .schedule import SendWindow
from .send import Sender
from .timing import ClockSkew, clock, format_time
from .validate import OptOuts, StageResolver, Validator

__all__ = ["Plan", "duration_text", "ledger_note", "list_stages", "run_import", "validate_file"]


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
        if not path.exists():  # a FIFO or a device: opt_out_cells says what it is
            raise ConfigError(f"{config.source}: [dedupe] exclude: {path} not found")
    return table


def config_digest(config: Config) -> str:
    """What in the config shapes a plan (mapping, defaults, message, dedupe, the channel):
    a resumed run whose config changed there is planned again, never sent an old plan."""
    shaping = config.model_dump(mode="json", exclude={"ledger", "schedule"})
    api = shaping.pop("api")
    shaping["api"] = {name: api.get(name) for name in ("channel", "phone_id",
                                                          "from_phone_number")}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


MAX_SHOWN_PROBLEMS = 5


def read_opt_outs(config: Config) -> OptOuts:
    """Read the ``[dedupe] exclude`` files, failing closed: a list that only partly works is
    worse than none, so an unreadable file, a file without a phone, or any entry that cannot
    be read as a phone stops the job before any request, naming the row and the cell."""
    opt_outs = OptOuts(config.defaults.country)
    for path in config.exclude_paths():
        where = f"{config.source}: [dedupe] exclude: {path.name}"
        try:
            learned, unreadable = opt_outs.learn(path.name, opt_out_cells(path, opt_outs.notes))
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
        path = ledger_location(config, ledger_path)
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
    summary.describe(config, identity_of(config))
    summary.ledger_path = None if ledger is None else ledger.description
    summary.notes.extend(opt_outs.notes)
    if config.message is not None and not config.message.is_template:
        summary.notes.append(PLAIN_TEXT_NOTE)
    validator = Validator(config, stages, opt_outs)
    validator.phones.classify_lines = True  # before any phone is read: verdicts are cached
    window = SendWindow(config.schedule) if config.schedule is not None else None
    openings: list[tuple[float, str]] = []  # valid rows outside their window: (opens, phone)
    held_back: Counter[str] = Counter()
    now = clock().time()
    preview: list[tuple[str | None, dict]] = []  # (path, body) of the first rows to send
    journal = None
    if config.dedupe.within_file == "last":  # the verdicts need the whole file: a plan
        journal = Journal.create(out, identity=identity_of(config), ledger_id=None,
                                 ledger_path=None, table=table,
                                 config_digest=config_digest(config))
    try:
        results = (_planned_results(table, config, validator, ledger, journal, preview)
                   if journal is not None else
                   validation_results(table, config, validator, ledger, preview))
        write_reports(out, table, _observed(results, window, now, openings, held_back),
                      summary, journal)
    finally:
        if journal is not None:
            journal.close()
    valid = summary.counts[RowStatus.VALID]
    summary.preview = [body for _, body in preview]
    summary.preview_paths = [path for path, _ in preview]
    if config.api.rate_limit_per_second:
        requests = valid * (2 if config.dedupe.skip_open_tickets else 1)
        summary.estimated_seconds = requests / config.api.rate_limit_per_second
    _phone_notes(config, validator.tallies, summary)
    if window is not None and valid:
        text = f"{valid - len(openings)} of the {valid} valid rows are inside their"
        text += " send window now ([schedule])"
        later = [item for item in openings if item[0] != math.inf]
        if later:
            first = min(later, key=lambda item: item[0])
            other = "the other " if len(later) == len(openings) else ""
            text += (f"; {other}{len(later)} open from"
                     f" {window.describe_opening(first[1], first[0])}")
        if len(later) < len(openings):
            text += (f"; {len(openings) - len(later)} never have it open in all of their time"
                     " zones at once within a week (widen [schedule] hours or days)")
        summary.notes.append(text)
    if stages.unchecked:
        names = sorted(stages.unchecked_names)
        distinct = ("" if not names else
                    f"; {plural(len(names), 'distinct name')}, not IDs: "
                    + ", ".join(repr(name) for name in names[:5])
                    + (", ..." if len(names) > 5 else ""))
        summary.notes.append(
            f"stages were not checked against the account ({stages.unchecked} rows name one"
            f"{distinct}): set VAMBE_API_KEY to check them"
        )
    if held_back and ledger is not None:
        note = ledger_note(held_back[ErrorCode.SENT_BEFORE], held_back[RowStatus.UNKNOWN],
                           held_back[ErrorCode.IN_PROGRESS])
        summary.notes.append(f"{note} (ledger: {ledger.name})")
    return summary


def _planned_results(table: Table, config: Config, validator: Validator,
                     ledger: Ledger | None, journal: Journal,
                     preview: list[tuple[str | None, dict]]
                     ) -> Iterator[tuple[RowResult, SourceRow | None]]:
    """``validate`` with ``within_file = "last"``: the plan first (a phone's last row is
    known only at the end of the file), then each row's result from it."""
    plan_file(table, config, validator, journal)
    for planned, held in held_in_ledger(journal, ledger):
        if held is not None:  # the status a run would give the row
            journal.add_result(held.result(planned.row, planned.phone))
        elif len(preview) < PREVIEW_ROWS:
            path, body = journal.request_of(planned.row)
            preview.append((path, json.loads(body)))
    return journal.results()


def _observed(results: Iterable[tuple[RowResult, SourceRow | None]], window: SendWindow | None,
              now: float, openings: list[tuple[float, str]], held_back: Counter[str]
              ) -> Iterator[tuple[RowResult, SourceRow | None]]:
    """``validate``'s results on their way to the reports: when the valid rows' send windows
    open, and what the ledger held back."""
    for result, source in results:
        if result.status == RowStatus.VALID:
            if window is not None and (opens := window.opens_at(result.phone, now)) is not None:
                openings.append((opens, result.phone))
        elif result.status == RowStatus.UNKNOWN:
            held_back[RowStatus.UNKNOWN] += 1
        elif result.error_code in (ErrorCode.SENT_BEFORE, ErrorCode.IN_PROGRESS):
            held_back[result.error_code] += 1
        yield result, source


def _rows_hold(count: int) -> str:
    return f"{plural(count, 'row')} {'holds' if count == 1 else 'hold'}"


def _phone_notes(config: Config, tallies: Counter[str], summary: Summary) -> None:
    """What validate can say about the phones beyond each row's verdict."""
    defaults = config.defaults
    if tallies["international"] and not defaults.international_without_plus:
        summary.notes.append(
            f"{_rows_hold(tallies['international'])} a number written without + that is valid"
            " only as an international number; [defaults] international_without_plus = true"
            " would accept them")
    if tallies["international_read"]:
        summary.notes.append(
            f"{_rows_hold(tallies['international_read'])} a number written without +"
            " that was read as international ([defaults] international_without_plus = true):"
            " check them before sending")
    if tallies["fixed_line"]:
        what = ("refused" if defaults.phone_check == "mobile" else
                'sent; [defaults] phone_check = "mobile" refuses them')
        summary.notes.append(f"{_rows_hold(tallies['fixed_line'])} fixed-line numbers, which"
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
               start_at: float | None = None, replan: bool = False,
               interactive: bool = False, stop_switch: StopSwitch | None = None) -> Summary:
    """Open one ticket per valid row and write the reports; returns the run's summary.

    The whole file is read once and checked before the first request: the plan, written
    into the output folder's journal and summarised as a :class:`Plan` for ``confirm``;
    sending reads the planned requests from the journal, never the file, and claims each in
    the send ledger before it goes out, so no other run, folder or file sends it again.
    ``limit`` sends at most that many rows (a pilot); the others are ``skipped`` and a later
    ``resume=True`` run sends them. ``resume`` continues from the journal alone, once the
    file is shown to be the one planned (else it stops; ``replan`` plans the file afresh).
    ``retry_unknown`` sends again rows whose outcome is unknown. ``confirm`` returning False
    ends the run with nothing sent (``summary.stopped == "declined"``). With
    ``handle_signals`` (main thread only) a first Ctrl-C or SIGTERM lets requests in flight
    finish and writes the reports; a second stops at once and leaves the reports to
    ``--resume``. ``ledger_path`` overrides where the ledger is; ``account`` names the API
    in the ledger and journal instead of its base URL (the sandbox, whose port changes).
    ``reconcile`` first settles the folder's unknown rows against the account
    (:mod:`importer.reconcile`), so the resumed run sends exactly the unprocessed ones.
    With ``[schedule]``, rows outside their send window are skipped, or with ``wait`` sent
    when it opens; ``start_at`` (epoch seconds) holds the first request until then.
    ``interactive`` says ``confirm`` is a person's answer: only then may a run go on when
    another ledger on this machine has recorded the account (else ``[ledger] others_ok``).
    ``stop_switch`` lets another thread stop the run as a first Ctrl-C does.
    """
    config = _as_config(config)
    planning = not resume or replan
    table = _open_input(input_path, config, sheet) if planning else None
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
        path = ledger_location(config, ledger_path)
        # The folder's own id, kept in its journal (a moved folder is still itself); a new
        # run's is new; a folder 0.1.0 wrote is known by its path, as that release knew it.
        origin = (record.origin or str(out.resolve())) if started and record else uuid4().hex
        ledger = Ledger.open(path, target=target_name(**identity), folder=out,
                             policy=Policy(config.dedupe.across_runs_days, retry_unknown),
                             origin=origin, timeout=config.api.timeout_seconds)
        try:
            if started:
                assert record is not None
                _check_resumable(out, record, identity, ledger)
            others = [] if account is not None else other_ledgers(ledger.target,
                                                                    ledger.index_name)
            if others and not config.ledger.others_ok and not interactive:
                raise OutputFolderError(
                    f"another send ledger on this machine, {others[0]}, has recorded this"
                    f" account (phone ID {config.api.phone_id}), and {ledger.name} does not"
                    " know its"
                    " customers: a second ledger would send them again. Use that ledger"
                    " ([ledger] path or VAMBE_IMPORT_LEDGER), or set [ledger] others_ok ="
                    " true; nothing was sent")
            reached = _reached(out) if started else Reached({}, set())
            if table is not None:
                journal = Journal.create(out, identity=identity, ledger_id=ledger.id,
                                         ledger_path=ledger.name, table=table,
                                         config_digest=config_digest(config), started=started,
                                         origin=origin)
            else:
                journal = _resumable_journal(out, record, Path(input_path), config)
            try:
                # The account first (key, phone ID, stages; --reconcile), then the plan outside
                # any event loop, so that Ctrl-C stops it at once; then sending.
                for note in opt_outs.notes:
                    if on_note is not None:
                        on_note(f"Note: {note}")
                skew = ClockSkew()  # the account's clock against ours, over the whole run
                stages, settled = asyncio.run(_prepare(config, api_key, ledger, reconcile,
                                                       on_note, skew, journal))
                for key, verdict in settled.items():  # the account's word beats the journal's
                    if verdict.state == RequestState.FAILED:
                        reached.keys.pop(key, None)
                    elif verdict.state == RequestState.SENT:
                        reached.keys[key] = RowStatus.SENT
                if table is not None:
                    _check_default_stage(config, stages)
                    plan_file(table, config, Validator(config, stages, opt_outs), journal)
                return asyncio.run(_run(config, journal, ledger, api_key, opt_outs, stages,
                                        skew=skew, index=account is None, reached=reached,
                                        wait=wait, start_at=start_at, limit=limit,
                                        other_ledgers=others,
                                        replanned=table is not None and started,
                                        confirm=confirm, on_result=on_result,
                                        on_note=on_note, handle_signals=handle_signals,
                                        stop_switch=stop_switch))
            finally:
                journal.close()
        finally:
            ledger.close()
    finally:
        lock.release()


SETTLE_ROUNDS = 10  # run --until-settled: at most this many rounds of reconcile and resume


def run_until_settled(input_path: str | Path, config: Config | str | Path, *, api_key: str,
                      rounds: int = SETTLE_ROUNDS,
                      on_round: Callable[[int, Summary], None] | None = None,
                      confirm: Callable[[Plan], bool] | None = None, replan: bool = False,
                      **options: Any) -> Summary:
    """Reconcile and resume the run in ``out_dir`` (``run_import``'s other ``options``) again
    and again, until no row is left that they can settle (:attr:`Summary.settleable`), a
    round settles none (a row the account keeps refusing, a window still closed), the run
    stops (a fatal answer, a local error, Ctrl-C) or ``rounds`` rounds are done; returns the
    last round's summary. ``confirm`` sees the first round's plan only: the later rounds
    send a part of it. ``on_round(number, summary)`` follows each round."""
    config = _as_config(config)
    left = None
    for number in range(1, rounds + 1):
        summary = run_import(input_path, config, api_key=api_key, resume=True, reconcile=True,
                             confirm=confirm if number == 1 else None,
                             replan=replan and number == 1, **options)
        if on_round is not None:
            on_round(number, summary)
        if (summary.stopped is not None or summary.interrupted or summary.finished_at is None
                or not summary.settleable or (left is not None and summary.settleable >= left)):
            break
        left = summary.settleable
    return summary


def rewrite_report(out_dir: str | Path) -> Path:
    """``vambe-import report``: write the folder's report.html again from its journal alone
    (no file, config or account needed); returns its path."""
    out = Path(out_dir)
    lock = FolderLock(out)
    try:
        if read_journal(out) is None:
            raise OutputFolderError(f"{out} holds no run (no journal): nothing to report")
        journal = Journal.reopen(out)
        try:
            validated = json.loads(journal.meta("report") or "{}").get("mode") == "validate"
            return rewrite_page(out, journal,
                                RowResult(0, RowStatus.VALID) if validated else NOT_REACHED)
        finally:
            journal.close()
    finally:
        lock.release()


def _reached(out: Path) -> Reached:
    """Whom the run in ``out`` has reached, from its journal, before a resume clears it or a
    replan replaces it."""
    journal = Journal.reopen(out)
    try:
        return journal.reached()
    finally:
        journal.close()


def _resumable_journal(out: Path, record: JournalRecord | None, input_path: Path,
                       config: Config) -> Journal:
    """The folder's plan, to send from, once the file and the config are shown to be the
    ones it was made from (else exit 2: ``--replan`` plans them afresh)."""
    replan = "--replan plans it afresh (rows already sent are never sent again)"
    if record is None or not record.planned:
        raise OutputFolderError(f"{out}: its journal holds no whole plan (an earlier release"
                                f" wrote it, or a --replan did not finish); nothing was sent:"
                                f" {replan}")
    journal = Journal.reopen(out)
    try:
        planned = journal.fingerprint()
        try:
            now = fingerprint(input_path, file_identity(input_path))
        except FileNotFoundError:
            raise InputFileError(f"{input_path}: input file not found; nothing was sent"
                                 f" ({replan} once it is back)") from None
        if planned is None or (now.size, now.sha256) != (planned.size, planned.sha256):
            was = planned.describe() if planned is not None else "unknown"
            raise InputFileError(
                f"{input_path.name}: the file changed since the run was planned (planned:"
                f" {was}; now: {now.describe()}); nothing was sent: {replan}")
        if journal.meta("config") != config_digest(config):
            raise ConfigError(
                f"{config.source}: the config changed since the run was planned (its mapping,"
                f" defaults, message, dedupe or phone ID); nothing was sent: {replan}")
        # The earlier runs' outcomes stay: each row this run reaches gets its own, and a
        # row a stopped resume never reached keeps what an earlier run recorded (sent stays
        # sent, never "not sent").
    except BaseException:
        journal.close()
        raise
    return journal


def _check_resumable(out: Path, record: JournalRecord, identity: dict[str, str],
                     ledger: Ledger) -> None:
    """A run is resumed against the ledger that recorded it, and against the same account
    unless no request of it was processed (a wrong phone ID stopped it at once)."""
    if record.ledger_id is not None and record.ledger_id != ledger.id:
        raise OutputFolderError(
            f"{out} was recorded in the ledger at {record.ledger_path}, not in {ledger.name}"
            " (moved, deleted or another one): set [ledger] path or VAMBE_IMPORT_LEDGER to it;"
            " nothing was sent"
        )
    before = record.identity
    if (target_name(**before) != target_name(**identity)
            and ledger.folder_has_outcomes(target_name(**before))):
        raise OutputFolderError(
            f"{out} holds a run sent to {before.get('base_url')} (phone ID"
            f" {before.get('phone_id')}), not to {identity.get('base_url')} (phone ID"
            f" {identity.get('phone_id')}); use another --out folder"
        )


async def _prepare(config: Config, api_key: str, ledger: Ledger, reconcile: bool,
                   on_note: Callable[[str], None] | None, skew: ClockSkew, journal: Journal
                   ) -> tuple[StageResolver, dict[str, Verdict]]:
    """Before the plan: the account's stages (which also proves the key and the phone ID
    before anything is sent), the folder's unknown rows settled with ``--reconcile``, and
    what the operator should know before a campaign."""
    api = config.api
    async with VambeClient(api.base_url, api_key, phone_id=api.phone_id, channel=api.channel,
                           timeout=api.timeout_seconds, max_connections=1, skew=skew) as client:
        pacer = account_pacer(api.rate_limit_per_second, ledger, clock())
        if pacer is not None:  # a look-up counts against the account's limit too
            await pacer.wait()
        stages = StageResolver(await client.list_pipelines(retries=api.max_retries,
                                                           backoff=api.retry_backoff_seconds))
        settled = await settle(client, ledger, config, on_note,
                               journal_amender(journal)) if reconcile else {}
    _warn_before_sending(config, on_note or (lambda text: None))
    return stages, settled


async def _run(config: Config, journal: Journal, ledger: Ledger, api_key: str,
               opt_outs: OptOuts, stages: StageResolver, *, skew: ClockSkew, wait: bool,
               start_at: float | None, limit: int | None, replanned: bool,
               other_ledgers: list[str], index: bool, reached: Reached,
               confirm: Callable[[Plan], bool] | None,
               on_result: Callable[[RowResult], None] | None,
               on_note: Callable[[str], None] | None, handle_signals: bool,
               stop_switch: StopSwitch | None = None) -> Summary:
    """Confirm the plan, send it from the journal, write the reports."""
    api = config.api
    summary = Summary("run", out_dir=journal.path.parent)
    summary.ledger_path = ledger.description
    summary.describe(config, json.loads(journal.meta("identity") or "{}"))
    async with VambeClient(api.base_url, api_key, phone_id=api.phone_id, channel=api.channel,
                           timeout=api.timeout_seconds, max_connections=api.max_concurrency,
                           from_phone_number=api.from_phone_number, skew=skew) as client:
        open_tickets = stages.names() if config.dedupe.skip_open_tickets else None
        window = SendWindow(config.schedule) if config.schedule is not None else None
        sender = Sender(client, journal, ledger, api, limit=limit, on_result=on_result,
                        on_note=on_note, open_tickets=open_tickets, window=window,
                        wait_for_windows=wait, start_at=start_at, opt_outs=opt_outs,
                        reached_keys=reached.keys,
                        reached_phones=(reached.phones | ledger.phones_reached()) if replanned
                        else set())
        now = clock().time()
        plan = summarize(journal, ledger, config, limit=limit, now=now,
                         start_at=start_at if start_at is not None and start_at > now else None)
        plan = dataclasses.replace(plan, other_ledgers=tuple(map(str, other_ledgers)),
                                   sharing=ledger.other_live_runs())
        if not plan.to_send:  # --start-at: nothing to wait for
            sender.start_at = None
            plan = dataclasses.replace(plan, start_at=None)
        summary.plan = plan
        if api.daily_message_limit is not None and plan.messages > (sender.daily.left or 0):
            sender.note(
                f"Note: this run has {plan.messages} rows with a message, but the daily"
                f" message limit ({api.daily_message_limit} in 24 hours) allows"
                f" {sender.daily.left} more now: the other"
                f" {plan.messages - (sender.daily.left or 0)} are skipped; --resume sends them"
                f" from {format_time(sender.daily.resume_from())}"
            )
        if confirm is not None and not confirm(plan):
            summary.stopped = "declined"
            return summary
        if index:  # before the first request: a run killed mid-way has sent
            try:
                remember_ledger(ledger.target, ledger.index_name)
            except OSError as error:
                raise OutputFolderError(f"{error.filename}: cannot record this ledger in the"
                                        f" index of send ledgers ({error.strerror});"
                                        " nothing was sent") from None
        journal.mark_started(clock().time())
        with _StopOnSignals(sender, enabled=handle_signals) as stop:
            if stop_switch is not None:
                stop_switch.attach(asyncio.get_running_loop(), stop)
            try:
                await sender.run(journal.planned_requests(Sender.CLAIM_BATCH))
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
    unreached = RowResult(0, RowStatus.SKIPPED, error_code=ErrorCode.NOT_ATTEMPTED,
                          error=f"not sent: the run stopped ({sender.stopped}) before this row;"
                                " --resume sends it")
    try:
        write_reports(journal.path.parent, journal.table(), journal.results(unreached), summary,
                      journal)
    except Exception as error:  # noqa: BLE001 - customers were messaged: exit 4, never 2
        if summary.local_error is None:
            summary.local_error = f"the run ended but its reports could not be written ({error})"
        summary.notes.append(f"the reports could not be written ({error}); --resume writes"
                             " them once the cause is fixed")
    if summary.local_error is not None and sender.requests == 0:
        raise OutputFolderError(f"{summary.local_error}; no request was sent")
    return summary


def _warn_before_sending(config: Config, note: Callable[[str], None]) -> None:
    """What the operator should know before a campaign starts, said once."""
    if config.api.plain_http_warning is not None:
        note(config.api.plain_http_warning)
    if config.api.channel == "web-whatsapp":
        note(f"Note: WhatsApp Web (QR) connections are not meant for campaigns and get"
                    f" blocked for fast or unsolicited sending; sending at"
                    f" {config.api.rate_limit_per_second:g}/s")
    elif config.message is not None and not config.message.is_template:
        note(f"Note: {PLAIN_TEXT_NOTE}")


class StopSwitch:
    """Stop a run from another thread (the local page's Stop button), with Ctrl-C's meaning:
    the first request lets requests in flight finish and writes the reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: tuple[asyncio.AbstractEventLoop, _StopOnSignals] | None = None
        self.requested = False

    def attach(self, loop: asyncio.AbstractEventLoop, stop: _StopOnSignals) -> None:
        with self._lock:
            self._target = (loop, stop)
            if self.requested:
                loop.call_soon(stop.on_request)

    def request(self) -> None:
        with self._lock:
            if self.requested:
                return
            self.requested = True
            if self._target is not None:
                loop, stop = self._target
                loop.call_soon_threadsafe(stop.on_request)


class _StopOnSignals:
    """First SIGINT/SIGTERM: stop taking rows. Second: cancel the run where it stands."""

    def __init__(self, sender: Sender, *, enabled: bool) -> None:
        self.sender = sender
        self.enabled = enabled
        self.count = 0
        self.hard = False
        self._task: asyncio.Task | None = None
        self._installed: list[int] = []

    def on_request(self) -> None:
        """A stop asked from elsewhere (:class:`StopSwitch`): as a first Ctrl-C."""
        if self.count == 0:
            self._on_signal()

    def _on_signal(self) -> None:
        self.count += 1
        if self.count == 1:
            self.sender.request_stop("interrupted")
            self.sender.note("Stopping: letting requests in flight finish (Ctrl-C again to stop"
                             " at once)")
        elif self._task is not None and not self.hard:
            self.hard = True
            self._task.cancel()

    def __enter__(self) -> _StopOnSignals:
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
