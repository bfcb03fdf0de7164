"""The local page's server: routes, the session, and the runs it starts in threads."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import os
import secrets
import shutil
import socket
import stat
import tempfile
import threading
import time
import tomllib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from importer.codes import RowStatus
from importer.config import Config, load_config
from importer.exceptions import ImporterError
from importer.job import StopSwitch, list_stages, read_opt_outs, run_import, validate_file
from importer.journal import read_journal
from importer.plan import Plan, checked_groups
from importer.read import open_table
from importer.report import RowResult, Summary
from importer.serving import serve_in_thread
from importer.starter import starter_config
from importer.timing import duration_text
from importer.validate import StageResolver, Validator

from .mapping import Mapping, merged_config

HERE = Path(__file__).parent
MAX_UPLOAD_BYTES = 50 << 20  # a CSV of a million rows is about 100 MB: use a path for those
COOKIE = "vambe_import_ui"
SANDBOX_LEDGER = "sandbox-ledger.sqlite"
PREVIEW_VALUES = 3  # first values shown beside each header


@dataclass
class Job:
    """One run, pilot, resume or reconcile, in its own thread."""

    kind: str
    out: Path
    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    # When the last rows were sent: the rate shown (a run of a million rows keeps 256).
    sent_times: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    notes: list[str] = field(default_factory=list)
    plan: Plan | None = None
    decided: threading.Event = field(default_factory=threading.Event)
    go: bool = False
    stop: StopSwitch = field(default_factory=StopSwitch)
    summary: Summary | None = None
    error: str | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def on_result(self, result: RowResult) -> None:
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        if result.status == RowStatus.SENT:
            self.sent_times.append(time.monotonic())

    def confirm(self, plan: Plan) -> bool:
        """The plan waits for the person's answer on the Send page (Send all or Back)."""
        self.plan = plan
        self.total = plan.rows
        self.decided.wait()
        return self.go

    def progress(self) -> dict[str, Any]:
        done = sum(self.counts.values())
        now = time.monotonic()
        recent = [moment for moment in self.sent_times if moment > now - 10]
        rate = len(recent) / 10 if recent else 0.0
        left = max(0, self.total - done)
        return {"done": done, "total": self.total,
                "sent": self.counts.get(RowStatus.SENT, 0),
                "failed": self.counts.get(RowStatus.FAILED, 0),
                "unknown": self.counts.get(RowStatus.UNKNOWN, 0),
                "rate": round(rate, 2),
                "eta": duration_text(left / rate) if rate and left else "",
                "finished": self.finished.is_set(), "error": self.error,
                "notes": list(self.notes)}


@dataclass
class Session:
    """The one person's work: their file, config, key and runs (in memory only)."""

    token: str  # the printed address's; emptied once used
    workdir: Path
    cookie: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    api_key: str | None = None
    file: Path | None = None
    sheet: str | None = None
    sandbox: bool = False
    config_path: Path | None = None
    out: Path | None = None
    job: Job | None = None
    sandbox_server: Any = None
    closing: bool = False  # the server is stopping: live streams end

    def stop_job(self) -> None:
        """Stop the run going on as Ctrl-C stops one (a plan waiting for its answer is
        declined); the server's shutdown calls it first."""
        self.closing = True
        if self.job is not None and not self.job.finished.is_set():
            self.job.stop.request()
            self.job.decided.set()


class UiError(Exception):
    """A problem to show on the page, as one line."""


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["number"] = lambda value: f"{value:,}"
    return env


