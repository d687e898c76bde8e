# Latency independence: does a slow background task delay the response, or the next request?
#
# Each app is served twice by hypercorn: with kind ``none`` (no task) and kind ``sleep`` (both
# tasks sleep 0.5 s). On a fresh keep-alive connection we time the first request, then at once a
# second request on the same connection, which arrives while the first request's tasks are still
# sleeping. Samples alternate between the two servers. Independent means both latencies with the
# sleeping tasks equal those without, within noise.
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import attrs
import trio

from benchmarks import _client, _driver, _server, _stats
from benchmarks.apps import LoadedApps

#: Latency differences below this many milliseconds are noise on loopback, whatever the ratio.
NOISE_FLOOR_MS = 2.0
#: ... and so are differences below this fraction of the no-task latency.
NOISE_FRACTION = 0.5
_TARGET = f"{_driver.SEED_PATH}?q=benchmark"


@attrs.frozen
class LatencyResult:
    """One app's client-observed latencies in milliseconds, medians over samples.

    Attributes:
        first_none_ms / first_sleep_ms: First request on a connection, without / with 0.5 s tasks.
        second_none_ms / second_sleep_ms: The keep-alive request right after it.
        worst_sleep_ms: The slowest request seen against the sleeping-task server.
        independent: Whether the sleeping tasks left both medians within noise of the no-task ones.
    """

    app: str
    first_none_ms: float
    first_sleep_ms: float
    second_none_ms: float
    second_sleep_ms: float
    worst_sleep_ms: float
    independent: bool


@attrs.frozen
class LatencyReport:
    """All latency results, and the apps whose servers failed (``kind/app`` to reason)."""

    results: tuple[LatencyResult, ...]
    failures: dict[str, str]


def within_noise(value_ms: float, reference_ms: float) -> bool:
    """Whether ``value_ms`` is the same latency as ``reference_ms`` on a loopback benchmark."""
    return value_ms - reference_ms <= max(NOISE_FLOOR_MS, NOISE_FRACTION * reference_ms)


async def _pair(port: int) -> tuple[float, float]:
    """Milliseconds for a first request and for the keep-alive request right after it."""
    async with _client.connect(port) as conn:
        start = time.perf_counter()
        first_status, _ = await conn.request("POST", _TARGET)
        middle = time.perf_counter()
        second_status, _ = await conn.request("POST", _TARGET)
        end = time.perf_counter()
    if first_status != 200 or second_status != 200:
        raise _driver.DispatchError(f"statuses {first_status}, {second_status} on port {port}")
    return (middle - start) * 1e3, (end - middle) * 1e3


async def _sample(
    none_servers: dict[str, _server.Server], sleep_servers: dict[str, _server.Server], samples: int
) -> dict[str, dict[str, list[float]]]:
    apps = [app for app in none_servers if app in sleep_servers]
    series = ("first_none", "second_none", "first_sleep", "second_sleep")
    times: dict[str, dict[str, list[float]]] = {app: {name: [] for name in series} for app in apps}
    for index, order in enumerate(_stats.interleaved(apps, samples)):
        for app in order:
            # Alternate which server goes first, so neither always follows the other.
            pairs = [("none", none_servers[app]), ("sleep", sleep_servers[app])]
            for label, server in pairs if index % 2 else reversed(pairs):
                first, second = await _pair(server.port)
                times[app][f"first_{label}"].append(first)
                times[app][f"second_{label}"].append(second)
    return times


def run(loaded: LoadedApps, *, samples: int) -> LatencyReport:
    """Measure every loaded app's latency with and without 0.5 s background tasks.

    Args:
        loaded: The apps to measure.
        samples: Connection pairs (first + second request) per app and server.
    """
    cores = _server.Cores.detect()
    failures: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="triobg-bench-") as tmp,
        _server.serving(loaded.modules, "none", Path(tmp), cores) as (none_servers, failed),
        _server.serving(loaded.modules, "sleep", Path(tmp), cores) as (sleep_servers, failed2),
    ):
        failures.update({f"none/{app}": reason for app, reason in failed.items()})
        failures.update({f"sleep/{app}": reason for app, reason in failed2.items()})
        times = trio.run(_sample, none_servers, sleep_servers, samples)
    results = []
    for app, series in times.items():
        medians = {name: _stats.median(values) for name, values in series.items()}
        results.append(
            LatencyResult(
                app=app,
                first_none_ms=medians["first_none"],
                first_sleep_ms=medians["first_sleep"],
                second_none_ms=medians["second_none"],
                second_sleep_ms=medians["second_sleep"],
                worst_sleep_ms=max(series["first_sleep"] + series["second_sleep"]),
                independent=within_noise(medians["first_sleep"], medians["first_none"])
                and within_noise(medians["second_sleep"], medians["second_none"]),
            )
        )
    return LatencyReport(tuple(results), failures)
