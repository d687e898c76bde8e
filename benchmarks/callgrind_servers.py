# Instructions per request of the native server and the trio + h11 floor, counted by callgrind
# (issue 21): where the server's time goes, in a unit that does not drift on a shared machine.
# Run ``python -m benchmarks.callgrind_servers [--requests N] [--connections C] [--keep DIR]``.
#
# Each server runs under ``valgrind --tool=callgrind`` with instrumentation off until it listens
# (start-up is not counted), is warmed up, then counted over exactly N keep-alive requests sent by
# this process (a plain-socket client, C connections in lockstep: each sends one request, then each
# reads its response). ``callgrind_control`` zeroes the counters before and dumps them after, so
# the dump is the steady state only. ``--keep`` keeps the dumps for ``callgrind_annotate``.
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _client, _server
from benchmarks.apps import _work
from benchmarks.servers import COMMANDS, SEED

#: The servers counted, each a command of ``benchmarks.servers``: the floor, the native server with
#: an ASGI app doing the floor's work (the server layer alone), with the hand-written seed app
#: (``apps/bare.py``, two async tasks) and with triobg's seed app.
_ASGI = [sys.executable, "-m", "benchmarks.apps.native_asgi"]
VARIANTS: dict[str, list[str]] = {
    "h11-floor": COMMANDS["h11-floor"] or [],
    "native-fixed": [*_ASGI, "benchmarks.apps.asgi_fixed:app", "{port}"],
    "native-bare": [*_ASGI, "benchmarks.apps.bare:app", "{port}"],
    "native": COMMANDS["native"] or [],
}
NAMES = tuple(VARIANTS)
#: Seconds a server under valgrind may take to start listening (it runs ~50x slower there).
START_TIMEOUT = 300.0
_REQUEST = f"POST {SEED} HTTP/1.1\r\nHost: {_client.HOST}\r\nContent-Length: 0\r\n\r\n".encode(
    "ascii"
)
_LENGTH = re.compile(rb"\r\ncontent-length: *(\d+)\r\n", re.IGNORECASE)


def _read_response(sock: socket.socket, buffered: bytes) -> bytes:
    # Read one response (they all carry Content-Length); return whatever follows it.
    while b"\r\n\r\n" not in buffered:
        buffered += _recv(sock)
    head, _, rest = buffered.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"unexpected response: {head[:200]!r}")
    match = _LENGTH.search(head + b"\r\n")
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        rest += _recv(sock)
    return rest[length:]


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise RuntimeError("the server closed the connection")
    return data


def drive(port: int, requests: int, connections: int) -> None:
    """Send ``requests`` keep-alive requests over ``connections`` connections, in lockstep."""
    socks = [socket.create_connection((_client.HOST, port), timeout=60) for _ in range(connections)]
    leftovers = [b""] * connections
    try:
        for _ in range(requests // connections):
            for sock in socks:
                sock.sendall(_REQUEST)
            for i, sock in enumerate(socks):
                leftovers[i] = _read_response(sock, leftovers[i])
    finally:
        for sock in socks:
            sock.close()


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection((_client.HOST, port), timeout=5).close()
        except OSError:
            time.sleep(0.5)
        else:
            return
    raise RuntimeError("server did not listen in time")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True)


def count(name: str, out_dir: Path, requests: int, connections: int, warmup: int) -> int:
    """Instructions the server ``name`` executes for ``requests`` requests (its dump is kept)."""
    port = _server.free_port()
    command = [part.format(port=port) for part in VARIANTS[name]]
    out = out_dir / f"{name}.callgrind"
    env = {**os.environ, "PYTHONPATH": str(_server.REPO_ROOT), "PYTHONHASHSEED": "0",
           _work.KIND_ENV: "async"}  # fmt: skip
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
         *command],
        cwd=_server.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
        stdout=(out_dir / f"{name}.log").open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        _wait_listening(port, process)
        _control(process.pid, "--instr=on")
        drive(port, warmup, connections)
        _control(process.pid, "--zero")
        drive(port, requests, connections)
        _control(process.pid, "--dump")
        for _ in range(100):
            dumps = sorted(out_dir.glob(f"{name}.callgrind.*"))
            if dumps and "totals:" in dumps[-1].read_text(errors="replace"):
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("callgrind wrote no dump")
        match = re.search(r"^totals: (\d+)", dumps[-1].read_text(errors="replace"), re.M)
        assert match is not None
        dumps[-1].rename(out)
        return int(match.group(1))
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


def main(argv: list[str] | None = None) -> int:
    """Count both servers and print instructions per request and their ratio."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.callgrind_servers")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=480)
    parser.add_argument("--only", action="append", choices=NAMES)
    parser.add_argument("--keep", type=Path, help="directory to keep the callgrind dumps in")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("[callgrind] SKIP: valgrind is not installed")
        return 0
    requests = args.requests - args.requests % args.connections
    per_request: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.keep or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in args.only or NAMES:
            total = count(name, out_dir, requests, args.connections, args.warmup)
            per_request[name] = total / requests
            print(f"{name}: {per_request[name]:,.0f} instructions per request", flush=True)
    floor = per_request.get("h11-floor")
    for name, value in per_request.items():
        if floor and name != "h11-floor":
            print(f"{name}: {floor / value:.2f}x the floor by instructions per request")
    return 0


if __name__ == "__main__":
    sys.exit(main())