def create_app(session: Session, *, host: str, port: int) -> Starlette:
    """The page's application for one session, served at ``host:port``."""
    templates = _templates()
    allowed_hosts = {f"{host}:{port}", f"127.0.0.1:{port}", f"localhost:{port}"}
    cookie_name = f"{COOKIE}_{port}"
    script = (HERE / "static" / "progress.js").read_text(encoding="utf-8")

    def page(name: str, request: Request, status: int = 200, **values: Any) -> HTMLResponse:
        values.setdefault("error", None)
        text = templates.get_template(name).render(session=session, request=request,
                                                    **values)
        return HTMLResponse(text, status_code=status)

    def failed(name: str, request: Request, error: Exception, **values: Any) -> HTMLResponse:
        return page(name, request, 400, error=str(error), **values)

    # ------------------------------------------------------------ guards

    def guard(endpoint: Callable) -> Callable:
        async def guarded(request: Request) -> Response:
            if request.headers.get("host", "") not in allowed_hosts:
                return PlainTextResponse("forbidden: unknown host", 403)
            given = request.query_params.get("token")
            if (given is not None and session.token
                    and secrets.compare_digest(given, session.token)):
                # One time: the address printed works once; the browser keeps a cookie of
                # its own (named after the port: two pages on two ports keep theirs).
                session.token = ""
                response = RedirectResponse(request.url.path, 303)
                response.set_cookie(cookie_name, session.cookie, httponly=True,
                                    samesite="strict")
                return response
            cookie = request.cookies.get(cookie_name, "")
            if not secrets.compare_digest(cookie, session.cookie):
                return PlainTextResponse("forbidden: open the address vambe-import ui printed",
                                         403)
            if request.method == "POST":
                origin = request.headers.get("origin") or ""
                address = origin.removeprefix("http://").removeprefix("https://")
                if address == origin or address not in allowed_hosts:
                    return PlainTextResponse("forbidden: request from another site", 403)
            try:
                return await endpoint(request)
            except (UiError, ImporterError) as error:
                return PlainTextResponse(f"Error: {error}", 400)
        return guarded

    # ------------------------------------------------------------ 1. file

    async def file_page(request: Request) -> Response:
        sheets = _sheets(session.file) if session.file else []
        return page("file.html", request, sheets=sheets,
                    key_from_env=bool(os.environ.get("VAMBE_API_KEY", "").strip()))

    async def upload(request: Request) -> Response:
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_UPLOAD_BYTES + 4096:
            return failed("file.html", request, UiError(
                f"the file is larger than {MAX_UPLOAD_BYTES >> 20} MB: type its path instead"),
                sheets=[], key_from_env=False)
        form = await request.form(max_part_size=MAX_UPLOAD_BYTES)
        upload = form.get("upload")
        if upload is None or isinstance(upload, str) or not upload.filename:
            return failed("file.html", request, UiError("choose a CSV or XLSX file first"),
                          sheets=[], key_from_env=False)
        name = Path(upload.filename).name
        if Path(name).suffix.lower() not in (".csv", ".xlsx", ".txt", ".tsv"):
            return failed("file.html", request, UiError(f"{name}: not a CSV or XLSX file"),
                          sheets=[], key_from_env=False)
        target = session.workdir / name
        with target.open("wb") as handle:
            os.chmod(target, 0o600)
            while chunk := await upload.read(1 << 20):
                handle.write(chunk)
                if handle.tell() > MAX_UPLOAD_BYTES:
                    handle.close()
                    target.unlink()
                    return failed("file.html", request, UiError(
                        f"the file is larger than {MAX_UPLOAD_BYTES >> 20} MB: type its path"
                        " instead"), sheets=[], key_from_env=False)
        _choose_file(session, target)
        return RedirectResponse("/file", 303)

    async def choose_path(request: Request) -> Response:
        form = await request.form()
        try:
            path = _allowed_path(str(form.get("path", "")))
            _choose_file(session, path)
        except UiError as error:
            return failed("file.html", request, error, sheets=[], key_from_env=False)
        return RedirectResponse("/file", 303)

    async def file_next(request: Request) -> Response:
        form = await request.form()
        if session.file is None:
            return failed("file.html", request, UiError("choose a file first"), sheets=[],
                          key_from_env=False)
        session.sheet = str(form.get("sheet") or "") or None
        sandbox = form.get("sandbox") == "on"
        if sandbox != session.sandbox:
            session.out = None  # a sandbox run's folder is never a real run's, nor back
        session.sandbox = sandbox
        key = str(form.get("api_key") or "").strip()
        if key:
            session.api_key = key  # memory only: never written, never sent back
        return RedirectResponse("/mapping", 303)

    # ------------------------------------------------------------ 2. mapping

    async def mapping_page(request: Request) -> Response:
        if session.file is None:
            return RedirectResponse("/file", 303)
        try:
            table, sample = _sample(session)
        except ImporterError as error:
            return failed("file.html", request, error, sheets=[], key_from_env=False)
        original, problem = _starting_toml(session, table)
        return await _mapping_view(request, Mapping.from_toml(original), table.headers, sample,
                                   toml=merged_config(original, Mapping.from_toml(original)),
                                   error=problem)

    async def mapping_post(request: Request) -> Response:
        if session.file is None:
            return RedirectResponse("/file", 303)
        form = await request.form()
        table, sample = _sample(session)
        mapping = Mapping.from_form({key: str(value) for key, value in form.items()})
        original, _ = _starting_toml(session, table)
        path = _config_path(session)
        # Checked before it replaces the saved one: a config that does not load is shown
        # with its error, and the one saved before stays as it was.
        staging = path.with_name(f".{path.name}.new")
        try:
            text = merged_config(original, mapping)
            staging.write_text(text, encoding="utf-8")
            config = load_config(staging)
            config.check_columns(list(table.headers), table.path.name)
        except (ImporterError, ValueError) as error:
            staging.unlink(missing_ok=True)
            return await _mapping_view(request, mapping, table.headers, sample,
                                       toml=None, status=400,
                                       error=str(error).replace(staging.name, path.name))
        os.replace(staging, path)
        session.config_path = path
        if form.get("action") == "next":
            return RedirectResponse("/check", 303)
        return await _mapping_view(request, mapping, table.headers, sample, toml=text,
                                   warning=config.api.plain_http_warning)

    async def _mapping_view(request: Request, mapping: Mapping, headers: tuple[str, ...],
                            sample: list[tuple[str, ...]], *, toml: str | None,
                            error: str | None = None, warning: str | None = None,
                            status: int = 200) -> Response:
        columns = [(header, [row[index] for row in sample[:PREVIEW_VALUES] if index < len(row)])
                   for index, header in enumerate(headers)]
        body = None
        # The library's calls run their own event loop: in a worker thread, not this one.
        if error is None and session.config_path is not None:
            body = await asyncio.to_thread(_first_request, session)
        stages = await asyncio.to_thread(_stages, session)
        return page("mapping.html", request, status, mapping=mapping, columns=columns,
                    toml=toml, body=body, error=error, warning=warning, stages=stages,
                    saved=session.config_path)

    # ------------------------------------------------------------ 3. check

    async def check_page(request: Request) -> Response:
        if session.config_path is None:
            return RedirectResponse("/mapping", 303)
        assert session.file is not None
        out = session.workdir / "check"
        shutil.rmtree(out, ignore_errors=True)
        try:
            summary = await asyncio.to_thread(
                validate_file, session.file, _config(session), out_dir=out,
                sheet=session.sheet, api_key=_key(session),
                **({"ledger_path": _sandbox_ledger(session)} if session.sandbox else {}))
        except ImporterError as error:
            return failed("mapping_error.html", request, error)
        rows = _rows_not_sent(out)
        try:
            page_number = max(1, int(request.query_params.get("page", "1") or 1))
        except ValueError:
            page_number = 1
        per_page = 20
        shown = rows[(page_number - 1) * per_page:page_number * per_page]
        return page("check.html", request, summary=summary, rows=shown, page=page_number,
                    pages=max(1, math.ceil(len(rows) / per_page)),
                    bodies=[json.dumps(body, ensure_ascii=False, indent=2)
                            for body in summary.preview],
                    duration=(duration_text(summary.estimated_seconds)
                              if summary.estimated_seconds else None))

    # ------------------------------------------------------------ 4. pilot, 5. send

    async def pilot_page(request: Request) -> Response:
        return page("pilot.html", request)

    async def pilot_post(request: Request) -> Response:
        form = await request.form()
        try:
            count = int(str(form.get("rows") or "10"))
        except ValueError:
            count = 0
        if not 1 <= count <= 1000:
            return failed("pilot.html", request, UiError("a pilot sends 1 to 1,000 rows"))
        _start(session, "pilot", limit=count)
        return RedirectResponse("/progress", 303)

    async def send_page(request: Request) -> Response:
        """The plan being made or waiting for its answer; else the button that makes it
        (a POST: a GET changes nothing)."""
        job = session.job
        if job is None or job.kind != "send" or job.decided.is_set():
            return page("send.html", request, job=None)
        return page("send.html", request, job=job)

    async def send_plan(request: Request) -> Response:
        job = session.job
        if job is None or job.finished.is_set() or job.kind != "send":
            _start(session, "send")
        return RedirectResponse("/send", 303)

    async def send_confirm(request: Request) -> Response:
        form = await request.form()
        job = session.job
        if job is None or job.plan is None or job.decided.is_set():
            return RedirectResponse("/send", 303)
        job.go = form.get("action") == "send"
        job.decided.set()
        return RedirectResponse("/progress" if job.go else "/check", 303)

    async def progress_page(request: Request) -> Response:
        if session.job is None:
            return RedirectResponse("/file", 303)
        return page("progress.html", request, job=session.job,
                    state=session.job.progress())

    async def events(request: Request) -> Response:
        job = session.job
        if job is None:
            return PlainTextResponse("no run", 404)

        async def stream() -> AsyncIterator[str]:
            # Bounded: ends when the run does (or the page goes away), at most 2 a second.
            while True:
                state = job.progress()
                yield f"data: {json.dumps(state)}\n\n"
                if (state["finished"] or session.closing
                        or await request.is_disconnected()):
                    return
                await asyncio.sleep(0.5)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    async def stop(request: Request) -> Response:
        if session.job is not None:
            session.job.stop.request()
            session.job.decided.set()  # a plan still waiting for its answer: declined
        return RedirectResponse("/progress", 303)

    async def progress_script(request: Request) -> Response:
        return Response(script, media_type="text/javascript")

    # ------------------------------------------------------------ 6. result

    async def result_page(request: Request) -> Response:
        out = session.out
        if out is None or not (out / "summary.json").exists():
            return RedirectResponse("/file", 303)
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        settleable = sum(summary.get(name, 0) for name in ("failed", "unknown", "skipped"))
        return page("result.html", request, out=out, summary=summary,
                    settleable=settleable, unknown=summary.get("unknown", 0),
                    xlsx=(out / "errors.xlsx").exists(),
                    can_act=session.config_path is not None and session.file is not None,
                    notes=session.job.notes if session.job is not None else [],
                    after_pilot=session.job is not None and session.job.kind == "pilot"
                    and session.job.out == out and settleable > 0)

    async def report_file(request: Request) -> Response:
        out = session.out
        if out is None or not (out / "report.html").exists():
            return PlainTextResponse("no report", 404)
        return FileResponse(out / "report.html", media_type="text/html")

    async def download(request: Request) -> Response:
        name = request.path_params["name"]
        out = session.out
        if name not in ("results.csv", "errors.csv", "errors.xlsx") or out is None \
                or not (out / name).exists():
            return PlainTextResponse("not found", 404)
        return FileResponse(out / name, filename=name)

    async def resume(request: Request) -> Response:
        _start(session, "resume")
        return RedirectResponse("/progress", 303)

    async def reconcile(request: Request) -> Response:
        _start(session, "reconcile")
        return RedirectResponse("/progress", 303)

    async def runs_page(request: Request) -> Response:
        known = await asyncio.to_thread(_known_runs, session)
        return page("runs.html", request, runs=known)

    async def open_run(request: Request) -> Response:
        form = await request.form()
        chosen = Path(str(form.get("folder", "")))
        known = await asyncio.to_thread(_known_runs, session)
        if chosen not in [run.folder for run in known]:
            return PlainTextResponse("not a run this machine's ledger knows", 404)
        session.out = chosen
        return RedirectResponse("/result", 303)

    async def home(request: Request) -> Response:
        return RedirectResponse("/file", 303)

    routes = [
        Route("/", guard(home)),
        Route("/file", guard(file_page)),
        Route("/file/upload", guard(upload), methods=["POST"]),
        Route("/file/path", guard(choose_path), methods=["POST"]),
        Route("/file/next", guard(file_next), methods=["POST"]),
        Route("/mapping", guard(mapping_page)),
        Route("/mapping", guard(mapping_post), methods=["POST"]),
        Route("/check", guard(check_page)),
        Route("/pilot", guard(pilot_page)),
        Route("/pilot", guard(pilot_post), methods=["POST"]),
        Route("/send", guard(send_page)),
        Route("/send", guard(send_confirm), methods=["POST"]),
        Route("/send/plan", guard(send_plan), methods=["POST"]),
        Route("/progress", guard(progress_page)),
        Route("/events", guard(events)),
        Route("/stop", guard(stop), methods=["POST"]),
        Route("/static/progress.js", guard(progress_script)),
        Route("/result", guard(result_page)),
        Route("/result/report.html", guard(report_file)),
        Route("/download/{name}", guard(download)),
        Route("/resume", guard(resume), methods=["POST"]),
        Route("/reconcile", guard(reconcile), methods=["POST"]),
        Route("/runs", guard(runs_page)),
        Route("/runs", guard(open_run), methods=["POST"]),
    ]
    return Starlette(routes=routes)


