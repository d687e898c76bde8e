# Scale: does a request cost more, or a pending task weigh more, as load and app size grow?
#
# In-process (``benchmarks._driver``). Pending tasks: requests without ``q`` add one ``block`` task
# each, which waits on ``_work.GATE``; at 1 ... 10,000 pending tasks we record the Python memory
# held per pending task (tracemalloc) and the time per further request. Routes: the seed request
# against apps with 10, 100 and 1,000 routes, the seed route registered last; rounds interleaved.
from __future__ import annotations

import gc
import math
import time
import tracemalloc
from contextlib import AsyncExitStack

import attrs
import trio

from benchmarks import _driver, _stats
from benchmarks._types import ASGIApp
from benchmarks.apps import BASELINE, LoadedApps, _work
from benchmarks.inprocess import time_round

#: Requests per timed batch at each pending level, and batches (their median is reported).
BATCH = 100
BATCHES = 5
#: Apps always have the seed route and ``GET /count``; the rest are dummies.
FIXED_ROUTES = 2


@attrs.frozen
class PendingResult:
    """One app at one level of pending tasks.

    Attributes:
        pending: Tasks blocked on the gate when the measurement started.
        bytes_per_task: Python memory (tracemalloc) held per pending task, including everything
            the app keeps alive for it (for Starlette and FastAPI, the whole in-flight request).
        us_per_request: Median microseconds per further request at this level (to the reply).
    """

    app: str
    pending: int
    bytes_per_task: float
    us_per_request: float


@attrs.frozen
class RoutesResult:
    """One app at one route count: median microseconds per seed request, tasks included, and the
    median per-round ratio to the same app with the fewest routes."""

    app: str
    routes: int
    us_per_request: float
    ratio_to_fewest: float | None


@attrs.frozen
class ScaleReport:
    """All scale results, and the apps that failed (``test/app`` to reason)."""

    pending: tuple[PendingResult, ...]
    routes: tuple[RoutesResult, ...]
    failures: dict[str, str]


async def _answer_batch(app: ASGIApp, nursery: trio.Nursery, requests: int) -> float:
    scope = _driver.make_scope(query=b"")
    start = time.perf_counter_ns()
    for _ in range(requests):
        await _driver.call_soon(app, scope, nursery)
    return (time.perf_counter_ns() - start) / 1e3 / requests


async def _level(
    app: ASGIApp, nursery: trio.Nursery, pending: int, *, trace: bool
) -> tuple[float | None, float]:
    """Bytes per pending task (if ``trace``) and microseconds per further request, with
    ``pending`` tasks blocked.

    Leaves nothing behind: the gate is opened and every request and task has finished on return.
    """
    _work.GATE.reset()
    finished_before = _work.COMPLETED.value
    gc.collect()
    if trace:
        tracemalloc.start()
    try:
        held_before = tracemalloc.get_traced_memory()[0]
        await _answer_batch(app, nursery, pending)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - held_before
    finally:
        if trace:
            tracemalloc.stop()
    times = []
    for _ in range(BATCHES):
        # Timed without tracemalloc, which slows every allocation, and after a full collection, so
        # a collection the previous level left due does not land in one app's batch at random.
        gc.collect()
        times.append(await _answer_batch(app, nursery, BATCH))
    _work.GATE.open()
    await _driver.wait_for_completions(finished_before + pending + BATCH * BATCHES)
    with trio.fail_after(_driver.HANDSHAKE_TIMEOUT):
        # Apps that run tasks inside the ASGI call return from it only now.
        while nursery.child_tasks:  # noqa: ASYNC110 -- nothing to wait on but the nursery itself
            await trio.sleep(0.001)
    return (held / pending if trace else None), _stats.median(times)


async def _pending_levels(
    name: str, app: ASGIApp, levels: tuple[int, ...], rounds: int
) -> list[PendingResult]:
    memory: dict[int, float] = {}
    times: dict[int, list[float]] = {pending: [] for pending in levels}
    async with _driver.running(app) as nursery:
        await _level(app, nursery, BATCH, trace=False)  # warm-up
        for index, order in enumerate(_stats.interleaved(levels, rounds)):
            for pending in order:
                # Memory is deterministic enough to trace once; timing needs every round.
                bytes_per_task, us_per_request = await _level(
                    app, nursery, pending, trace=index == 0
                )
                if bytes_per_task is not None:
                    memory[pending] = bytes_per_task
                times[pending].append(us_per_request)
    return [
        PendingResult(name, pending, memory.get(pending, math.nan), _stats.median(times[pending]))
        for pending in levels
    ]


async def _routes(
    apps: dict[tuple[str, int], ASGIApp], rounds: int, requests: int, failures: dict[str, str]
) -> dict[tuple[str, int], list[float]]:
    samples: dict[tuple[str, int], list[float]] = {key: [] for key in apps}
    async with AsyncExitStack() as stack:
        active = []
        for key, app in apps.items():
            try:
                await stack.enter_async_context(_driver.running(app))
                await time_round(app, max(requests // 4, 20))
            except Exception as exc:  # a broken app is a result, not a crash
                failures[f"routes/{key[0]}/{key[1]}"] = f"{type(exc).__name__}: {exc}"
                continue
            active.append(key)
        for order in _stats.interleaved(active, rounds):
            for key in order:
                samples[key].append(await time_round(apps[key], requests))
    return samples


def run(
    loaded: LoadedApps,
    *,
    levels: tuple[int, ...],
    level_rounds: int,
    route_counts: tuple[int, ...],
    rounds: int,
    requests: int,
) -> ScaleReport:
    """Measure pending-task and route-count scaling for every loaded app.

    Args:
        loaded: The apps to measure; ``bare`` has no router and is left out of the routes test.
        levels: Numbers of pending tasks to measure at.
        level_rounds: Passes over all levels (in rotating order); medians are reported.
        route_counts: Total route counts to measure at; the first is the reference for ratios.
        rounds: Interleaved rounds of the routes test.
        requests: Sequential requests per routes round.
    """
    failures: dict[str, str] = {}
    pending: list[PendingResult] = []
    for name, factory in loaded.factories.items():
        try:
            pending += trio.run(_pending_levels, name, factory("block"), levels, level_rounds)
        except Exception as exc:  # a broken app is a result, not a crash
            failures[f"pending/{name}"] = f"{type(exc).__name__}: {exc}"

    apps: dict[tuple[str, int], ASGIApp] = {}
    for name, factory in loaded.factories.items():
        if name == BASELINE:
            continue
        for count in route_counts:
            apps[name, count] = factory("async", extra_routes=count - FIXED_ROUTES)
    samples = trio.run(_routes, apps, rounds, requests, failures)
    routes = []
    for (name, count), values in samples.items():
        if not values:
            continue
        ratio = _stats.paired_ratio(
            {"this": values, "fewest": samples.get((name, route_counts[0]), [])}, "this", "fewest"
        )
        routes.append(RoutesResult(name, count, _stats.median(values), ratio))
    return ScaleReport(tuple(pending), tuple(routes), failures)
