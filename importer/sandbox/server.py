"""Serve the sandbox API with uvicorn on a loopback port, in a background thread.

The same pattern as httpx's own test suite: a real server on a free port, so tests and the
``run --sandbox`` demo exercise real HTTP, connections and timeouts.
"""

from __future__ import annotations

import socket
import threading

import uvicorn

from importer.serving import serve_in_thread

from .app import SandboxState, create_app


class SandboxServer:
    """``with SandboxServer() as sandbox:`` serves ``sandbox.state`` at ``sandbox.url``."""

    def __init__(self, state: SandboxState | None = None, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.state = state or SandboxState()
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so,
        # and without it every keep-alive answer waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(create_app(self.state), log_level="critical",
                                access_log=False, lifespan="off", timeout_keep_alive=30,
                                date_header=False)  # the app's own, exact (app._Dated)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> SandboxServer:
        self._thread = serve_in_thread(self._server, self._socket, "the sandbox API")
        return self

    def stop(self) -> None:
        """Stop now: connections still open (a trickling answer) are not waited for."""
        self._server.should_exit = True
        self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def serve_forever(self) -> None:
        """Serve in the calling thread until Ctrl-C (the ``vambe-import sandbox`` command)."""
        self._server.run(sockets=[self._socket])

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