# ---------------------------------------------------------------- the steps' work


def _choose_file(session: Session, path: Path) -> None:
    open_table(path)  # refuses what the CLI refuses, in its words
    session.file = path
    session.sheet = None
    session.config_path = None
    session.out = None


def _allowed_path(text: str) -> Path:
    """A typed path: a regular file inside the user's home or the working folder."""
    if not text.strip():
        raise UiError("type the path of a CSV or XLSX file")
    path = Path(text.strip()).expanduser()
    try:
        resolved = path.resolve(strict=True)
        found = resolved.stat()
    except OSError:
        raise UiError(f"{path}: input file not found") from None
    roots = [Path.home().resolve(), Path.cwd().resolve()]
    if not any(resolved.is_relative_to(root) for root in roots):
        raise UiError(f"{path}: outside your home and working folders; copy it there or"
                      " upload it")
    if not stat.S_ISREG(found.st_mode):
        raise UiError(f"{path}: not a regular file (a FIFO, a device or a folder)")
    return resolved


def _sheets(path: Path) -> list[str]:
    if path.suffix.lower() != ".xlsx":
        return []
    from importer.sheet import load

    book = load(path)
    try:
        return list(book.sheets)
    finally:
        book.close()


def _sample(session: Session) -> tuple[Any, list[tuple[str, ...]]]:
    assert session.file is not None
    table = open_table(session.file, sheet=session.sheet)
    sample = []
    for row in table.rows():
        sample.append(row.cells)
        if len(sample) == 20:
            break
    return table, sample


