# ``python -m triobg worker|tasks``: dedicated task workers and a shell view of durable tasks.
#
# Where it sits: ``_cli.py`` hands over when the first argument is ``worker`` or ``tasks``.
#
# ``worker module:app`` runs only the app's lifespan (no HTTP): the lifespan is what runs the
# durable-task worker in every triobg process (see ``_durable/_tasks.py``), so a dedicated
# worker gets the same startup/shutdown, ``app.state`` and drain as a web process. SIGINT or
# SIGTERM stop it gracefully (tasks get the drain deadline, leftovers are released and named); a
# second signal stops it at once (leases are released anyway).
#
# ``tasks module:app list|show|retry|cancel|stats`` reads and changes the app's store.
from __future__ import annotations

import argparse
import functools
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import attrs
import trio

from ._app import App
from ._cli import AppLoadError, _fail, _non_negative, _positive_int, load_app, setup_logging
from ._durable._status import TaskStatus
from ._durable._store import TaskNotFound
from ._durable._task import TaskResult

logger = logging.getLogger("triobg.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m triobg", description="Durable tasks: run workers, inspect the store."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser(
        "worker", help="run only durable-task workers for the app (no HTTP)"
    )
    tasks = commands.add_parser("tasks", help="list, show, retry or cancel durable tasks")
    for sub in (worker, tasks):
        sub.add_argument("app", metavar="MODULE:APP", help="where the app is")
        sub.add_argument("--factory", action="store_true", help="MODULE:APP builds the app")
    worker.add_argument(
        "--concurrency", type=_positive_int, metavar="N", help="most tasks running at once"
    )
    worker.add_argument(
        "--drain-timeout",
        type=_non_negative,
        metavar="S",
        help="seconds running tasks get at shutdown (default: the app's drain_timeout)",
    )
    worker.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
    )
    actions = tasks.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the most recent tasks")
    listing.add_argument("--status", choices=[s.value for s in TaskStatus])
    listing.add_argument("--limit", type=_positive_int, default=50)
    for name, text in (
        ("show", "one task as JSON, with its errors"),
        ("retry", "run a failed or cancelled task again"),
        ("cancel", "cancel a task that has not finished"),
    ):
        actions.add_parser(name, help=text).add_argument("id")
    actions.add_parser("stats", help="counts by status")
    actions.add_parser("migrate", help="create or upgrade the store's tables now")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(getattr(args, "log_level", "warning"))
    try:
        app = load_app(args.app, factory=args.factory)
    except AppLoadError as error:
        _fail(str(error))
    if args.command == "worker":
        if args.concurrency is not None:
            app.tasks.concurrency = args.concurrency
        if args.drain_timeout is not None:
            app.background.drain_timeout = args.drain_timeout
        if not app.tasks.registry:
            _fail(f"{args.app} declares no durable tasks (@app.task): nothing to run")
        app.tasks.run_worker = True
        return trio.run(functools.partial(run_worker, app))
    try:
        return trio.run(functools.partial(_tasks_command, app, args))
    except TaskNotFound as error:
        _fail(str(error))


async def run_worker(app: App) -> int:
    """Run the app's lifespan (and so its worker) until SIGINT/SIGTERM; returns the exit code."""
    stop = trio.Event()
    startup = trio.Event()
    messages: dict[str, dict[str, Any]] = {}

    async def receive() -> dict[str, Any]:
        if "startup" not in messages:
            messages["startup"] = {}
            return {"type": "lifespan.startup"}
        await stop.wait()
        return {"type": "lifespan.shutdown"}

    async def send(message: dict[str, Any]) -> None:
        messages[message["type"]] = message
        if message["type"].startswith("lifespan.startup."):
            startup.set()

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not stop.is_set():
                        logger.info("%s received: stopping the worker gracefully", name)
                        stop.set()
                    else:
                        logger.warning("%s received again: stopping now", name)
                        nursery.cancel_scope.cancel()

            async def lifespan() -> None:
                await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)
            nursery.start_soon(lifespan)
            await startup.wait()
            if "lifespan.startup.failed" in messages:
                nursery.cancel_scope.cancel()
                return 1
            print(
                f"triobg: durable-task worker running ({app.tasks.store!r}, concurrency "
                f"{app.tasks.concurrency}; CTRL+C to stop)",
                file=sys.stderr,
                flush=True,
            )
    return 1 if "lifespan.shutdown.failed" in messages else 0


async def _tasks_command(app: App, args: argparse.Namespace) -> int:
    tasks = app.tasks
    try:
        if args.action == "list":
            status = None if args.status is None else TaskStatus(args.status)
            for result in await tasks.list(status, limit=args.limit):
                print(
                    f"{result.id}  {result.status.value:<9}  attempts {result.attempts}  "
                    f"{result.enqueued_at:%Y-%m-%d %H:%M:%S}  {result.name}"
                )
        elif args.action == "stats":
            print(json.dumps(attrs.asdict(await tasks.statistics()), indent=2))
        elif args.action == "migrate":
            version = await tasks.store.migrate()
            print(f"{tasks.store!r} is at schema version {version}")
        else:
            operation = {"show": tasks.get, "retry": tasks.retry, "cancel": tasks.cancel}
            print(_as_json(await operation[args.action](args.id)))
    finally:
        await tasks.store.aclose()
    return 0


def _as_json(result: TaskResult) -> str:
    data = attrs.asdict(result, value_serializer=_plain)
    return json.dumps(data, indent=2)


def _plain(instance: Any, field: Any, value: Any) -> Any:
    if isinstance(value, TaskStatus):
        return value.value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
