# Turns benchmark results into the report: machine and versions, tables, and PASS/MISS targets.
#
# The targets are issue 7's: in-process within 1.5x bare; over HTTP at least 0.97x bare and 1.3x
# FastAPI with async tasks and 1.2x bare with ``def`` tasks; latency unaffected by a 0.5 s task;
# cost and memory flat as pending tasks and routes grow. Written as ``results/latest.md`` and
# ``results/latest.json``.
from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs

from benchmarks.http import HttpReport
from benchmarks.inprocess import DispatchReport
from benchmarks.latency import LatencyReport
from benchmarks.scale import ScaleReport

#: Distributions whose versions the report names.
PACKAGES = (
    "triobg",
    "trio",
    "hypercorn",
    "h11",
    "attrs",
    "cattrs",
    "anyio",
    "starlette",
    "fastapi",
    "pydantic",
    "quart",
    "quart-trio",
)
#: "Flat" means the largest size costs at most this many times the reference size. Looser than
#: the throughput targets: the scale batches are short, and a shared machine is noisy.
FLAT_TOLERANCE = 1.3
APP = "triobg"


@attrs.frozen
class Target:
    """One line of the issue's targets: what was measured against what was asked."""

    name: str
    measured: str
    status: str  # PASS, MISS or SKIP


@attrs.frozen
class Report:
    """Everything one run produced; a section is None when it was not run."""

    environment: dict[str, Any]
    settings: dict[str, Any]
    skipped_apps: dict[str, str]
    inprocess: DispatchReport | None
    http: HttpReport | None
    latency: LatencyReport | None
    scale: ScaleReport | None


def environment() -> dict[str, Any]:
    """Date, machine and package versions, so a result can be read next to where it came from."""
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = _source_version(package)
    wrk = shutil.which("wrk")
    if wrk:
        banner = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10)
        versions["wrk"] = (banner.stdout or banner.stderr).split("\n")[0]
    else:
        versions["wrk"] = "not installed"
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)),
            "cpu_model": cpu_model,
            "kernel": platform.release(),
            "python": platform.python_version(),
        },
        "versions": versions,
    }


def _source_version(package: str) -> str:
    # triobg runs from the source tree (PYTHONPATH) before it is pip-installed.
    try:
        module = __import__(package)
    except Exception:  # an absent package is reported, not raised
        return "not installed"
    return f"{getattr(module, '__version__', '?')} (source)"


# --- targets ---------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def _check(name: str, value: float | None, ok: bool, measured: str | None = None) -> Target:
    if value is None or math.isnan(value):
        return Target(name, "not measured", "SKIP")
    return Target(name, measured or _fmt(value), "PASS" if ok else "MISS")


def targets(report: Report) -> list[Target]:
    """Evaluate every target of the issue against ``report``; SKIP where it was not measured."""
    found: list[Target] = []
    if report.inprocess is not None:
        for kind in ("none", "async", "def", "file"):
            row = _find(report.inprocess.results, kind=kind, app=APP)
            ratio = row.ratio_to_bare if row else None
            what = "seed endpoint, no tasks" if kind == "none" else f"{kind} tasks"
            found.append(
                _check(
                    f"in-process {what}: triobg ≤ 1.5x bare time",
                    ratio,
                    ratio is not None and ratio <= 1.5,
                    f"{_fmt(ratio)}x",
                )
            )
    if report.http is not None:
        row = _find(report.http.results, kind="async", app=APP)
        ratio = row.ratio_to_bare if row else None
        found.append(
            _check(
                "HTTP async tasks: triobg ≥ 0.97x bare req/s",
                ratio,
                ratio is not None and ratio >= 0.97,
                f"{_fmt(ratio)}x",
            )
        )
        ratio = row.ratio_to_fastapi if row else None
        found.append(
            _check(
                "HTTP async tasks: triobg ≥ 1.3x FastAPI req/s",
                ratio,
                ratio is not None and ratio >= 1.3,
                f"{_fmt(ratio)}x",
            )
        )
        for kind in ("def", "file"):
            row = _find(report.http.results, kind=kind, app=APP)
            ratio = row.ratio_to_bare if row else None
            found.append(
                _check(
                    f"HTTP {kind} tasks: triobg ≥ 1.2x bare req/s",
                    ratio,
                    ratio is not None and ratio >= 1.2,
                    f"{_fmt(ratio)}x",
                )
            )
        rows = [r for r in report.http.results if r.app == APP]
        found.append(
            Target(
                "HTTP: every acknowledged request's tasks ran (triobg, all kinds)",
                ", ".join(f"{r.kind} {r.tasks_counted}/{r.tasks_expected}" for r in rows)
                or "not measured",
                ("PASS" if all(r.tasks_ok for r in rows) else "MISS") if rows else "SKIP",
            )
        )
    if report.latency is not None:
        lat = _find(report.latency.results, app=APP)
        found.append(
            Target(
                "latency with a 0.5 s task = without (first and keep-alive second request)",
                f"first {_fmt(lat.first_sleep_ms)} vs {_fmt(lat.first_none_ms)} ms, second "
                f"{_fmt(lat.second_sleep_ms)} vs {_fmt(lat.second_none_ms)} ms"
                if lat
                else "not measured",
                ("PASS" if lat.independent else "MISS") if lat else "SKIP",
            )
        )
    if report.scale is not None:
        found += _scale_targets(report.scale)
    return found


