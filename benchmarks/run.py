# Entry point: ``python -m benchmarks.run [--quick] [--only SECTION ...]`` from the repository root.
#
# Loads the apps (a missing framework -- triobg while it is written -- becomes a skip line), runs
# the sections in order (in-process, HTTP, latency, scale), prints the report and the targets'
# PASS/MISS lines, and writes ``benchmarks/results/latest.{md,json}``. Always exits 0 when the
# benchmarks ran: a MISS is a finding for a human to read, not a failed build.
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import attrs

from benchmarks import apps, http, inprocess, latency, report, scale

SECTIONS = ("inprocess", "http", "latency", "scale")


@attrs.frozen
class Settings:
    """How long each section runs. The full run fits in about ten minutes on two cores."""

    inprocess_rounds: int
    inprocess_requests: int
    http_rounds: int
    http_seconds: int
    latency_samples: int
    pending_levels: tuple[int, ...]
    pending_rounds: int
    route_counts: tuple[int, ...]
    routes_rounds: int
    routes_requests: int


FULL = Settings(
    inprocess_rounds=7,
    inprocess_requests=800,
    http_rounds=6,
    http_seconds=2,
    latency_samples=15,
    pending_levels=(1, 10, 100, 1000, 10_000),
    pending_rounds=2,
    route_counts=(10, 100, 1000),
    routes_rounds=9,
    routes_requests=300,
)
QUICK = Settings(
    inprocess_rounds=2,
    inprocess_requests=200,
    http_rounds=2,
    http_seconds=1,
    latency_samples=3,
    pending_levels=(1, 10, 100, 1000),
    pending_rounds=1,
    route_counts=(10, 100, 1000),
    routes_rounds=2,
    routes_requests=200,
)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable)"
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path(__file__).resolve().parent / "results",
        help="where latest.md and latest.json go (default: benchmarks/results)",
    )
    return parser.parse_args(argv)


def _timed(label: str, func: Any, *args: Any, **kwargs: Any) -> Any:
    print(f"[bench] {label} ...", flush=True)
    start = time.monotonic()
    result = func(*args, **kwargs)
    print(f"[bench] {label} done in {time.monotonic() - start:.0f} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the report; returns the process exit status."""
    args = _parse_args(argv)
    settings = QUICK if args.quick else FULL
    sections = args.only or SECTIONS
    env = report.environment()
    machine = env["machine"]
    print(f"[bench] {machine['cpu_model']}, nproc {machine['nproc']}, Python {machine['python']}")
    print("[bench] " + ", ".join(f"{name} {version}" for name, version in env["versions"].items()))
    loaded = apps.load()
    for name, reason in loaded.skipped.items():
        print(f"[bench] SKIP {name}: {reason}")

    s = settings
    result = report.Report(
        environment=env,
        settings={"mode": "quick" if args.quick else "full", **attrs.asdict(settings)},
        skipped_apps=loaded.skipped,
        inprocess=_timed(
            "in-process dispatch",
            inprocess.run,
            loaded,
            rounds=s.inprocess_rounds,
            requests=s.inprocess_requests,
        )
        if "inprocess" in sections
        else None,
        http=_timed("HTTP", http.run, loaded, rounds=s.http_rounds, seconds=s.http_seconds)
        if "http" in sections
        else None,
        latency=_timed("latency independence", latency.run, loaded, samples=s.latency_samples)
        if "latency" in sections
        else None,
        scale=_timed(
            "scale",
            scale.run,
            loaded,
            levels=s.pending_levels,
            level_rounds=s.pending_rounds,
            route_counts=s.route_counts,
            rounds=s.routes_rounds,
            requests=s.routes_requests,
        )
        if "scale" in sections
        else None,
    )
    found = report.targets(result)
    md_path, json_path = report.write(result, found, args.output_dir)
    print()
    print(md_path.read_text())
    for target in found:
        print(f"{target.status:4}  {target.name}: {target.measured}")
    print(f"\n[bench] wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