def _starting_toml(session: Session, table: Any) -> tuple[str, str | None]:
    """The config saved earlier for this file, else init's guesses; with the reason when
    the saved one cannot be read (then init's guesses, and the file is left as it is)."""
    path = _config_path(session)
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            tomllib.loads(text)
            return text, None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            return starter_config(table).text, (f"{path.name} cannot be read ({error}): these"
                                                " are init's guesses; Next replaces it")
    return starter_config(table).text, None


def _config_path(session: Session) -> Path:
    """Next to the file; for an upload (in the page's private folder, which goes when it
    stops), in the working folder."""
    assert session.file is not None
    folder = Path.cwd() if session.file.parent == session.workdir else session.file.parent
    return folder / f"{session.file.stem}.vambe.toml"


def _config(session: Session) -> Config:
    """The saved config, pointed at this page's sandbox when the switch is on."""
    assert session.config_path is not None
    config = load_config(session.config_path)
    if not session.sandbox:
        return config
    if session.sandbox_server is None:
        from importer.sandbox import (
            DEFAULT_PHONE_ID,
            DEFAULT_WEB_PHONE_ID,
            SandboxServer,
            SandboxState,
        )

        session.sandbox_server = SandboxServer(SandboxState(
            phone_ids=(config.api.phone_id, DEFAULT_PHONE_ID),
            web_phone_ids=(config.api.phone_id, DEFAULT_WEB_PHONE_ID))).start()
    api = config.api.model_copy(update={"base_url": session.sandbox_server.url})
    return config.model_copy(update={"api": api})


