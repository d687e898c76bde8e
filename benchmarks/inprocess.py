# In-process dispatch benchmark: microseconds per seed request, background tasks included.
#
# Every app is called directly (``benchmarks._driver``) under ``trio.run``: N sequential requests
# per round, rounds interleaved across apps, the round's time running until the last task has
# finished. Reported: the median time per request and the median per-round ratio to the bare app.
from __future__ import annotations

import gc
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import attrs
import trio

from benchmarks import _driver, _stats
from benchmarks._types import ASGIApp
from benchmarks.apps import BASELINE, LoadedApps, _work


@attrs.frozen
class DispatchResult:
    """One app's in-process cost for one task kind.

    Attributes:
        kind: Task kind (``async``, ``def`` or ``file``).
        app: App name.
        us_per_request: Median over rounds of microseconds per request, tasks included.
        ratio_to_bare: Median over rounds of this app's time divided by bare's in the same round.
        rounds_us: Every round's microseconds per request, in round order.
    """

    kind: str
    app: str
    us_per_request: float
    ratio_to_bare: float | None
    rounds_us: tuple[float, ...]


@attrs.frozen
class DispatchReport:
    """All in-process results, plus the apps that failed (name to reason) per kind."""

    results: tuple[DispatchResult, ...]
    failures: dict[str, str]


async def time_round(
    app: ASGIApp, requests: int, with_query: bool = True, *, adds_tasks: bool = True
) -> float:
    """Microseconds per request for ``requests`` sequential seed requests, tasks included.

    ``adds_tasks`` is False for apps built for the ``none`` kind, whose requests add no task.
    """
    scope = _driver.make_scope(query=_driver.SEED_QUERY if with_query else b"")
    per_request = _driver.TASKS_WITH_QUERY if with_query else _driver.TASKS_WITHOUT_QUERY
    if not adds_tasks:
        per_request = 0
    # Collect outside the timed region so one app does not pay for another's garbage.
    gc.collect()
    target = _work.COMPLETED.value + requests * per_request
    start = time.perf_counter_ns()
    for _ in range(requests):
        await _driver.call(app, scope)
    await _driver.wait_for_completions(target)
    return (time.perf_counter_ns() - start) / 1e3 / requests


async def _measure_kind(
    kind: str, apps: dict[str, ASGIApp], rounds: int, requests: int, failures: dict[str, str]
) -> list[DispatchResult]:
    samples: dict[str, list[float]] = {name: [] for name in apps}
    async with AsyncExitStack() as stack:
        active: list[str] = []
        for name, app in apps.items():
            # Start each app and warm it up; an app that cannot serve the seed request is reported
            # as a failure rather than ending the whole run.
            try:
                await stack.enter_async_context(_driver.running(app))
                await time_round(app, max(requests // 4, 20), adds_tasks=kind != "none")
            except Exception as exc:  # any failure is reported, not raised
                failures[f"{kind}/{name}"] = f"{type(exc).__name__}: {exc}"
                continue
            active.append(name)
        for order in _stats.interleaved(active, rounds):
            for name in order:
                samples[name].append(
                    await time_round(apps[name], requests, adds_tasks=kind != "none")
                )
    return [
        DispatchResult(
            kind=kind,
            app=name,
            us_per_request=_stats.median(samples[name]),
            ratio_to_bare=_stats.paired_ratio(samples, name, BASELINE),
            rounds_us=tuple(samples[name]),
        )
        for name in apps
        if samples[name]
    ]


def run(loaded: LoadedApps, *, rounds: int, requests: int) -> DispatchReport:
    """Measure every loaded app for every measured task kind.

    Args:
        loaded: The apps to compare; ``bare`` should be among them, as ratios are taken to it.
        rounds: Interleaved rounds per kind (after one warm-up round).
        requests: Sequential requests per round.
    """
    results: list[DispatchResult] = []
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="triobg-bench-") as log_root:
        for kind in _work.INPROCESS_KINDS:
            apps: dict[str, ASGIApp] = {}
            for name, factory in loaded.factories.items():
                log_dir = Path(log_root, kind, name)
                log_dir.mkdir(parents=True)
                try:
                    apps[name] = factory(kind, log_dir=str(log_dir))
                except Exception as exc:  # a broken app is a result, not a crash
                    failures[f"{kind}/{name}"] = f"{type(exc).__name__}: {exc}"
            results += trio.run(_measure_kind, kind, apps, rounds, requests, failures)
    return DispatchReport(tuple(results), failures)
