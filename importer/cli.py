"""The ``vambe-import`` command: a thin layer over :mod:`importer.job`.

This is the one place where errors become messages and exit codes, and where text reaches
the terminal (always through :func:`printable`):

====  =====================================================================
0     every row sent (or, for ``validate``, valid), a duplicate of one that was, or excluded
1     some rows not sent (the reports say which), or the confirmation was declined
2     could not start: usage, config, input file, output folder, key; an unexpected error
3     stopped by a fatal API answer: key rejected (401/403), phone ID unknown (404)
4     stopped by a local error after sending began (a full disk, a bug)
130   interrupted (Ctrl-C or SIGTERM)
====  =====================================================================
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, ParamSpec, TypedDict, TypeVar

import click

from .codes import ErrorCode, ExitCode, RowStatus
from .config import DEFAULT_BASE_URL, Config
from .exceptions import ImporterError, MissingApiKeyError
from .job import (
    SETTLE_ROUNDS,
    default_out_dir,
    list_stages,
    run_import,
    run_until_settled,
    validate_file,
)
from .plan import Plan
from .report import RowResult, Summary, plural
from .timing import duration_text
from .version import __version__

if TYPE_CHECKING:
    from tqdm import tqdm

    from .client import Pipeline
    from .sandbox import SandboxServer
    from .starter import Account

# 2 (could not start) is every ImporterError's own exit_code.
EXIT_OK, EXIT_NOT_ALL_SENT, EXIT_FATAL_API, EXIT_LOCAL_ERROR, EXIT_INTERRUPTED = (
    ExitCode.OK, ExitCode.NOT_ALL_SENT, ExitCode.FATAL_API, ExitCode.LOCAL_ERROR,
    ExitCode.INTERRUPTED)
EXIT_UNEXPECTED = ExitCode.COULD_NOT_START  # an error not foreseen, before sending began
EXIT_SETTLEABLE = ExitCode.SETTLEABLE  # rows --resume or reconcile can still settle
API_KEY_VARIABLE = "VAMBE_API_KEY"
SANDBOX_LEDGER = "sandbox-ledger.sqlite"


# Control characters (C0 but tab and newline, DEL, C1, and so ESC and OSC sequences) in text
# from a server or a spreadsheet are shown escaped, never interpreted by the terminal.
# Bidi controls (U+202A-U+202E, U+2066-U+2069, U+200E/U+200F, U+061C) and zero-width
# characters (U+200B-U+200D, U+2060, U+FEFF) are shown escaped too: they can make a name or a
# number read as another (a phone reversed by U+202E, a name with an invisible character).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e"
                      "\u2060\u2066-\u2069\ufeff]")


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\u202e``),
    so a server message or a cell cannot clear the screen, write a fake success line or
    show a number reversed."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"),
                        text)


def _say(text: str = "", err: bool = False) -> None:
    try:
        click.echo(printable(text), err=err)
    except BrokenPipeError:
        # Whoever read it went away (`| head`): the run goes on, its reports say the rest;
        # nothing more is written there (nor at exit, which would fail the same way).
        stream = sys.stderr if err else sys.stdout
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


class _CliError(click.ClickException):
    """An :class:`ImporterError` at the edge: one line on stderr, its own exit code."""

    def __init__(self, error: ImporterError | str, exit_code: int | None = None) -> None:
        super().__init__(printable(str(error)))
        if exit_code is None:
            assert isinstance(error, ImporterError)  # a bare message comes with its code
            exit_code = error.exit_code
        # click declares exit_code a ClassVar, yet reads it from the instance: one per error.
        self.exit_code = exit_code  # type: ignore[misc]


def exit_code(summary: Summary) -> int:
    return int(summary.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vambe-import")
@click.option("--traceback", is_flag=True, help="On an error, show the full traceback.")
@click.pass_context
def cli(context: click.Context, traceback: bool) -> None:
    """Open one Vambe WhatsApp ticket per spreadsheet row, safely."""
    context.obj = {"traceback": traceback}


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _guarded(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn library errors into one-line messages (or tracebacks with --traceback)."""

    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        # Everything alive now (modules, config, pydantic's and click's machinery) lives for
        # the whole command: keep it out of the garbage collector's scans. ~15% less CPU on
        # a fast run (bench/bench_overhead.py); a process-wide choice, so the CLI makes it.
        gc.freeze()
        try:
            return function(*args, **kwargs)
        except KeyboardInterrupt:
            # Outside the sending phase (which handles Ctrl-C itself): reading, checking or
            # writing reports. The journal holds whatever was sent.
            _say("Interrupted. Any run in --out continues with --resume; rows already"
                       " sent are never sent again.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except ImporterError as error:
            if click.get_current_context().obj.get("traceback"):
                raise
            raise _CliError(error) from None
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as error:  # a bug or an environment problem: still one line
            if click.get_current_context().obj.get("traceback"):
                raise
            raise _CliError(f"unexpected error: {type(error).__name__}: {error}"
                            " (--traceback shows where)", EXIT_UNEXPECTED) from None

    wrapper.__name__ = function.__name__
    wrapper.__doc__ = function.__doc__
    return wrapper


_file_argument = click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
_config_option = click.option("--config", "config_path", required=True,
                              type=click.Path(dir_okay=False, path_type=Path),
                              help="The TOML config mapping the file's columns to the API.")
_out_option = click.option("--out", "out_dir", type=click.Path(path_type=Path),
                           help="Folder for the reports (default: ./<file name>-import).")
_sheet_option = click.option("--sheet", help="XLSX sheet to read (default: [input] sheet, or"
                                             " the first sheet).")


def _print_summary(summary: Summary) -> None:
    counts = summary.counts
    shown = [summary.done_status, RowStatus.INVALID, RowStatus.DUPLICATE, RowStatus.FAILED,
             RowStatus.UNKNOWN, RowStatus.SKIPPED]
    if counts[RowStatus.EXCLUDED]:
        shown.insert(3, RowStatus.EXCLUDED)
    _say(f"{summary.total_rows} rows: "
               + ", ".join(f"{counts[status]} {status}" for status in shown))
    for note in summary.notes:
        _say(f"Note: {note}")
    if summary.finished_at is not None:
        _say("Reports: " + ", ".join(str(path) for path in summary.paths.values()))
    if summary.ledger_path is not None:
        _say(f"Ledger: {summary.ledger_path}")


@cli.command()
@_file_argument
@_config_option
@_out_option
@_sheet_option
@_guarded
def validate(file: Path, config_path: Path, out_dir: Path | None, sheet: str | None) -> None:
    """Check every row of FILE and write the reports, sending nothing.

    Needs no API key; with VAMBE_API_KEY set, stages are also checked against the account.
    """
    api_key = os.environ.get(API_KEY_VARIABLE) or None
    config = _config_for_the_key(config_path) if api_key else config_path
    summary = validate_file(file, config, out_dir=out_dir, sheet=sheet, api_key=api_key)
    if summary.preview:
        import json

        first = ("The first request" if len(summary.preview) == 1
                 else f"The first {len(summary.preview)} requests")
        _say(f"{first} that run would send:")
        for body, path in zip(summary.preview, summary.preview_paths, strict=True):
            if path is not None:
                _say(f"POST {path}")
            _say(json.dumps(body, ensure_ascii=False, indent=2))
    _print_summary(summary)
    if summary.estimated_seconds is not None:
        valid = summary.counts[RowStatus.VALID]
        _say(f"Sending the {plural(valid, 'valid row')} would take about"
             f" {duration_text(summary.estimated_seconds)} at the configured rate.")
    sys.exit(exit_code(summary))


@cli.command()
@_file_argument
@_config_option
@_out_option
@_sheet_option
@click.option("--sandbox", is_flag=True,
              help="Send to a sandbox API started in this process (no account, no network).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation before sending.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out: rows already sent are never sent again.")
@click.option("--replan", is_flag=True,
              help="With --resume: plan the file (and config) afresh when they changed since"
                   " the run was planned; rows already sent are never sent again.")
@click.option("--retry-unknown", is_flag=True,
              help="Send again the rows whose outcome is unknown (they may have reached the"
                   " customer).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Send at most N rows (a pilot); --resume sends the rest.")
@click.option("--reconcile", is_flag=True,
              help="With --resume, first settle unknown rows against the account.")
@click.option("--until-settled", is_flag=True,
              help="With --resume --reconcile: repeat both until no row is left that they can"
                   f" settle (at most {SETTLE_ROUNDS} rounds, a line each).")
@click.option("--wait", is_flag=True,
              help="With [schedule]: keep going and send each row when its window opens.")
@click.option("--start-at", "start_at", metavar="TIME",
              help="Send nothing before TIME (ISO 8601; this machine's local time unless it"
                   " has an offset).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@_guarded
def run(file: Path, config_path: Path, out_dir: Path | None, sheet: str | None, sandbox: bool,
        yes: bool, resume: bool, replan: bool, retry_unknown: bool, limit: int | None,
        reconcile: bool, until_settled: bool,
        wait: bool, start_at: str | None, quiet: bool) -> None:
    """Open one ticket per valid row of FILE and write the reports.

    The API key is read from the VAMBE_API_KEY environment variable.
    """
    from .config import load_config

    if replan and not resume:
        raise click.UsageError("--replan goes with --resume: a new run always plans the file")
    if reconcile and not resume:
        raise click.UsageError("--reconcile goes with --resume: it settles the unknown rows of"
                               " the run being resumed")
    if until_settled and not (resume and reconcile):
        raise click.UsageError("--until-settled goes with --resume --reconcile: it repeats them")
    if until_settled and (retry_unknown or limit is not None):
        raise click.UsageError("--until-settled cannot go with --retry-unknown (a row left"
                               " unknown would be sent again each round) or --limit")
    start = None
    if start_at is not None:
        from .schedule import parse_start

        try:
            start = parse_start(start_at)
        except ValueError:
            raise click.BadParameter(f"not an ISO 8601 time: {start_at!r} (for example"
                                     " 2026-11-27T09:00)", param_hint="--start-at") from None
    config = load_config(config_path)
    server = None
    out = out_dir if out_dir is not None else default_out_dir(file)
    ledger_path = account = None
    if sandbox:
        server, config = _start_sandbox(config)
        api_key = server.state.api_key
        # A sandbox forgets everything when it stops: its ledger lives with the run it
        # served, never in the real one, and it is named "sandbox", not by its random port.
        ledger_path, account = out / SANDBOX_LEDGER, "sandbox"
    else:
        api_key = os.environ.get(API_KEY_VARIABLE, "")
        if not api_key:
            raise MissingApiKeyError(
                f"{API_KEY_VARIABLE} is not set: export your Vambe API key first"
                " (or try the demo with --sandbox)"
            )
    progress = _Progress(enabled=not quiet and sys.stderr.isatty())
    ask = not yes and sys.stdin.isatty()

    def confirm(plan: Plan) -> bool:
        """Show the plan when someone watches (it also sizes the progress bar); ask only at
        a terminal."""
        progress.total = plan.rows
        if ask or progress.enabled:
            _say(plan.describe(), err=True)
        return click.confirm("Send now?", default=False, err=True) if ask else True

    def round_done(number: int, summary: Summary) -> None:
        """--until-settled: a line a round, the bar afresh for the next."""
        progress.close()
        progress.restart()
        if summary.finished_at is not None:
            counts = summary.counts
            _say(f"Round {number}: {counts[RowStatus.SENT]:,} of"
                 f" {plural(summary.total_rows, 'row')} sent, {counts[RowStatus.FAILED]:,}"
                 f" failed, {counts[RowStatus.UNKNOWN]:,} unknown,"
                 f" {counts[RowStatus.SKIPPED]:,} skipped.", err=True)

    options: _RunOptions = {
        "out_dir": out, "sheet": sheet, "interactive": ask, "on_result": progress.update,
        "on_note": progress.note, "ledger_path": ledger_path, "account": account,
        "wait": wait, "start_at": start}
    try:
        if until_settled:
            summary = run_until_settled(file, config, api_key=api_key, replan=replan,
                                        confirm=confirm, on_round=round_done, **options)
        else:
            summary = run_import(file, config, api_key=api_key, resume=resume, replan=replan,
                                 retry_unknown=retry_unknown, limit=limit, confirm=confirm,
                                 reconcile=reconcile, **options)
    finally:
        progress.close()
        if server is not None:
            server.stop()
    if summary.stopped == "declined":
        _say("Nothing sent.")
        sys.exit(exit_code(summary))
    if summary.local_error:
        _say(f"Stopped by a local error: {summary.local_error}; rows in flight are"
                   " unknown, the rest skipped; --resume finishes the run once the cause is"
                   " fixed.", err=True)
    elif summary.fatal_error:
        _say(f"Stopped: {summary.fatal_error}", err=True)
    elif summary.interrupted and summary.finished_at is None:
        _say(f"Interrupted: {summary.stopped}; --resume finishes the run.", err=True)
        sys.exit(exit_code(summary))
    elif summary.interrupted:
        _say("Interrupted: rows not attempted are skipped; --resume continues the run.",
                   err=True)
    if summary.finished_at is not None:  # else the reports were not written: no counts
        _print_summary(summary)
    else:
        for note in summary.notes:
            _say(f"Note: {note}")
    if server is not None:
        state = server.state
        tickets = len(state.tickets)
        others = len(state.received) - sum(1 for request in state.received
                                            if request.method == "POST")
        looked = f" ({plural(others, 'look-up')}: stages, contacts)" if others else ""
        _say(f"Sandbox received {plural(len(state.received), 'request')}{looked} and opened"
             f" {plural(tickets, 'ticket')} for {plural(len(state.contacts), 'contact')}.")
    if summary.finished_at is not None and not summary.all_done:
        _print_what_next(summary, config_path)
    sys.exit(exit_code(summary))


def _print_what_next(summary: Summary, config_path: Path) -> None:
    """What to do about the rows not sent. Unknown rows are never offered for a blind
    re-import: they may have reached the customer."""
    counts = summary.counts
    if counts[RowStatus.INVALID] or counts[RowStatus.FAILED]:
        _say(f"Invalid and failed rows are in {summary.paths['errors.csv']}: fix and"
                   " import it again (rows already sent are never sent again); failed and"
                   " skipped rows are also retried by --resume.")
    elif counts[RowStatus.SKIPPED]:
        _say("Skipped rows are sent by --resume.")
    unknown = summary.unknown_rows
    if unknown:
        shown = ", ".join(str(row) for row in unknown[:10]) + (", ..." if len(unknown) > 10
                                                                else "")
        have = "has" if len(unknown) == 1 else "have"
        _say(f"{plural(len(unknown), 'row')} {have} an unknown outcome"
             f" ({'row' if len(unknown) == 1 else 'rows'} {shown}): the customer may have got"
             f" the ticket. vambe-import reconcile --out {summary.out_dir} --config"
             f" {config_path} checks them in the account; re-importing does not send them"
             " again; --resume --retry-unknown does.")


def _start_sandbox(config: Config) -> tuple[SandboxServer, Config]:
    """``run --sandbox``: a sandbox on a free loopback port that knows the config's phone ID,
    and the config pointed at it."""
    from .sandbox import DEFAULT_PHONE_ID, DEFAULT_WEB_PHONE_ID, SandboxServer, SandboxState

    server = SandboxServer(SandboxState(
        phone_ids=(config.api.phone_id, DEFAULT_PHONE_ID),
        web_phone_ids=(config.api.phone_id, DEFAULT_WEB_PHONE_ID),
    )).start()
    api = config.api.model_copy(update={"base_url": server.url})
    return server, config.model_copy(update={"api": api})


_PROGRESS_STATUSES = (RowStatus.SENT, RowStatus.FAILED, RowStatus.UNKNOWN)


class _RunOptions(TypedDict):
    """What ``run`` passes to run_import, with or without --until-settled."""

    out_dir: Path
    sheet: str | None
    interactive: bool
    on_result: Callable[[RowResult], None]
    on_note: Callable[[str], None]
    ledger_path: Path | None
    account: str | None
    wait: bool
    start_at: float | None


class _Progress:
    """A tqdm bar on stderr while sending; silent when stderr is not a terminal."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.total: int | None = None
        self._bar: tqdm[NoReturn] | None = None
        self._counts: dict[str, int] = {}

    def update(self, result: RowResult) -> None:
        if not self.enabled or result.error_code == ErrorCode.NOT_ATTEMPTED:
            return  # after Ctrl-C the bar stays where the run stopped
        if self._bar is None:  # created at the first row, after any confirmation question
            from tqdm import tqdm

            # miniters=1: tqdm otherwise learns from a fast burst (rows a resumed run finds
            # already sent) to redraw only every N rows, and then freezes while sending.
            self._bar = tqdm(total=self.total, unit="row", file=sys.stderr, dynamic_ncols=True,
                             mininterval=0.25, miniters=1)
        self._counts[result.status] = self._counts.get(result.status, 0) + 1
        self._bar.update(1)
        if result.status in _PROGRESS_STATUSES:
            self._bar.set_postfix({str(status): self._counts.get(status, 0)
                                   for status in _PROGRESS_STATUSES}, refresh=False)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(printable(text), file=sys.stderr)
        else:
            _say(text, err=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def restart(self) -> None:
        """A new bar at the next row (--until-settled: each round goes over the rows)."""
        self._bar = None
        self._counts = {}


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="The folder of the run to reconcile.")
@_config_option
@click.option("--quiet", "-q", is_flag=True, help="Only the closing lines.")
@_guarded
def reconcile(out_dir: Path, config_path: Path, quiet: bool) -> None:
    """Settle the run's unknown rows against the account, on evidence; opens no ticket.

    Exit as run does: 0 all settled, 5 while rows can still be settled (unknown, or found
    not processed: --resume sends them), 1 when only invalid ones are left. Needs
    VAMBE_API_KEY.
    """
    from .reconcile import reconcile_folder

    summary = reconcile_folder(out_dir, _config_for_the_key(config_path), api_key=_api_key(),
                               on_note=None if quiet else (lambda text: _say(text, err=True)))
    _print_summary(summary)
    if summary.unknown_rows:
        _say(f"{len(summary.unknown_rows)} rows are still unknown: the account cannot tell;"
             " their errors say why. --resume --retry-unknown sends them again.")
    sys.exit(exit_code(summary))


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="The folder of the run (or validation) to report.")
@click.option("--open", "open_page", is_flag=True, help="Open the page in the browser.")
@_guarded
def report(out_dir: Path, open_page: bool) -> None:
    """Write report.html again from the folder's journal: the run's page, offline.

    Needs neither the file, nor the config, nor VAMBE_API_KEY.
    """
    from .job import rewrite_report

    path = rewrite_report(out_dir)
    _say(f"Report: {path}")
    if open_page:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (anything but loopback lets others on the network in).")
@click.option("--port", default=8788, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser.")
@_guarded
def ui(host: str, port: int, no_browser: bool) -> None:
    """Serve the local page: file, mapping, check, pilot, send, result, in the browser.

    It prints an address with a one-time token; the page needs it. The API key comes from
    VAMBE_API_KEY or is typed into the page, and stays in this process's memory.
    """
    from .config import is_this_machine
    from .ui import UiServer

    if not is_this_machine(host):
        _say(f"Warning: serving on {host}: anyone who can reach it and has the address with"
             " its token can send campaigns with your key; put TLS in front", err=True)
    try:
        server = UiServer(host=host, port=port)
    except OSError as error:
        raise _CliError(f"--port {port}: cannot listen on {host} ({error.strerror or error})",
                        EXIT_UNEXPECTED) from None
    _say(f"vambe-import ui at {server.url} (Ctrl-C to stop)")
    if not no_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    finally:
        server.stop()


def _config_for_the_key(config_path: Path) -> Config:
    """The config of a command that sends the key: first, the warning when it would go in
    clear (every such command says it, terminal or not)."""
    from .config import load_config

    config = load_config(config_path)
    if config.api.plain_http_warning is not None:
        _say(config.api.plain_http_warning, err=True)
    return config


def _api_key() -> str:
    api_key = os.environ.get(API_KEY_VARIABLE, "")
    if not api_key:
        raise MissingApiKeyError(f"{API_KEY_VARIABLE} is not set: export your Vambe API key first")
    return api_key


@cli.command()
@_file_argument
@_sheet_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("config.toml"), show_default=True, help="Where to write the config.")
@click.option("--force", is_flag=True, help="Overwrite the output file if it exists.")
@click.option("--base-url", default=DEFAULT_BASE_URL, show_default=True,
              help="With VAMBE_API_KEY: the API to read the account's channels and stages from.")
@_guarded
def init(file: Path, sheet: str | None, output: Path, force: bool, base_url: str) -> None:
    """Write a commented starter config guessed from FILE's headers and numbers.

    With VAMBE_API_KEY set, it also reads the account: its WhatsApp phone ID (when it has
    one channel) and its stages, as comments.
    """
    from .starter import write_starter

    account = _read_account(base_url) if os.environ.get(API_KEY_VARIABLE, "").strip() else None
    starter = write_starter(file, output, sheet=sheet, force=force, account=account)
    found = ", ".join(f"{field} = {header!r}" for field, header in starter.columns.items())
    _say(f"Wrote {output}: {found}.")
    if starter.column_countries:
        seen = ", ".join(f"{region} {count}" for region, count in starter.column_countries)
        _say(f"Countries in the sample's column {starter.columns['country']!r}: {seen}.")
    if starter.country and starter.column_countries:
        _say(f"Default country {starter.country}, for rows with no country cell:"
             f" {starter.country_votes} of {starter.sampled_phones} sample rows are in it.")
    elif starter.country:
        _say(f"Default country {starter.country}: {starter.country_votes} of"
             f" {starter.sampled_phones} sample numbers are valid there.")
    else:
        _say("No default country: no country holds most of the sample; rows without a country"
             " need a + and their country code.")
    if starter.several_countries:
        found = ", ".join(f"{region} {votes}" for region, votes in (
            starter.column_countries or starter.countries))
        if "country" in starter.columns:
            advice = (f"each row's country is read from the column"
                      f" {starter.columns['country']!r} ([columns] country)")
        else:
            advice = ("add a column with each row's country and set [columns] country, or, if"
                      " the numbers carry their country code without +, set [defaults]"
                      " international_without_plus = true")
        _say(f"The sample's numbers belong to several countries ({found}): {advice}.")
    replace = "stage_id" if starter.phone_id_found else "phone_id and stage_id"
    _say(f"Replace {replace} (vambe-import stages lists your stages), then:"
         f" vambe-import validate {file} --config {output}")


def _read_account(base_url: str) -> Account:
    """The account's WhatsApp channels and pipelines, for init."""
    import asyncio

    from .client import VambeClient
    from .config import ApiSettings
    from .starter import Account

    try:
        settings = ApiSettings(base_url=base_url, phone_id="1")
    except ValueError:
        raise click.BadParameter(f"not a usable API URL: {base_url!r}",
                                 param_hint="--base-url") from None
    base_url = settings.base_url
    if settings.plain_http_warning is not None:
        _say(settings.plain_http_warning, err=True)

    async def read() -> tuple[list[dict], list[Pipeline]]:
        async with VambeClient(base_url, os.environ[API_KEY_VARIABLE], phone_id="0",
                               max_connections=1) as client:
            return await client.list_channels("whatsapp"), await client.list_pipelines()

    channels, pipelines = asyncio.run(read())
    return Account(base_url, channels, pipelines)


CHANNEL_TYPES = ("whatsapp", "web-whatsapp")


@cli.command()
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@_guarded
def channels(config_path: Path, as_json: bool) -> None:
    """List the account's channels: type, phone ID (for [api] phone_id), name, number.

    Needs VAMBE_API_KEY.
    """
    import asyncio
    import json

    from .client import VambeClient

    api = _config_for_the_key(config_path).api

    async def read() -> list[tuple[str, dict]]:
        async with VambeClient(api.base_url, _api_key(), phone_id=api.phone_id,
                               timeout=api.timeout_seconds, max_connections=1) as client:
            return [(kind, channel) for kind in CHANNEL_TYPES
                    for channel in await client.list_channels(
                        kind, retries=api.max_retries, backoff=api.retry_backoff_seconds)]

    found = asyncio.run(read())
    if as_json:
        _say(json.dumps([{"type": kind, **channel} for kind, channel in found],
                        ensure_ascii=False, indent=2))
        return
    rows = [("TYPE", "PHONE ID", "NAME", "NUMBER")] + [
        (kind, str(channel.get("id", "")), str(channel.get("name") or ""),
         str(channel.get("phone_number") or "")) for kind, channel in found]
    _print_table(rows)


@cli.command()
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")
@_guarded
def stages(config_path: Path, as_json: bool) -> None:
    """List the account's pipelines and stages with their IDs.

    The stage IDs go in [defaults] stage_id or in a stage column. Needs VAMBE_API_KEY.
    """
    import json

    pipelines = list_stages(_config_for_the_key(config_path), api_key=_api_key())
    if as_json:
        _say(json.dumps([
            {"id": p.id, "name": p.name,
             "stages": [{"id": stage.id, "name": stage.name} for stage in p.stages]}
            for p in pipelines
        ], ensure_ascii=False, indent=2))
        return
    rows = [("PIPELINE", "STAGE", "STAGE ID")] + [
        (pipeline.name, stage.name, stage.id) for pipeline in pipelines for stage in pipeline.stages
    ]
    _print_table(rows)


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell, two spaces apart; the last one unpadded."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        # (widths has no entry for the last column, which is not padded)
        _say("  ".join([cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
                       + [row[-1]]))


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, type=int, help="Port to listen on.")
@click.option("--api-key", default=None, help="The key clients must send (default: sandbox-key).")
@click.option("--rate-limit", type=float, default=None,
              help="Requests allowed in any 1-second window; more are answered 429.")
@click.option("--latency", type=float, default=0.0, show_default=True,
              help="Seconds added before answering each ticket request.")
@click.option("--throttle", type=float, default=0.0, show_default=True,
              help="Fraction of ticket requests answered 429 without processing.")
@click.option("--fail-503", type=float, default=0.0, show_default=True,
              help="Fraction of ticket requests answered 503 without processing.")
@click.option("--fail-500", type=float, default=0.0, show_default=True,
              help="Fraction processed, then answered 500 (outcome unknown to the client).")
@click.option("--drop", type=float, default=0.0, show_default=True,
              help="Fraction processed, then the connection dropped mid-answer.")
@click.option("--fail-500-unprocessed", type=float, default=0.0, show_default=True,
              help="Fraction answered 500 without processing (reconcile finds no contact).")
@click.option("--open-ticket", "open_tickets", multiple=True, metavar="PHONE",
              help="A contact with an open ticket, before any run (repeat for more).")
@click.option("--throttle-first", type=click.IntRange(min=0), default=0, show_default=True,
              help="Answer the first N ticket requests 429 without processing.")
@click.option("--retry-after", default=None,
              help="The Retry-After header of 429 and 503 answers, sent as given.")
@click.option("--trickle", type=float, default=0.0, show_default=True,
              help="Answer tickets one byte every S seconds.")
@click.option("--huge-body", type=click.IntRange(min=0), default=0, show_default=True,
              help="Answer tickets 200 with a body of N bytes.")
@click.option("--gzip-bomb", type=click.IntRange(min=0), default=0, show_default=True,
              help="Answer tickets 200 with a gzip body that expands to N bytes.")
@click.option("--broken-gzip", is_flag=True, help="Answer tickets 200 saying gzip, but plain.")
@click.option("--echo-key", is_flag=True,
              help="Echo the key received in 401 answers, and answer tickets 400 echoing it.")
@click.option("--error-message", default=None,
              help="The message of every error answer, sent as given.")
@click.option("--clock-offset", type=float, default=0.0, show_default=True, metavar="SECONDS",
              help="The account's clock, this far off this machine's (its timestamps and"
                   " Date headers).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the fault draws, so a run can be reproduced.")
def sandbox(host: str, port: int, api_key: str | None, rate_limit: float | None, latency: float,
            throttle: float, fail_503: float, fail_500: float, drop: float,
            fail_500_unprocessed: float, open_tickets: tuple[str, ...], throttle_first: int,
            retry_after: str | None, trickle: float, huge_body: int, gzip_bomb: int,
            broken_gzip: bool, echo_key: bool, error_message: str | None, clock_offset: float,
            seed: int) -> None:
    """Serve the sandbox API: Vambe's endpoints in memory, for demos and tests."""
    from .sandbox import (
        DEFAULT_API_KEY,
        DEFAULT_PHONE_ID,
        DEFAULT_WEB_PHONE_ID,
        PIPELINES,
        Faults,
        SandboxServer,
        SandboxState,
    )

    faults = Faults(rate_limit=rate_limit, latency=latency, throttle=throttle, fail_503=fail_503,
                    fail_500=fail_500, drop=drop, fail_500_unprocessed=fail_500_unprocessed,
                    throttle_first=throttle_first,
                    retry_after=retry_after, trickle=trickle, huge_body=huge_body,
                    gzip_bomb=gzip_bomb, broken_gzip=broken_gzip, echo_key=echo_key,
                    error_message=error_message, clock_offset=clock_offset, seed=seed)
    state = SandboxState(api_key=api_key or DEFAULT_API_KEY, faults=faults)
    for phone in open_tickets:
        state.seed_contact(phone, open_ticket_stage=PIPELINES[0]["stages"][0]["id"])
    try:
        server = SandboxServer(state, host=host, port=port)
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error.strerror}") from None
    from .config import is_this_machine

    reachable = server.url
    if host in ("0.0.0.0", "::", ""):  # every address: this machine's own is one of them
        reachable = f"http://127.0.0.1:{server.port}"
    if not is_this_machine(host):
        _say(f"Warning: the sandbox listens on {host}, beyond this machine: anyone who can"
             f" reach it can use it with its key ({state.api_key!r} is known to all), read"
             " what it received and fill it with tickets. Use --host 127.0.0.1 unless you"
             " mean it.", err=True)
    _say(f"Sandbox API on {server.url} (phone ID {DEFAULT_PHONE_ID}, WhatsApp Web phone ID"
               f" {DEFAULT_WEB_PHONE_ID});"
               f" set [api] base_url = \"{reachable}\" and"
               f" {API_KEY_VARIABLE}={state.api_key}. Ctrl-C stops it.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # uvicorn shuts down gracefully, then re-raises the Ctrl-C: the normal way out
    _say(f"Sandbox stopped: {len(state.tickets)} tickets for {len(state.contacts)} contacts.")


def main() -> None:
    cli(prog_name="vambe-import")
