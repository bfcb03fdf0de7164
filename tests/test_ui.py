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
            answer = client.get(f"/?token={server.session.token}")
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
