"""A throwaway PostgreSQL server for the team ledger's tests and benches: a cluster made by
the machine's own ``initdb``, started by ``pg_ctl`` on a free port of 127.0.0.1 in a
temporary folder (as the unprivileged ``postgres`` user when run as root, since PostgreSQL
refuses to run as root), with fsync off; stopped and deleted afterwards."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


class PostgresUnavailable(Exception):
    """No PostgreSQL server can be started here (no binaries, no user to run them)."""


def _binaries() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "pg_ctl").exists():
            return Path(folder)
    raise PostgresUnavailable("initdb and pg_ctl not found")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    def __init__(self, folder: Path, port: int, bin_dir: Path, user: str | None) -> None:
        self.folder, self.port, self._bin, self._user = folder, port, bin_dir, user
        self.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def _command(self, *args: str) -> list[str]:
        return (["runuser", "-u", self._user, "--"] if self._user else []) + list(args)

    @classmethod
    def start(cls) -> PostgresServer:
        bin_dir = _binaries()
        user = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root, with no postgres user") from None
            user = "postgres"
        folder = Path(tempfile.mkdtemp(prefix="vambe-pg-"))
        if user:
            shutil.chown(folder, user)
        server = cls(folder, _free_port(), bin_dir, user)
        try:
            server._run(str(bin_dir / "initdb"), "-D", str(folder / "data"), "-U", "postgres",
                        "-A", "trust", "-E", "UTF8", "--no-sync")
            server.restart()
        except (OSError, subprocess.CalledProcessError) as error:
            shutil.rmtree(folder, ignore_errors=True)
            raise PostgresUnavailable(f"the cluster did not start: {error}") from None
        return server

    def _run(self, *args: str) -> None:
        subprocess.run(self._command(*args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def restart(self) -> None:
        """Start (again) on the same port: a stopped team ledger comes back."""
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
                   " -c fsync=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self._bin / "pg_ctl"), "-D", str(self.folder / "data"), "-l",
                  str(self.folder / "log"), "-w", "-t", "60", "-o", options, "start")

    def stop(self, remove: bool = True) -> None:
        """Stop at once (``-m immediate``: as a crash or a power cut); ``remove`` deletes
        the cluster too."""
        subprocess.run(self._command(str(self._bin / "pg_ctl"), "-D", str(self.folder / "data"),
                                     "-m", "immediate", "-w", "stop"),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
                       check=False)
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"
