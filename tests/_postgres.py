"""A throwaway PostgreSQL server for the tests: a fresh cluster in a temporary directory,
listening on 127.0.0.1 at a free port, started on first use and always stopped (at the end of
the pytest session, or at interpreter exit as a backstop), its directory removed.

It is started from Debian's ``postgresql`` package (``.ci/run`` installs it). Without it the
PostgreSQL tests are skipped with the reason, unless ``TRIOBG_REQUIRE_POSTGRES=1`` (CI sets
it), which makes a missing server a failure instead. Each test gets a database of its own.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

REQUIRED = os.environ.get("TRIOBG_REQUIRE_POSTGRES") == "1"


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster for the test session.

    PostgreSQL refuses to run as root, so under root (CI) it runs as the ``postgres`` user,
    in a directory under ``/tmp`` that user owns.
    """

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.directory = Path(tempfile.mkdtemp(prefix="triobg-pg-"))
        self.port = _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._databases = itertools.count(1)
        self.started = False
        #: Off for the tests (the server itself is never crashed); benchmarks turn it on.
        self.fsync = False

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self._as, *args],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )

    def start(self) -> None:
        data = self.directory / "data"
        self._run(
            str(self.binaries / "initdb"),
            "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
            "--no-sync",
        )  # fmt: skip
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-k {self.directory}",  # the unix socket stays in our directory too
                "-c max_connections=200",
                # A test server on a throwaway directory: it is never crashed by the tests (the
                # triobg processes are), so it need not survive one. Durability of the stores
                # against their own process dying does not depend on these.
                *([] if self.fsync else ["-c fsync=off", "-c full_page_writes=off"]),
            ]
        )
        self._run(
            str(self.binaries / "pg_ctl"),
            "-D", str(data), "-l", str(self.directory / "log"), "-o", options, "-w", "-t", "60",
            "start",
        )  # fmt: skip
        self.started = True

    def restart(self) -> None:
        """Restart the server (every open connection is cut), as a database failover would."""
        self._run(
            str(self.binaries / "pg_ctl"),
            "-D", str(self.directory / "data"), "-m", "fast", "-w", "-t", "60", "restart",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            if self.started:
                self._run(
                    str(self.binaries / "pg_ctl"),
                    "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop",
                )  # fmt: skip
                self.started = False
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def new_database(self) -> str:
        """A URL to a new, empty database of this server."""
        import psycopg

        name = f"test_{next(self._databases)}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url.rpartition("/")[0] + "/" + name


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """The session's server, started on first use; skips (or fails, in CI) without one."""
    global _shared
    if _shared is None:
        binaries = _binaries()
        if binaries is None:
            message = "PostgreSQL is not installed (apt-get install postgresql)"
            if REQUIRED:
                pytest.fail(message)
            pytest.skip(message)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            message = "psycopg is not installed (pip install 'triobg[postgres]')"
            if REQUIRED:
                pytest.fail(message)
            pytest.skip(message)
        server = PostgresServer(binaries)
        atexit.register(server.stop)
        server.start()
        _shared = server
    return _shared


def stop_shared_server() -> None:
    """Stop the session's server if one was started (``pytest_sessionfinish``)."""
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None
