"""A local stand-in for Vambe's public API, for tests and demos: no account, no network."""

from .app import (
    DEFAULT_API_KEY,
    DEFAULT_PHONE_ID,
    DEFAULT_WEB_PHONE_ID,
    PIPELINES,
    Faults,
    Received,
    SandboxState,
)
from .server import SandboxServer

__all__ = ["DEFAULT_API_KEY", "DEFAULT_PHONE_ID", "DEFAULT_WEB_PHONE_ID", "PIPELINES", "Faults",
           "Received", "SandboxServer", "SandboxState"]
