"""Upload benchmark: a 200 MB multipart upload through ``hypercorn --worker-class trio``.

Measured, for triobg and for FastAPI (the peer, on the same server and in the same run):

* the time one upload takes (median of three), against ``cat`` writing the same number of
  bytes to a file on this machine (the ratio; 1.0 would be disk speed);
* the server's peak RSS (its whole process tree) during that upload;
* the same for a bare ASGI app that only counts the body's bytes: the server's own ceiling;
* ``/ping`` latency (p50, p99, max) on another connection while three uploads run at once.

Not part of the test run; needs FastAPI and python-multipart for the peer (``nox -s bench``
installs them, see ``benchmarks/requirements.txt``). Ratios from one run, side by side; the
load average is printed with them, since the machine is shared.

    python -m benchmarks.uploads [--megabytes 200]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
BOUNDARY = "bench-b0undary"
BLOCK = os.urandom(1024 * 1024)
#: name -> (the app's module, the server that runs it). "triobg native" is the same app on
#: triobg's own server (``python -m triobg``, one process), for what hypercorn costs.
APPS = {
    "bare ASGI": ("benchmarks.apps.upload_bare", "hypercorn"),
    "triobg": ("benchmarks.apps.upload_triobg", "hypercorn"),
    "fastapi": ("benchmarks.apps.upload_fastapi", "hypercorn"),
    "triobg native": ("benchmarks.apps.upload_triobg", "native"),
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tree_rss_kib(root: int) -> int:
    """The resident memory of ``root`` and its descendants, in KiB."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def body_parts(size: int) -> tuple[bytes, bytes]:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    return head, tail


