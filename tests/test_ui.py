"""The local page's guards, over real HTTP: token, Host, Origin, uploads, paths, the key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

from importer.ui import UiServer
from importer.ui import app as ui_app

ROUTES_GET = ["/", "/file", "/mapping", "/check", "/pilot", "/send", "/progress", "/events",
              "/result", "/result/report.html", "/download/results.csv", "/runs",
              "/static/progress.js"]
ROUTES_POST = ["/file/upload", "/file/path", "/file/next", "/mapping", "/pilot", "/send",
               "/stop", "/resume", "/reconcile", "/runs"]
SECRET = "vk_live_page_secret_0123456789abcdef"


@pytest.fixture
def page_server(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VAMBE_API_KEY", raising=False)
    server = UiServer().start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def _client(server: UiServer, *, logged_in: bool = True) -> Iterator[httpx.Client]:
    base = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=base, follow_redirects=False, timeout=30,
                      headers={"origin": base}) as client:
        if logged_in:
            answer = client.get(f"/?token={server.token}")
            assert answer.status_code == 303
            assert "httponly" in answer.headers["set-cookie"].lower()
            assert "samesite=strict" in answer.headers["set-cookie"].lower()
        yield client


def test_every_route_wants_the_token(page_server):
    with _client(page_server, logged_in=False) as client:
        for route in ROUTES_GET:
            assert client.get(route).status_code == 403, route
        for route in ROUTES_POST:
            assert client.post(route).status_code == 403, route
        assert client.get("/?token=wrong").status_code == 403
        client.cookies.set("vambe_import_ui", "wrong")
        assert client.get("/file").status_code == 403


def test_another_host_or_origin_is_refused(page_server):
    """DNS rebinding (a page of another site resolving to 127.0.0.1) sends its own Host;
    a form posted from another site sends its Origin: both 403, token or not."""
    with _client(page_server) as client:
        assert client.get("/file").status_code == 200
        assert client.get("/file", headers={"host": "evil.example:80"}).status_code == 403
        assert client.post("/file/path", data={"path": "x"},
                           headers={"origin": "http://evil.example"}).status_code == 403
        bare = httpx.Client(base_url=str(client.base_url), cookies=client.cookies, timeout=30)
        with bare:
            assert bare.post("/file/path", data={"path": "x"}).status_code == 403  # no Origin


def test_an_upload_over_the_cap_is_one_clear_line(page_server, monkeypatch):
    monkeypatch.setattr(ui_app, "MAX_UPLOAD_BYTES", 1000)
    with _client(page_server) as client:
        answer = client.post("/file/upload",
                             files={"upload": ("grande.csv", b"Telefono\n" + b"1" * 5000)})
    assert answer.status_code == 400
    assert "Error: the file is larger than 0 MB: type its path instead" in answer.text
    assert list(page_server.workdir.iterdir()) == []  # nothing kept


def test_a_typed_path_outside_your_folders_or_to_a_fifo_is_refused(page_server, tmp_path):
    fifo = tmp_path / "tuberia.csv"
    os.mkfifo(fifo)
    with _client(page_server) as client:
        outside = client.post("/file/path", data={"path": "/etc/passwd"})
        assert outside.status_code == 400
        assert "/etc/passwd: outside your home and working folders" in outside.text
        piped = client.post("/file/path", data={"path": str(fifo)})
        assert piped.status_code == 400
        assert "not a regular file (a FIFO, a device or a folder)" in piped.text
        missing = client.post("/file/path", data={"path": str(tmp_path / "no.csv")})
        assert "input file not found" in missing.text


def test_the_key_typed_in_is_never_sent_back_nor_written(page_server, tmp_path):
    """The key typed on the first step goes through every step of a pilot to a sandbox that
    demands it: no page, no file anywhere under the working or private folders holds it."""
    from importer.sandbox import DEFAULT_PHONE_ID, SandboxServer, SandboxState

    source = tmp_path / "clientes.csv"
    source.write_text("Nombre,Telefono\nAna,+56987654321\nLuis,+56987654322\n",
                      encoding="utf-8")
    account = SandboxServer(SandboxState(api_key=SECRET, phone_ids=(DEFAULT_PHONE_ID,))).start()
    bodies: list[str] = []
    try:
        with _client(page_server) as client:
            def see(answer: httpx.Response) -> httpx.Response:
                bodies.append(answer.text)
                return answer

            see(client.post("/file/path", data={"path": str(source)}))
            see(client.post("/file/next", data={"api_key": SECRET}))
            mapping = see(client.get("/mapping"))
            assert mapping.status_code == 200
            form = {"base_url": account.url, "phone_id": DEFAULT_PHONE_ID, "rate": "20",
                    "phone": "Telefono", "name_first": "Nombre", "default_country": "CL",
                    "stage_id": "550e8400-e29b-41d4-a716-446655440000", "message": "none",
                    "action": "next"}
            assert see(client.post("/mapping", data=form)).status_code == 303
            assert see(client.get("/check")).status_code == 200
            assert see(client.post("/pilot", data={"rows": "1"})).status_code == 303
            page_server.session.job.finished.wait(60)
            for route in ("/progress", "/events", "/result", "/result/report.html",
                          "/download/results.csv", "/runs", "/file", "/mapping"):
                assert see(client.get(route)).status_code == 200, route
    finally:
        account.stop()
    assert len(account.state.tickets) == 1  # the key did reach the account
    assert not [body for body in bodies if SECRET in body]
    written = [path for root in (tmp_path, page_server.workdir) if root.exists()
               for path in root.rglob("*") if path.is_file()
               and SECRET.encode() in path.read_bytes()]
    assert written == []


def test_the_mapping_saves_exactly_what_the_cli_reads(page_server, tmp_path, invoke,
                                                      sandbox):
    """The config the page saves is the CLI's: `run --config` on it sends what the page's
    preview showed."""
    source = tmp_path / "clientes.csv"
    source.write_text("Nombre,Apellido,Telefono,Celular\nAna,Rojas,,+56987654321\n",
                      encoding="utf-8")
    with _client(page_server) as client:
        client.post("/file/path", data={"path": str(source)})
        client.post("/file/next", data={})
        form = {"base_url": sandbox.url, "phone_id": "123456789", "rate": "5",
                "phone": "Telefono", "phone_fallback": "Celular", "name_first": "Nombre",
                "name_last": "Apellido", "default_country": "cl",
                "stage_id": "550e8400-e29b-41d4-a716-446655440000", "message": "text",
                "content": "Hola {Nombre}", "contact_metadata": "apellido = Apellido",
                "action": "preview"}
        shown = client.post("/mapping", data=form)
    assert shown.status_code == 200, shown.text
    saved = tmp_path / "clientes.vambe.toml"
    assert saved.exists()
    assert '&#34;contact_name&#34;: &#34;Ana Rojas&#34;' in shown.text  # the preview
    result = invoke("run", source, "--config", saved)
    assert result.exit_code == 0, result.output
    [body] = sandbox.state.ticket_bodies()
    assert body["contact_name"] == "Ana Rojas"
    assert body["to_phone_number"] == "+56987654321"  # from the fallback column
    assert body["contact_metadata"] == {"apellido": "Rojas"}
    assert body["message"]["content"] == "Hola Ana"


def test_the_command_binds_to_loopback_and_warns_for_another_host(invoke, monkeypatch):
    """`ui --host 0.0.0.0` warns before serving (the serving itself is not run here)."""
    started: list[UiServer] = []

    def serve(self: UiServer) -> None:
        started.append(self)

    monkeypatch.setattr(UiServer, "serve_forever", serve)
    result = invoke("ui", "--host", "0.0.0.0", "--port", "0", "--no-browser", api_key=None)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("Warning: serving on 0.0.0.0:")
    assert started and started[0].host == "0.0.0.0"
    quiet = invoke("ui", "--port", "0", "--no-browser", api_key=None)
    assert quiet.stderr == "" and "http://127.0.0.1:" in quiet.stdout
    assert Path(started[-1].workdir).exists() is False  # its private folder is gone


def test_the_token_works_once_and_each_page_keeps_its_own_cookie(page_server, tmp_path):
    with _client(page_server) as client:
        assert client.get("/file").status_code == 200
    with _client(page_server, logged_in=False) as stranger:
        assert stranger.get(f"/?token={page_server.token}").status_code == 403  # used
    other = UiServer().start()
    try:
        with _client(page_server, logged_in=False) as first, _client(other) as second:
            assert second.get("/file").status_code == 200
            # The first page's cookie is not the second's (cookies ignore the port).
            first.cookies.update(second.cookies)
            assert first.get("/file").status_code == 403
    finally:
        other.stop()


def test_a_page_behind_tls_takes_its_https_origin(page_server):
    with _client(page_server) as client:
        base = f"127.0.0.1:{page_server.port}"
        answer = client.post("/file/path", data={"path": ""},
                             headers={"origin": f"https://{base}"})
        assert answer.status_code == 400  # past the guard: the empty path's own error
        assert "type the path of a CSV or XLSX file" in answer.text


def _mapped(client, source: Path, sandbox_url: str, **changes: str) -> httpx.Response:
    from importer.sandbox import DEFAULT_API_KEY

    client.post("/file/path", data={"path": str(source)})
    client.post("/file/next", data={"api_key": DEFAULT_API_KEY})
    form = {"base_url": sandbox_url, "phone_id": "123456789", "rate": "5",
            "phone": "Telefono", "name_first": "Nombre", "default_country": "CL",
            "stage_id": "550e8400-e29b-41d4-a716-446655440000", "message": "none",
            "action": "preview", **changes}
    return client.post("/mapping", data=form)


def test_saving_the_mapping_keeps_every_setting_the_form_does_not_show(page_server, tmp_path,
                                                                      sandbox):
    """Found by review: the page rewrote the config from its form, dropping a third phone
    column, a second opt-out list, the team ledger, weekdays, templates..."""
    source = tmp_path / "clientes.csv"
    source.write_text("Nombre,Telefono,Movil,Fijo\nAna,+56987654321,,\n", encoding="utf-8")
    for name in ("bajas-whatsapp.csv", "bajas-legal.csv"):
        (tmp_path / name).write_text("phone\n+56900000000\n", encoding="utf-8")
    (tmp_path / "clientes.vambe.toml").write_text(f"""
