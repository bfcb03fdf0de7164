"""A uvicorn server on a socket of its own, in a background thread: the sandbox API and the
local page are served the same way."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn


def serve_in_thread(server: uvicorn.Server, listening: socket.socket,
                    what: str) -> threading.Thread:
    """Start ``server`` on ``listening`` in a daemon thread; return once it accepts
    connections (or fail within 10 s, naming ``what``)."""
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{what} did not start within 10 s")
        time.sleep(0.01)
    return thread