def _key(session: Session) -> str | None:
    if session.sandbox:
        from importer.sandbox import DEFAULT_API_KEY

        return DEFAULT_API_KEY
    return session.api_key or os.environ.get("VAMBE_API_KEY", "").strip() or None


def _sandbox_ledger(session: Session) -> Path:
    return session.workdir / SANDBOX_LEDGER


def _stages(session: Session) -> list[tuple[str, str]]:
    """(id, "Pipeline / Stage") of the account's stages, when a key (or the sandbox) says."""
    key = _key(session)
    if key is None or session.config_path is None:
        return []
    try:
        pipelines = list_stages(_config(session), api_key=key)
    except ImporterError:
        return []
    return [(stage.id, f"{pipeline.name} / {stage.name}") for pipeline in pipelines
            for stage in pipeline.stages]


def _first_request(session: Session) -> str | None:
    """The exact body the first valid row would send, as validate previews it: the plan's
    own checks, read only as far as that row (not the whole file at every preview)."""
    assert session.file is not None
    try:
        config = _config(session)
        table = open_table(session.file, sheet=session.sheet or config.input.sheet,
                           encoding=config.input.encoding, delimiter=config.input.delimiter)
        validator = Validator(config, StageResolver(None), read_opt_outs(config))
        for group in checked_groups(table, config, validator):
            for _, checked in group:
                if checked.request is not None:
                    return json.dumps(checked.request.body, ensure_ascii=False, indent=2)
    except ImporterError as error:
        return f"(no request: {error})"
    return "(no valid row)"


