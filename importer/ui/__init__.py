"""``vambe-import ui``: a local page for the whole path, on the same core as the CLI.

File, mapping, check, pilot, send, result: each step calls the library (``starter_config``,
``validate_file``, ``run_import``, ``reconcile_folder``, the config model) and shows its
statuses, codes and messages as they are. The server is Starlette on uvicorn, its pages
rendered here from templates (no build step, no CDN; the one script, the live progress, is
in the package). Every request needs the one-time token the command prints (a cookie after
the first); Host and Origin are checked, so neither another local user nor a web page in the
same browser can drive it. The API key stays in this process's memory.
"""

from .app import UiServer, create_app

__all__ = ["UiServer", "create_app"]
