"""Durable versus in-process tasks over HTTP: the seed endpoint adding two tasks, wrk, 64 conns.

One ``hypercorn --worker-class trio`` server (pinned to one core when there are two, wrk on the
other) serves both endpoints from one app: ``/inprocess/{email}`` adds two in-process no-op
tasks, ``/durable/{email}`` two durable no-op tasks (stored with ``synchronous=FULL`` before the
response, then run by the process's worker). Rounds alternate the two; the report is the median
ratio of durable to in-process requests per second, and each one's p50 latency; also the
server's CPU time per request (its tasks' work included: each run waits for the store to empty),
which a busy shared machine disturbs far less than requests per second, and the p50 latency of a
lone client (one connection), where the added cost of storing shows without queueing::

    python -m benchmarks.durable_http [--rounds 3] [--seconds 10] [--no-worker]
        [--store sqlite|postgres]

Needs ``wrk``. Not part of the test run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from benchmarks._server import Cores, free_port, pinned, process_tree_cpu_seconds

APP = """\
import os

import triobg

app = triobg.App(task_store=os.environ["BENCH_STORE"])
app.tasks.run_worker = os.environ.get("BENCH_NO_WORKER") != "1"


async def noop(email: str, message: str = "") -> None:
    return None


durable_noop = app.task(name="noop")(noop)


@app.post("/inprocess/{email}")
async def inprocess(email: str, background_tasks: triobg.BackgroundTasks):
    background_tasks.add_task(noop, email)
    background_tasks.add_task(noop, email, message="some notification")
    return {"message": "Message sent"}


@app.post("/durable/{email}")
async def durable(email: str, background_tasks: triobg.BackgroundTasks):
    background_tasks.add_task(durable_noop, email)
    background_tasks.add_task(durable_noop, email, message="some notification")
    return {"message": "Message sent"}


@app.get("/stats")
async def stats():
    s = await app.tasks.statistics()
    commits = getattr(app.tasks.store, "batches", 0)
    return {"ready": s.ready, "running": s.running, "succeeded": s.succeeded, "commits": commits}
"""

WRK_SCRIPT = 'wrk.method = "POST"\n'


def wrk(
    url: str, seconds: int, cpus: str | None, script: Path, connections: int = 64
) -> tuple[float, float, int]:
    """Requests per second, p50 latency (ms) and the number of requests of one wrk run."""
    command = pinned(
        [
            *("wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"),
            *("-s", str(script), url),
        ],
        cpus,
    )
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    assert p50 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return rate, float(p50.group(1)) * scale, count


def _commits(base: str) -> int:
    """Transactions the server's store has committed so far (its group commit's batches)."""
    stats = json.loads(urllib.request.urlopen(f"{base}/stats", timeout=10).read())
    return int(stats["commits"])


def settle(base: str) -> None:
    """Wait (up to a minute) until the server's store has no task waiting or running."""
    for _ in range(600):
        stats = json.loads(urllib.request.urlopen(f"{base}/stats", timeout=10).read())
        if stats["ready"] == 0 and stats["running"] == 0:
            return
        time.sleep(0.1)


@contextlib.contextmanager
def _store_url(kind: str, directory: str) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{directory}/tasks.sqlite3"
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _postgres import PostgresServer, _binaries

    binaries = _binaries()
    if binaries is None:
        sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer(binaries)
    server.fsync = True
    try:
        server.start()
        yield server.new_database()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="the web process only stores durable tasks (a dedicated worker would run them)",
    )
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="where durable tasks are stored: a SQLite file, or a throwaway PostgreSQL cluster "
        "started for the run (as the tests start one; fsync on)",
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed")
    cores = Cores.detect()
    with tempfile.TemporaryDirectory() as tmp, _store_url(args.store, tmp) as store_url:
        Path(tmp, "durablebench.py").write_text(APP)
        script = Path(tmp, "post.lua")
        script.write_text(WRK_SCRIPT)
        port = free_port()
        hypercorn = str(Path(sys.executable).with_name("hypercorn"))
        env = {**os.environ, "BENCH_STORE": store_url}
        if args.no_worker:
            env["BENCH_NO_WORKER"] = "1"
        server = subprocess.Popen(
            pinned(
                [
                    hypercorn,
                    "--worker-class",
                    "trio",
                    "-b",
                    f"127.0.0.1:{port}",
                    "durablebench:app",
                ],
                cores.server,
            ),
            cwd=tmp,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    urllib.request.urlopen(f"{base}/stats", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            wrk(f"{base}/inprocess/a@example.com", 1, cores.load, script)  # warm-up
            wrk(f"{base}/durable/a@example.com", 1, cores.load, script)
            ratios, inproc, durable, batches = [], [], [], []
            cpu: dict[str, list[float]] = {"inprocess": [], "durable": []}
            for n in range(args.rounds):
                order = ["inprocess", "durable"] if n % 2 == 0 else ["durable", "inprocess"]
                result = {}
                for name in order:
                    url = f"{base}/{name}/a@example.com"
                    commits = _commits(base)
                    before = process_tree_cpu_seconds(server.pid)
                    result[name] = wrk(url, args.seconds, cores.load, script)
                    settle(base)  # the tasks' own work counts too, wherever it ran
                    cpu[name].append(
                        (process_tree_cpu_seconds(server.pid) - before) / result[name][2]
                    )
                    if name == "durable":
                        batches.append((_commits(base) - commits) / result[name][2])
                inproc.append(result["inprocess"])
                durable.append(result["durable"])
                ratios.append(result["durable"][0] / result["inprocess"][0])
            quiet = {}  # one connection: the latency a lone client sees
            for name in ["inprocess", "durable"]:
                url = f"{base}/{name}/a@example.com"
                quiet[name] = wrk(url, args.seconds, cores.load, script, connections=1)[1]
            stats = urllib.request.urlopen(f"{base}/stats", timeout=10).read().decode()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
    for name, runs in [("in-process", inproc), ("durable", durable)]:
        key = "inprocess" if name == "in-process" else "durable"
        print(
            f"{name + ':':<12}{statistics.median(r for r, _, _ in runs):,.0f} req/s, "
            f"p50 {statistics.median(p for _, p, _ in runs):.2f} ms (64 connections), "
            f"{statistics.median(cpu[key]) * 1e6:,.0f} µs of server CPU per request, "
            f"p50 {quiet[key]:.2f} ms alone (1 connection)"
        )
    cpu_ratio = statistics.median(cpu["inprocess"]) / statistics.median(cpu["durable"])
    print(
        f"durable / in-process: {statistics.median(ratios):.2f} req/s (median of {len(ratios)} "
        f"rounds: {', '.join(f'{r:.2f}' for r in ratios)}); {cpu_ratio:.2f} by server CPU per "
        f"request; added p50 alone {quiet['durable'] - quiet['inprocess']:+.2f} ms; "
        f"{statistics.median(batches):.3f} commits per durable request; "
        f"load average {os.getloadavg()[0]:.1f}; store at the end: {stats}"
    )


if __name__ == "__main__":
    main()