[api]
base_url = "{sandbox.url}"
phone_id = "123456789"
rate_limit_per_second = 5
daily_message_limit = 250
[columns]
phone = ["Telefono", "Movil", "Fijo"]
contact_name = "Sr(a). {{Nombre}}"
[defaults]
country = "CL"
stage_id = "550e8400-e29b-41d4-a716-446655440000"
[contact_metadata]
source = {{ value = "import-2026-12" }}
[dedupe]
exclude = ["bajas-whatsapp.csv", "bajas-legal.csv"]
skip_open_tickets = true
[schedule]
hours = "09:00-20:00"
days = ["mon", "tue", "wed", "thu", "fri"]
timezone = "America/Santiago"
""", encoding="utf-8")
    import tomllib

    before = tomllib.loads((tmp_path / "clientes.vambe.toml").read_text(encoding="utf-8"))
    with _client(page_server) as client:
        shown = client.get("/file")  # (the page reads the saved config as it is)
        assert shown.status_code == 200
        client.post("/file/path", data={"path": str(source)})
        client.post("/file/next", data={})
        page = client.get("/mapping")
        form = _form_of(page.text)
        form["rate"] = "3"  # the one change
        form["action"] = "preview"
        saved = client.post("/mapping", data=form)
    assert saved.status_code == 200, saved.text
    after = tomllib.loads((tmp_path / "clientes.vambe.toml").read_text(encoding="utf-8"))
    before["api"]["rate_limit_per_second"] = 3.0
    assert after == before


def _form_of(text: str) -> dict[str, str]:
    """The mapping form's fields as the browser would post them unchanged."""
    from html.parser import HTMLParser

    fields: dict[str, str] = {}

    class Form(HTMLParser):
        select: str | None = None
        area: str | None = None

        def handle_starttag(self, tag, attrs):
            found = dict(attrs)
            if tag == "input" and found.get("name") and found.get("type") != "file":
                fields[found["name"]] = found.get("value") or ""
            elif tag == "select":
                self.select = found.get("name")
                fields.setdefault(self.select or "", "")
            elif tag == "option" and self.select and "selected" in found:
                fields[self.select] = found.get("value") or ""
            elif tag == "textarea":
                self.area = found.get("name")
                fields[self.area or ""] = ""

        def handle_endtag(self, tag):
            if tag == "select":
                self.select = None
            elif tag == "textarea":
                self.area = None

        def handle_data(self, data):
            if self.area:
                fields[self.area] += data

    Form(convert_charrefs=True).feed(text)
    return fields