@dataclass
class KnownRun:
    """An output folder on the Runs page: from the ledger, and its own summary.json."""

    folder: Path
    requests: int
    sent: int
    unknown: int
    last: str
    counts: dict[str, Any]

    @property
    def state(self) -> str:
        if not self.counts:
            return "no reports (stopped at once, or killed: Resume finishes it)"
        left = sum(self.counts.get(name, 0) for name in ("failed", "unknown", "skipped"))
        return f"{left:,} rows left to settle" if left else "finished"


def _known_runs(session: Session) -> list[KnownRun]:
    """The output folders this machine's ledger (and this page's sandbox ledger) recorded,
    the latest first."""
    from importer.ledger import Ledger, Policy, default_ledger_path, ledger_location

    locations = []
    try:
        config = load_config(session.config_path) if session.config_path else None
        locations.append(ledger_location(config) if config else default_ledger_path())
    except ImporterError:
        pass
    if (session.workdir / SANDBOX_LEDGER).exists():
        locations.append(session.workdir / SANDBOX_LEDGER)
    found: list[KnownRun] = []
    for location in locations:
        try:
            ledger = Ledger.peek(location, target="", folder=session.workdir, policy=Policy())
        except ImporterError:
            continue
        if ledger is None:
            continue
        try:
            for activity in ledger.folders():
                folder = Path(activity.folder)
                summary = folder / "summary.json"
                counts = (json.loads(summary.read_text(encoding="utf-8"))
                          if summary.exists() else {})
                found.append(KnownRun(folder, activity.requests, activity.sent,
                                      activity.unknown,
                                      time.strftime("%Y-%m-%d %H:%M",
                                                    time.localtime(float(activity.last))),
                                      counts))
        finally:
            ledger.close()
    return found


