"""``python -m triobg --server native --workers N``: processes sharing a port, each draining its
own tasks; and the port resolution behind it."""

from __future__ import annotations

import re
import signal
import socket
import sys
from pathlib import Path

import pytest
from test_e2e_hypercorn import STARTUP, server_process, spread_over_workers, write_app

from triobg._server._workers import resolve_ports

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT"),
]


class TestResolvePorts:
    def test_port_zero_is_picked_once_and_held(self) -> None:
        """``:0`` becomes one real port, held by a bound socket every worker can join."""
        resolved, held = resolve_ports(["127.0.0.1:0", "127.0.0.1:8123"])
        try:
            port = held[0].getsockname()[1]
            assert resolved == [f"127.0.0.1:{port}", "127.0.0.1:8123"]
            joiner = socket.socket()
            joiner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            joiner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            joiner.bind(("127.0.0.1", port))
            joiner.close()
        finally:
            for sock in held:
                sock.close()

    def test_unix_binds_are_refused(self) -> None:
        """A unix socket cannot be shared by reuse_port: said at once."""
        with pytest.raises(ValueError, match="host:port"):
            resolve_ports(["unix:/tmp/x.sock"])


class TestWorkers:
    async def test_two_native_workers_each_drain_their_own_tasks(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Both workers take connections; SIGTERM to the parent drains each worker's tasks,
        naming the ones cut off in that worker's log, and everything exits 0."""
        write_app(tmp_path, "nwapp")
        monkeypatch.chdir(tmp_path)
        args = [sys.executable, "-m", "triobg", "nwapp:app", "--server", "native"]
        args += ["--workers", "2", "--bind", "127.0.0.1:0", "--drain-timeout", "0.5"]
        async with server_process(args, tmp_path) as child:
            serving = r"serving on http://127\.0\.0\.1:(\d+)"
            lines = await child.wait_for(serving, count=2, timeout=STARTUP)
            ports = {re.findall(serving, line)[0] for line in lines}
            assert len(ports) == 1, lines
            owner = await spread_over_workers(child, "127.0.0.1", int(ports.pop()), None)
            child.signal(signal.SIGTERM)
            assert await child.wait_exit(timeout=15) == 0
            out = child.output
        for tag, pid in owner.items():
            assert re.search(
                rf"\[{pid}\] WARNING triobg\.background: .*forever of GET /forever/{tag} cancelled",
                out,
            ), (tag, out)
        drained = re.findall(r"\[(\d+)\] INFO triobg\.background: background drain finished", out)
        assert set(map(int, drained)) == set(owner.values()), out