def test_a_character_toml_cannot_hold_is_one_line_and_the_saved_config_stays(
        page_server, tmp_path, sandbox):
    source = tmp_path / "clientes.csv"
    source.write_text("Nombre,Telefono\nAna,+56987654321\n", encoding="utf-8")
    with _client(page_server) as client:
        assert _mapped(client, source, sandbox.url).status_code == 200
        good = (tmp_path / "clientes.vambe.toml").read_text(encoding="utf-8")
        bad = _mapped(client, source, sandbox.url, message="text", content="Hola\x7f{Nombre}")
        assert bad.status_code == 200  # DEL written as \u007f: a valid config
        assert "\\u007f" in (tmp_path / "clientes.vambe.toml").read_text(encoding="utf-8")
        (tmp_path / "clientes.vambe.toml").write_text(good, encoding="utf-8")
        wrong = _mapped(client, source, sandbox.url, phone="No existe")
        assert wrong.status_code == 400
        assert (tmp_path / "clientes.vambe.toml").read_text(encoding="utf-8") == good
        (tmp_path / "clientes.vambe.toml").write_text("[api\nroto", encoding="utf-8")
        broken = client.get("/mapping")  # a config edited by hand into nonsense
        assert broken.status_code == 200
        assert "clientes.vambe.toml cannot be read" in broken.text