def _scale_targets(scale: ScaleReport) -> list[Target]:
    rows = sorted((r for r in scale.pending if r.app == APP), key=lambda r: r.pending)
    found = []
    if rows:
        # Memory is compared from 100 pending on: below that, one-off allocations dominate.
        reference = next((r for r in rows if r.pending >= 100), rows[0])
        growth = rows[-1].bytes_per_task / reference.bytes_per_task
        found.append(
            _check(
                f"memory per pending task flat ({reference.pending} → {rows[-1].pending})",
                growth,
                growth <= FLAT_TOLERANCE,
                f"{rows[-1].bytes_per_task:.0f} vs {reference.bytes_per_task:.0f} B "
                f"({growth:.2f}x)",
            )
        )
        growth = rows[-1].us_per_request / rows[0].us_per_request
        # Python's own collector makes every app a little slower with many live objects; the
        # ceiling's growth is shown alongside so a reader can tell triobg's share from Python's.
        bare = sorted((r for r in scale.pending if r.app == "bare"), key=lambda r: r.pending)
        context = f", bare {bare[-1].us_per_request / bare[0].us_per_request:.2f}x" if bare else ""
        found.append(
            _check(
                f"cost per request flat ({rows[0].pending} → {rows[-1].pending} pending)",
                growth,
                growth <= FLAT_TOLERANCE,
                f"{rows[-1].us_per_request:.0f} vs {rows[0].us_per_request:.0f} µs "
                f"({growth:.2f}x{context})",
            )
        )
    else:
        found.append(Target("memory and cost flat as pending tasks grow", "not measured", "SKIP"))
    routes = sorted((r for r in scale.routes if r.app == APP), key=lambda r: r.routes)
    if routes:
        ratio = routes[-1].ratio_to_fewest
        found.append(
            _check(
                f"cost per request flat ({routes[0].routes} → {routes[-1].routes} routes)",
                ratio,
                ratio is not None and ratio <= FLAT_TOLERANCE,
                f"{_fmt(ratio)}x",
            )
        )
    else:
        found.append(Target("cost per request flat as routes grow", "not measured", "SKIP"))
    return found


def _find(rows: Iterable[Any], **match: Any) -> Any:
    for row in rows:
        if all(getattr(row, key) == value for key, value in match.items()):
            return row
    return None


