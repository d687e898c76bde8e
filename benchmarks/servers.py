# Servers benchmark (issue 21): the seed endpoint with two async tasks on triobg's native server,
# on hypercorn's trio worker, FastAPI on uvicorn (the peer a FastAPI user runs), and the trio + h11
# floor, loaded by wrk in interleaved rounds. Also: the native server's memory per idle
# keep-alive connection. Run ``python -m benchmarks.servers [--rounds N] [--seconds S]``.
#
# Every server runs as its own process pinned to the server core, wrk to the load core (as in
# ``http.py``); ratios are medians of per-round ratios, so drift on a shared machine cancels out.
from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from benchmarks import _client, _server, _stats
from benchmarks.apps import _work
from benchmarks.http import _WRK_SCRIPT, CONNECTIONS, _wrk

#: A started server: its port and its process.
Running = tuple[int, "subprocess.Popen[bytes]"]

SEED = "/send-notification/foo@example.com?q=hello"
MODULE = "benchmarks.apps.triobg_app:app"

#: name -> command (``{port}`` is filled in); ``None`` when its packages are missing.
COMMANDS: dict[str, list[str] | None] = {
    "native": [sys.executable, "-m", "triobg", MODULE, "--bind", "127.0.0.1:{port}",
               "--log-level", "warning"],
    "hypercorn": [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "-w", "1",
                  "--bind", "127.0.0.1:{port}", MODULE],
    "fastapi-uvicorn": [sys.executable, "-m", "uvicorn", "benchmarks.apps.fastapi_app:app",
                        "--port", "{port}", "--log-level", "warning", "--no-access-log"]
    if importlib.util.find_spec("uvicorn") and importlib.util.find_spec("fastapi") else None,
    "h11-floor": [sys.executable, "-m", "benchmarks.apps.h11_floor", "{port}"],
}  # fmt: skip

#: (name, baseline, at least) -- the targets of issue 21.
TARGETS = [
    ("native", "hypercorn", 3.0),
    ("native", "fastapi-uvicorn", 1.2),
    ("native", "h11-floor", 0.7),
]


@contextmanager
def _started(cores: _server.Cores, log_dir: Path) -> Iterator[dict[str, Running]]:
    running: dict[str, Running] = {}
    env = {**os.environ, "PYTHONPATH": str(_server.REPO_ROOT), _work.KIND_ENV: "async",
           _work.LOG_DIR_ENV: str(log_dir)}  # fmt: skip
    try:
        for name, command in COMMANDS.items():
            if command is None:
                print(f"[servers] SKIP {name}: uvicorn or fastapi not installed")
                continue
            port = _server.free_port()
            process = subprocess.Popen(
                _server.pinned([part.format(port=port) for part in command], cores.server),
                cwd=_server.REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=(log_dir / f"{name}.log").open("wb"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            running[name] = (port, process)
        for name, (port, _) in running.items():
            trio.run(_wait_listening, port, name)
        yield running
    finally:
        for _, process in running.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


async def _wait_listening(port: int, name: str) -> None:
    with trio.fail_after(30):
        while True:
            try:
                stream = await trio.open_tcp_stream(_client.HOST, port)
            except OSError:
                await trio.sleep(0.1)
                continue
            await stream.aclose()
            return


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_connection_kib(port: int, pid: int, count: int = 1000) -> float:
    """RSS growth per idle keep-alive connection that has served one request."""

    async def measure() -> float:
        streams = []
        request = b"GET /count HTTP/1.1\r\nhost: x\r\n\r\n"
        before = _rss_kib(pid)
        try:
            for _ in range(count):
                stream = await trio.open_tcp_stream(_client.HOST, port)
                streams.append(stream)
                await stream.send_all(request)
                await stream.receive_some(4096)
            after = _rss_kib(pid)
        finally:
            for stream in streams:
                await stream.aclose()
        return (after - before) / count

    return trio.run(measure)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and the targets, write ``results/servers.md``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    args = parser.parse_args(argv)
    cores = _server.Cores.detect()
    rps: dict[str, list[float]] = {}
    p99: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, _started(cores, Path(tmp)) as running:
        script = Path(tmp) / "seed.lua"
        script.write_text(_WRK_SCRIPT.format(path=SEED))
        for port, _ in running.values():
            _wrk(port, 1, script, cores)  # warm-up
        for order in _stats.interleaved(list(running), args.rounds):
            for name in order:
                port, process = running[name]
                before = _server.process_tree_cpu_seconds(process.pid)
                run = _wrk(port, args.seconds, script, cores)
                used = _server.process_tree_cpu_seconds(process.pid) - before
                rps.setdefault(name, []).append(run.requests / (run.duration_us / 1e6))
                p99.setdefault(name, []).append(run.p99_us / 1e3)
                cpu.setdefault(name, []).append(used * 1e6 / max(run.requests, 1))
                if run.errors:
                    print(f"[servers] {name}: {run.errors} wrk errors this round")
                time.sleep(0.2)
        port, process = running["native"]
        idle_kib = idle_connection_kib(port, process.pid)
    lines = [
        f"# Servers: seed endpoint, two async tasks, wrk -t1 -c{CONNECTIONS}, "
        f"{args.rounds} interleaved rounds x {args.seconds} s",
        "",
        "| server | req/s (median) | p99 ms | CPU us/request | vs hypercorn |",
        "|---|---|---|---|---|",
    ]
    for name in rps:
        ratio = _stats.paired_ratio(rps, name, "hypercorn")
        lines.append(
            f"| {name} | {_stats.median(rps[name]):,.0f} | {_stats.median(p99[name]):.1f} | "
            f"{_stats.median(cpu[name]):.0f} | {ratio:.2f}x |"
        )
    lines += ["", f"native: memory per idle keep-alive connection: {idle_kib:.1f} KiB", ""]
    for name, baseline, wanted in TARGETS:
        ratio = _stats.paired_ratio(rps, name, baseline)
        if ratio is None or baseline not in rps:
            lines.append(f"SKIP  {name} >= {wanted}x {baseline}: not measured")
        else:
            status = "PASS" if ratio >= wanted else "MISS"
            # The same comparison by server CPU per request (inverse): steadier than req/s
            # when other processes share the server's core.
            by_cpu = _stats.median(cpu[baseline]) / _stats.median(cpu[name])
            lines.append(
                f"{status}  {name} >= {wanted}x {baseline}: {ratio:.2f}x "
                f"(by CPU per request: {by_cpu:.2f}x)"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(__file__).resolve().parent / "results" / "servers.md"
    out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