def test_a_plan_sent_back_is_no_run_and_get_never_plans(page_server, tmp_path, sandbox):
    """Found by review: after Back on the Send page the folder held a declined plan, and
    every later send from the page failed with "holds no run to resume"."""
    source = tmp_path / "clientes.csv"
    source.write_text("Nombre,Telefono\nAna,+56987654321\nLuis,+56987654322\n",
                      encoding="utf-8")
    with _client(page_server) as client:
        _mapped(client, source, sandbox.url, action="next")
        assert client.get("/send").status_code == 200
        assert page_server.session.job is None  # a GET plans nothing
        for answer in ("back", "send"):
            planned = client.post("/send/plan")
            assert planned.status_code == 303, planned.text
            job = page_server.session.job
            from .conftest import wait_until

            wait_until(lambda job=job: job.plan is not None or job.error is not None)
            assert job.error is None, job.error
            client.post("/send", data={"action": answer})
            job.finished.wait(60)
    assert job.summary is not None and job.summary.counts["sent"] == 2
    assert len(sandbox.state.tickets) == 2


def test_stopping_the_server_stops_the_run_even_with_progress_open(tmp_path, monkeypatch):
    """Found by review: Ctrl-C waited for the live progress stream, which ends only with
    the run: the run went on sending. The first Ctrl-C now stops the run as it stops `run`."""
    import signal
    import threading

    from importer.sandbox import SandboxServer, SandboxState

    monkeypatch.chdir(tmp_path)
    source = tmp_path / "clientes.csv"
    source.write_text("Nombre,Telefono\n" + "".join(
        f"C{n},+5698765{4321 + n}\n" for n in range(13)), encoding="utf-8")
    account = SandboxServer(SandboxState()).start()
    server = UiServer().start()
    try:
        with _client(server) as client:
            _mapped(client, source, account.url, rate="1", action="next")
            client.post("/pilot", data={"rows": "13"})
            job = server.session.job
            from .conftest import wait_until

            wait_until(lambda: job.counts.get("sent", 0) >= 1)
            streamed = threading.Event()

            def follow() -> None:
                with client.stream("GET", "/events") as events:
                    for _ in events.iter_lines():
                        streamed.set()

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            assert streamed.wait(30)
            server._server.handle_exit(signal.SIGINT, None)
            assert job.finished.wait(60)
            reader.join(30)
    finally:
        server.stop()
        account.stop()
    assert job.summary is not None and job.summary.interrupted
    assert job.summary.counts["skipped"] > 0
    assert len(account.state.tickets) < 13


def test_runs_lists_the_folders_this_machines_ledger_knows(page_server, tmp_path, invoke,
                                                           sandbox, write_config, write_csv):
    """A run made with the CLI is on the page's Runs (from the ledger), with its state, and
    opens at the result step."""
    from .conftest import people

    source = write_csv(people(3))
    assert invoke("run", source, "--config", write_config(sandbox.url), "--out",
                  "campana").exit_code == 0
    with _client(page_server) as client:
        runs = client.get("/runs")
        assert runs.status_code == 200
        assert str(tmp_path / "campana") in runs.text and "finished" in runs.text
        opened = client.post("/runs", data={"folder": str(tmp_path / "campana")})
        assert opened.status_code == 303 and opened.headers["location"] == "/result"
        result = client.get("/result")
        assert "<td>sent</td><td>3</td>" in result.text
        stranger = client.post("/runs", data={"folder": "/etc"})
        assert stranger.status_code == 404