# --- rendering -------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(report: Report, found: list[Target]) -> str:
    """The whole report as markdown: what ran where, the tables, then the targets."""
    env = report.environment
    machine = env["machine"]
    lines = [
        "# triobg benchmarks",
        "",
        f"Run {env['date']} on {machine['cpu_model']}, {machine['nproc']} CPUs "
        f"({machine['usable_cpus']} usable), Linux {machine['kernel']}, "
        f"Python {machine['python']}.",
        "",
        "Settings: " + ", ".join(f"{key} {value}" for key, value in report.settings.items()) + ".",
        "",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in env["versions"].items()),
        "",
        "Ratios are medians of per-round ratios (rounds interleaved across apps), so they are",
        "more trustworthy than the absolute numbers, which drift on a shared machine.",
        "",
    ]
    lines += [f"- skipped {app}: {reason}" for app, reason in report.skipped_apps.items()]
    lines += ["", "## Targets", ""]
    lines += _table(
        ["target", "measured", "status"], [(t.name, t.measured, t.status) for t in found]
    )
    if report.inprocess is not None:
        lines += ["## In-process dispatch (µs per request, tasks included)", ""]
        lines += _table(
            ["tasks", "app", "µs/request", "x bare"],
            [
                (r.kind, r.app, f"{r.us_per_request:.1f}", _fmt(r.ratio_to_bare))
                for r in report.inprocess.results
            ],
        )
        lines += _failures(report.inprocess.failures)
    if report.http is not None:
        lines += ["## HTTP (hypercorn trio worker, wrk, 64 connections)", ""]
        if report.http.skipped:
            lines += [f"Skipped: {report.http.skipped}", ""]
        lines += _table(
            [
                "tasks",
                "app",
                "req/s",
                "x bare",
                "x FastAPI",
                "p50 ms",
                "p99 ms",
                "server CPU µs/req",
                "errors",
                "tasks ran",
            ],
            [
                (
                    r.kind,
                    r.app,
                    f"{r.requests_per_s:.0f}",
                    _fmt(r.ratio_to_bare),
                    _fmt(r.ratio_to_fastapi),
                    _fmt(r.p50_ms, ".1f"),
                    _fmt(r.p99_ms, ".1f"),
                    f"{r.cpu_us_per_request:.0f}",
                    r.errors,
                    f"{'ok' if r.tasks_ok else 'MISSING'} {r.tasks_counted}/{r.tasks_expected}",
                )
                for r in report.http.results
            ],
        )
        lines += _failures(report.http.failures)
    if report.latency is not None:
        lines += ["## Latency independence (ms, medians; tasks sleep 0.5 s)", ""]
        lines += _table(
            [
                "app",
                "1st, no task",
                "1st, 0.5 s task",
                "2nd keep-alive, no task",
                "2nd keep-alive, 0.5 s task",
                "worst with task",
                "independent",
            ],
            [
                (
                    r.app,
                    _fmt(r.first_none_ms),
                    _fmt(r.first_sleep_ms),
                    _fmt(r.second_none_ms),
                    _fmt(r.second_sleep_ms),
                    _fmt(r.worst_sleep_ms),
                    "yes" if r.independent else "NO",
                )
                for r in report.latency.results
            ],
        )
        lines += _failures(report.latency.failures)
    if report.scale is not None:
        lines += _scale_tables(report.scale)
    return "\n".join(lines)


def _scale_tables(scale: ScaleReport) -> list[str]:
    lines: list[str] = []
    levels = sorted({r.pending for r in scale.pending})
    apps = list(dict.fromkeys(r.app for r in scale.pending))
    by_key = {(r.app, r.pending): r for r in scale.pending}
    for title, field, spec in (
        ("bytes of Python memory per pending task", "bytes_per_task", ".0f"),
        ("µs per request with this many tasks pending", "us_per_request", ".1f"),
    ):
        lines += [f"## Scale: {title}", ""]
        lines += _table(
            ["app", *(f"{level:,}" for level in levels)],
            [
                (
                    app,
                    *(
                        _fmt(getattr(by_key[app, level], field), spec)
                        if (app, level) in by_key
                        else "n/a"
                        for level in levels
                    ),
                )
                for app in apps
            ],
        )
    counts = sorted({r.routes for r in scale.routes})
    apps = list(dict.fromkeys(r.app for r in scale.routes))
    routes = {(r.app, r.routes): r for r in scale.routes}
    lines += ["## Scale: µs per request (tasks included) by number of routes", ""]
    lines += _table(
        [
            "app",
            *(f"{count:,} routes" for count in counts),
            f"{counts[-1]:,} vs {counts[0]:,}" if counts else "ratio",
        ],
        [
            (
                app,
                *(
                    f"{routes[app, c].us_per_request:.1f}" if (app, c) in routes else "n/a"
                    for c in counts
                ),
                _fmt(routes[app, counts[-1]].ratio_to_fewest)
                if (app, counts[-1]) in routes
                else "n/a",
            )
            for app in apps
        ],
    )
    return lines + _failures(scale.failures)


def _failures(failures: dict[str, str]) -> list[str]:
    if not failures:
        return []
    lines = ["Failures:", ""]
    lines += [
        f"- {key}: {reason.splitlines()[0] if reason else ''}" for key, reason in failures.items()
    ]
    return [*lines, ""]


def _clean(value: Any) -> Any:
    # Strict JSON has no NaN; a missing measurement is null.
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def write(report: Report, found: list[Target], directory: Path) -> tuple[Path, Path]:
    """Write ``latest.md`` and ``latest.json`` into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    md_path, json_path = directory / "latest.md", directory / "latest.json"
    md_path.write_text(markdown(report, found))
    payload = {**attrs.asdict(report), "targets": [attrs.asdict(t) for t in found]}
    json_path.write_text(json.dumps(_clean(payload), indent=2, allow_nan=False) + "\n")
    return md_path, json_path