def _rows_not_sent(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(encoding="utf-8-sig", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["status"] != "valid"]


def _start(session: Session, kind: str, *, limit: int | None = None) -> None:
    """Start a run (pilot, send, resume) or a reconcile in a thread, as the CLI would."""
    if session.job is not None and not session.job.finished.is_set():
        raise UiError("a run is going on: stop it first")
    if session.config_path is None or session.file is None:
        raise UiError("choose a file and its mapping first")
    config = _config(session)
    key = _key(session)
    if key is None:
        raise UiError("VAMBE_API_KEY is not set: type your API key on the first step (or use"
                      " the sandbox)")
    # Next to the file (an upload's: in the working folder, since the page's private
    # folder goes when it stops); a sandbox run, which sends nowhere, in that folder.
    folder = session.file.parent
    if session.sandbox:
        folder = session.workdir
    elif folder == session.workdir:
        folder = Path.cwd()
    out = session.out or folder / f"{session.file.stem}-import"
    found = read_journal(out) if (out / "journal.sqlite").exists() else None
    started = found is not None and found.started  # (a plan declined is no run)
    job = Job(kind, out)
    if kind != "send":  # the button was the confirmation: the plan is only counted
        job.go = True
        job.decided.set()
    session.job = job
    session.out = out
    options: dict[str, Any] = {"ledger_path": _sandbox_ledger(session),
                               "account": "sandbox"} if session.sandbox else {}

    file = session.file

    def work() -> None:
        try:
            if kind == "reconcile":
                from importer.reconcile import reconcile_folder

                job.summary = reconcile_folder(out, config, api_key=key, **options)
            else:
                job.summary = run_import(
                    file, config, api_key=key, out_dir=out, sheet=session.sheet,
                    resume=started, limit=limit, handle_signals=False,
                    confirm=job.confirm, interactive=kind == "send",
                    on_result=job.on_result, on_note=job.notes.append,
                    stop_switch=job.stop, reconcile=kind == "resume" and started, **options)
        except ImporterError as error:
            job.error = str(error)
        except Exception as error:  # noqa: BLE001 - a bug: one line on the page, not a hang
            job.error = f"unexpected error: {type(error).__name__}: {error}"
        finally:
            job.decided.set()
            job.finished.set()

    threading.Thread(target=work, name=f"ui-{kind}", daemon=True).start()


# ---------------------------------------------------------------- the server


class _Server(uvicorn.Server):
    """uvicorn, stopping the run going on at the first Ctrl-C: it would otherwise wait for
    the live progress streams, which end only with the run."""

    def __init__(self, config: uvicorn.Config, *, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: Any) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


class UiServer:
    """The page served by uvicorn on ``host:port`` in a thread (tests) or the caller's."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="vambe-import-ui-"))
        os.chmod(self.workdir, 0o700)
        self.token = secrets.token_urlsafe(24)
        self.session = Session(self.token, self.workdir, api_key=api_key)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        app = create_app(self.session, host=host, port=self.port)
        self._server = _Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                              lifespan="off", timeout_graceful_shutdown=5),
                               on_exit=self.session.stop_job)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The address to open, with the one-time token."""
        return f"http://{self.host}:{self.port}/?token={self.token}"

    def start(self) -> UiServer:
        self._thread = serve_in_thread(self._server, self._socket, "the page's server")
        return self

    def serve_forever(self) -> None:
        self._server.run(sockets=[self._socket])

    def stop(self) -> None:
        self.session.stop_job()
        job = self.session.job
        if job is not None:
            job.finished.wait(60)  # its reports are written
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
        if self.session.sandbox_server is not None:
            self.session.sandbox_server.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

