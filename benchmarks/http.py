# HTTP benchmark: every app behind hypercorn (trio worker), loaded by wrk with 64 connections.
#
# For each task kind, all apps are served at once (idle servers cost nothing) and measured in
# interleaved rounds: requests per second, p50/p99 latency, server CPU time per request, and a
# check through ``GET /count`` that every acknowledged request's tasks really ran.
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import attrs
import trio

from benchmarks import _client, _driver, _server, _stats
from benchmarks.apps import BASELINE, LoadedApps, _work

#: wrk's connection count, as the issue asks.
CONNECTIONS = 64
#: wrk's own socket timeout (seconds); a slower response counts as an error.
WRK_TIMEOUT = 5
#: Seconds the task counters get to catch up after a round before a shortfall is a failure.
SETTLE_TIMEOUT = 10.0

# wrk sends GET by default; this makes it POST the seed request with an empty body, and print the
# summary as one JSON line instead of text we would have to parse.
_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.path = "{path}"
wrk.body = ""
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {{"requests": %d, "duration_us": %d, "socket_errors": %d, "status_errors": %d, '
    .. '"timeouts": %d, "p50_us": %f, "p99_us": %f}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@attrs.frozen
class WrkRun:
    """One wrk run's summary."""

    requests: int
    duration_us: int
    socket_errors: int
    status_errors: int
    timeouts: int
    p50_us: float
    p99_us: float

    @property
    def ok_requests(self) -> int:
        """Requests answered with a 2xx or 3xx status."""
        return self.requests - self.status_errors

    @property
    def errors(self) -> int:
        """Everything wrk counted as an error."""
        return self.socket_errors + self.status_errors + self.timeouts


@attrs.frozen
class HttpResult:
    """One app's HTTP results for one task kind; medians over rounds unless said otherwise.

    Attributes:
        ratio_to_bare: Median per-round ratio of this app's req/s to bare's.
        ratio_to_fastapi: Median per-round ratio of this app's req/s to FastAPI's.
        cpu_us_per_request: Server process tree CPU time (user + system) per request.
        errors: wrk errors summed over all rounds.
        tasks_expected: Tasks the acknowledged requests should have run, over all rounds.
        tasks_counted: Tasks the server counted over the same period (may exceed expected by the
            tasks of requests in flight when a round ended, which wrk does not count).
        tasks_ok: Whether every expected task ran, and no implausible number more.
    """

    kind: str
    app: str
    requests_per_s: float
    ratio_to_bare: float | None
    ratio_to_fastapi: float | None
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    errors: int
    tasks_expected: int
    tasks_counted: int
    tasks_ok: bool
    rounds_rps: tuple[float, ...]


@attrs.frozen
class HttpReport:
    """All HTTP results, the apps that failed (``kind/app`` to reason), and a reason if skipped."""

    results: tuple[HttpResult, ...]
    failures: dict[str, str]
    skipped: str | None = None


def _wrk(port: int, seconds: int, script: Path, cores: _server.Cores) -> WrkRun:
    command = [
        *("wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}s"),
        *("-s", str(script), f"http://{_client.HOST}:{port}/"),
    ]
    completed = subprocess.run(
        _server.pinned(command, cores.load),
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return WrkRun(**json.loads(line.removeprefix("WRK_JSON ")))
    raise RuntimeError(f"no summary in wrk output:\n{completed.stdout}\n{completed.stderr}")


def _settled_count(port: int, at_least: int = 0) -> int:
    """The server's task count once it has reached ``at_least`` and stopped moving."""

    async def settle() -> int:
        previous = -1
        with trio.move_on_after(SETTLE_TIMEOUT):
            while True:
                count = await _client.completed_tasks(port)
                if count >= at_least and count == previous:
                    return count
                previous = count
                await trio.sleep(0.1)
        return await _client.completed_tasks(port)

    return trio.run(settle)


def _measure_kind(
    kind: str,
    servers: dict[str, _server.Server],
    *,
    rounds: int,
    seconds: int,
    script: Path,
    cores: _server.Cores,
) -> list[HttpResult]:
    runs: dict[str, list[WrkRun]] = {name: [] for name in servers}
    rps: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    for server in servers.values():
        _wrk(server.port, 1, script, cores)  # warm-up, not recorded
    baseline = {name: _settled_count(server.port) for name, server in servers.items()}

    for order in _stats.interleaved(list(servers), rounds):
        for name in order:
            server = servers[name]
            cpu_before = server.cpu_seconds()
            run = _wrk(server.port, seconds, script, cores)
            cpu_used = server.cpu_seconds() - cpu_before
            runs[name].append(run)
            rps[name].append(run.requests / (run.duration_us / 1e6))
            cpu[name].append(cpu_used * 1e6 / max(run.requests, 1))
            # Let the server finish what wrk abandoned before the next app's round starts.
            time.sleep(0.2)

    results = []
    for name, server in servers.items():
        expected = sum(run.ok_requests for run in runs[name]) * _driver.TASKS_WITH_QUERY
        counted = _settled_count(server.port, baseline[name] + expected) - baseline[name]
        # Requests in flight when wrk stops are served, so their tasks run, but wrk never counts
        # their responses: up to one per connection per round.
        slack = rounds * CONNECTIONS * _driver.TASKS_WITH_QUERY
        results.append(
            HttpResult(
                kind=kind,
                app=name,
                requests_per_s=_stats.median(rps[name]),
                ratio_to_bare=_stats.paired_ratio(rps, name, BASELINE),
                ratio_to_fastapi=_stats.paired_ratio(rps, name, "fastapi"),
                p50_ms=_stats.median([run.p50_us / 1e3 for run in runs[name]]),
                p99_ms=_stats.median([run.p99_us / 1e3 for run in runs[name]]),
                cpu_us_per_request=_stats.median(cpu[name]),
                errors=sum(run.errors for run in runs[name]),
                tasks_expected=expected,
                tasks_counted=counted,
                tasks_ok=expected <= counted <= expected + slack,
                rounds_rps=tuple(rps[name]),
            )
        )
    return results


def run(loaded: LoadedApps, *, rounds: int, seconds: int) -> HttpReport:
    """Serve and load every loaded app for every measured task kind.

    Args:
        loaded: The apps to compare.
        rounds: Interleaved rounds per kind (after a one-second warm-up per server).
        seconds: wrk duration of one round, in whole seconds.
    """
    if not shutil.which("wrk"):
        return HttpReport((), {}, skipped="wrk not found (apt-get install wrk)")
    cores = _server.Cores.detect()
    results: list[HttpResult] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="triobg-bench-") as tmp:
        script = Path(tmp, "seed.lua")
        script.write_text(_WRK_SCRIPT.format(path=f"{_driver.SEED_PATH}?q=benchmark"))
        for kind in _work.MEASURED_KINDS:
            with _server.serving(loaded.modules, kind, Path(tmp), cores) as (servers, failed):
                failures.update({f"{kind}/{app}": reason for app, reason in failed.items()})
                results += _measure_kind(
                    kind, servers, rounds=rounds, seconds=seconds, script=script, cores=cores
                )
    return HttpReport(tuple(results), failures)