async def read_response(stream: trio.SocketStream) -> tuple[int, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(rest) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        rest += chunk
    return status, rest[:length]


async def upload(port: int, size: int) -> float:
    """Send one ``size``-byte file; the seconds until the response arrived."""
    head, tail = body_parts(size)
    length = len(head) + size + len(tail)
    request = (
        f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {length}\r\n"
        f"X-Framing: {len(head) + len(tail)}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
    ).encode()
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        start = time.perf_counter()
        await stream.send_all(request + head)
        sent = 0
        while sent < size:
            piece = BLOCK if size - sent >= len(BLOCK) else BLOCK[: size - sent]
            await stream.send_all(piece)
            sent += len(piece)
        await stream.send_all(tail)
        status, body = await read_response(stream)
        elapsed = time.perf_counter() - start
    if status != 200 or int(body) != size:
        raise RuntimeError(f"upload answered {status} {body[:200]!r}")
    return elapsed


async def ping_until(port: int, done: trio.Event, latencies: list[float]) -> None:
    while not done.is_set():
        stream = await trio.open_tcp_stream(HOST, port)
        async with stream:
            for _ in range(500):  # hypercorn closes a connection after 1000 requests
                if done.is_set():
                    return
                start = time.perf_counter()
                await stream.send_all(f"GET /ping HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                status, _ = await read_response(stream)
                latencies.append(time.perf_counter() - start)
                assert status == 200
                await trio.sleep(0.005)


async def sample_rss(pid: int, done: trio.Event, peak: list[int]) -> None:
    while not done.is_set():
        peak[0] = max(peak[0], await trio.to_thread.run_sync(tree_rss_kib, pid))
        await trio.sleep(0.02)


async def measure(app: str, module: str, server: str, size: int) -> dict[str, float]:
    port = free_port()
    if server == "native":
        command = [sys.executable, "-m", "triobg", f"{module}:app", "--bind", f"{HOST}:{port}"]
    else:
        command = [
            *(sys.executable, "-m", "hypercorn", "--worker-class", "trio", "-w", "1"),
            *("--bind", f"{HOST}:{port}", f"{module}:app"),
        ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = spawn(command, env)
    try:
        with trio.fail_after(30):
            while True:
                try:
                    stream = await trio.open_tcp_stream(HOST, port)
                except OSError:
                    await trio.sleep(0.1)
                    continue
                await stream.aclose()
                break
        idle_rss = tree_rss_kib(process.pid)
        # One upload alone, three times: the median time, and the peak memory.
        done, peak = trio.Event(), [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_rss, process.pid, done, peak)
            elapsed = statistics.median([await upload(port, size) for _ in range(3)])
            done.set()
        # Three at once, and /ping meanwhile.
        done, latencies = trio.Event(), []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ping_until, port, done, latencies)
            async with trio.open_nursery() as uploads:
                for _ in range(3):
                    uploads.start_soon(upload, port, size)
            done.set()
        latencies.sort()
        return {
            "seconds": elapsed,
            "idle_rss_mib": idle_rss / 1024,
            "peak_rss_mib": peak[0] / 1024,
            "ping_p50_ms": statistics.median(latencies) * 1000,
            "ping_p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "ping_max_ms": latencies[-1] * 1000,
            "pings": len(latencies),
        }
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start the server in its own process group (stopping it reaches hypercorn's worker)."""
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )


def cat_seconds(size: int, rounds: int = 3) -> float:
    """``cat`` copying ``size`` bytes (already in the page cache) to a new file in the system's
    temporary directory, where the servers write their uploads; the median of ``rounds``.

    Not synced, like the servers' temporary files: both measure writing into the page cache,
    whose cost on a shared machine varies from run to run (hence several rounds).
    """
    times = []
    with tempfile.TemporaryDirectory() as directory:
        source = Path(directory, "source")
        with source.open("wb") as out:
            for _ in range(size // len(BLOCK)):
                out.write(BLOCK)
        for round_ in range(rounds):
            target = Path(directory, f"target{round_}")
            start = time.perf_counter()
            subprocess.run(["sh", "-c", 'cat "$0" > "$1"', source, target], check=True)
            times.append(time.perf_counter() - start)
            target.unlink()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()
    size = args.megabytes * 1024 * 1024
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[:3]}")
    results = {}
    cat_before = cat_seconds(size)
    for app, (module, server) in APPS.items():
        try:
            results[app] = trio.run(measure, app, module, server, size)
        except Exception as error:  # a peer that is not installed: say so, measure the rest
            print(f"SKIP {app}: {type(error).__name__}: {error}")
    cat = statistics.median([cat_before, cat_seconds(size)])
    print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")
    print(
        f"\n{args.megabytes} MB upload, hypercorn --worker-class trio, one worker "
        "(triobg native: python -m triobg, one process)"
    )
    print(f"cat to a file: {size / cat / 2**20:.0f} MiB/s (the 1.0x line)")
    print(
        "RSS: the server's whole process tree (hypercorn: its supervisor and the worker); "
        "growth: peak - idle"
    )
    header = (
        "app           upload/cat  MiB/s  idle RSS  peak RSS  growth  ping p50  ping p99  ping max"
        "  pings"
    )
    print(header)
    for app, r in results.items():
        growth = r["peak_rss_mib"] - r["idle_rss_mib"]
        print(
            f"{app:<13} {r['seconds'] / cat:>9.2f}x {size / r['seconds'] / 2**20:>6.0f} "
            f"{r['idle_rss_mib']:>7.0f}M {r['peak_rss_mib']:>8.0f}M {growth:>6.0f}M "
            f"{r['ping_p50_ms']:>7.1f}ms "
            f"{r['ping_p99_ms']:>7.1f}ms {r['ping_max_ms']:>7.1f}ms {r['pings']:>6}"
        )
    if "triobg" in results and "fastapi" in results:
        t, f = results["triobg"], results["fastapi"]
        print(
            f"\ntriobg/fastapi: upload time {t['seconds'] / f['seconds']:.2f}x, "
            f"peak RSS {t['peak_rss_mib'] / f['peak_rss_mib']:.2f}x, "
            f"ping p99 {t['ping_p99_ms'] / f['ping_p99_ms']:.2f}x"
        )


if __name__ == "__main__":
    main()
