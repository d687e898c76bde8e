# Several native server processes sharing one port through SO_REUSEPORT, each draining its own
# background tasks.
#
# Where it sits: ``python -m triobg --server native --workers N`` (``triobg/_cli.py``) calls
# ``run_workers`` instead of serving. Each worker is ``python -m triobg`` again, with the same
# arguments, ``--workers 1`` and the resolved binds in ``WORKER_BINDS_ENV``: it loads the app,
# serves on a listener of its own with ``reuse_port`` (the kernel spreads connections over the
# workers), and shuts down exactly as a single process does. The parent holds any ``:0`` port it
# picked (bound, never listening) so that every worker gets the same one, and waits for them all.
#
# Signals: the workers stay in the parent's process group, so a CTRL+C in the terminal (SIGINT to
# the group) reaches each of them once, directly; the parent ignores SIGINT. SIGTERM sent to the
# parent is forwarded to each worker. A supervisor that sends SIGTERM to the whole group
# (systemd's default KillMode=control-group) would deliver it twice, which a worker reads as
# "stop now": signal the parent only (KillMode=mixed).
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Final

from ._listeners import parse_bind

#: The environment variable that tells a worker its binds (a JSON list) and to use reuse_port.
WORKER_BINDS_ENV: Final = "TRIOBG_WORKER_BINDS"


def resolve_ports(binds: Sequence[str]) -> tuple[list[str], list[socket.socket]]:
    """Binds with every ``:0`` replaced by a free port, and the sockets holding those ports.

    Raises:
        ValueError: a bind is not ``host:port`` (unix sockets and inherited descriptors cannot
            be shared this way).
    """
    for bind in binds:
        if parse_bind(bind)[0] != "tcp":
            raise ValueError(f"--workers with the native server needs host:port binds: {bind}")
    resolved: list[str] = []
    held: list[socket.socket] = []
    try:
        for bind in binds:
            host, _, port = bind.rpartition(":")
            if int(port) != 0:
                resolved.append(bind)
                continue
            name = host.strip("[]")
            family = socket.AF_INET6 if ":" in name else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((name, 0))  # bound and never listening: it holds the port, takes nothing
            held.append(sock)
            resolved.append(f"{host}:{sock.getsockname()[1]}")
    except BaseException:
        for sock in held:
            sock.close()
        raise
    return resolved, held


def run_workers(argv: Sequence[str], binds: Sequence[str], count: int) -> int:
    """Run ``count`` worker processes of ``python -m triobg *argv``; the worst exit status."""
    resolved, held = resolve_ports(binds)
    env = {**os.environ, WORKER_BINDS_ENV: json.dumps(resolved)}
    command = [sys.executable, "-m", "triobg", *argv, "--workers", "1"]
    print(
        f"triobg: starting {count} native workers on {', '.join(resolved)} (CTRL+C to quit)",
        file=sys.stderr,
        flush=True,
    )
    workers = [subprocess.Popen(command, env=env) for _ in range(count)]

    def forward(signum: int, frame: FrameType | None) -> None:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
    }
    try:
        return max(worker.wait() for worker in workers)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in held:
            sock.close()
