# The command line: ``python -m triobg module:app`` (or the ``triobg`` script).
#
# Where it sits: it loads the user's app, then hands it to ``triobg.serve`` (``_serve.py``) in a
# ``trio.run`` of its own, turning SIGINT/SIGTERM into the graceful shutdown (drain included) and
# a second signal into an immediate stop. ``--server native --workers N`` starts N such processes
# on one port (``_server/_workers.py``). Otherwise several workers are hypercorn's job: the CLI
# then configures hypercorn's multi-process runner with the trio worker and the same settings,
# and each worker process loads the app again through ``_worker_app``. ``--reload`` runs all of
# that in a child process that ``_reload.py`` restarts when a source file changes.
from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import trio

from ._app import App
from ._logging import LOG_FORMAT
from ._reload import LOAD_FAILED, RELOAD_CHILD_ENV, report_load_error, run_reloader
from ._serve import DEFAULT_READ_TIMEOUT, DEFAULT_SEND_TIMEOUT, _sole_leaf, build_config, serve
from ._server import ServerConfig
from ._server._workers import WORKER_BINDS_ENV, run_workers

logger = logging.getLogger("triobg.cli")

_DESCRIPTION = """\
Serve a triobg app on triobg's own HTTP/1.1 server (or hypercorn's trio worker: --server).

SIGINT or SIGTERM shut down gracefully: the server stops accepting connections, in-flight
requests finish, background tasks get the drain deadline (tasks still running then are
cancelled and named in the log), the lifespan shutdown runs. A second signal stops at once.
"""

_EPILOG = """\
examples:
  python -m triobg myproject.api:app --bind 0.0.0.0:8000
  python -m triobg worker myproject.api:app --concurrency 64   (durable tasks only)
  python -m triobg tasks myproject.api:app list|show ID|retry ID|cancel ID|stats
  python -m triobg myproject.api:create_app --factory --drain-timeout 10
  python -m triobg myproject.api:app --workers 4 --access-log
"""


class AppLoadError(Exception):
    """The ``module:attribute`` given on the command line does not lead to a triobg app."""


def load_app(spec: str, *, factory: bool = False) -> App:
    """Import ``module:attribute`` and return the ``App`` it names (or that it builds).

    The current directory is importable, as with ``python -m``. ``attribute`` may be dotted
    (``module:api.app``).

    Raises:
        AppLoadError: the spec is malformed, the module or attribute does not exist, or the
            object is not a triobg ``App`` (with ``factory``: not a callable returning one).
            Exceptions raised by the user's module itself while it imports propagate as they
            are: they are bugs in that module, and their traceback is what the user needs.
    """
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise AppLoadError(f"expected 'module:attribute', got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"cannot import {module_name!r}: no module named {missing!r}"
            ) from None
        raise
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr_path!r}") from None
    if factory:
        if not callable(obj):
            raise AppLoadError(f"{spec} is not callable, so it cannot be an app factory")
        obj = obj()
        if not isinstance(obj, App):
            raise AppLoadError(
                f"the factory {spec} returned {type(obj).__name__}, not a triobg.App"
            )
        return obj
    if not isinstance(obj, App):
        hint = " (if it builds the app, add --factory)" if callable(obj) else ""
        raise AppLoadError(f"{spec} is {type(obj).__name__}, not a triobg.App{hint}")
    return obj


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0: {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m triobg",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "app", metavar="MODULE:APP", help="where the app is, e.g. 'myproject.api:app'"
    )
    parser.add_argument(
        "-b",
        "--bind",
        action="append",
        metavar="HOST:PORT",
        help="address to listen on; repeat for several; also unix:PATH (default 127.0.0.1:8000)",
    )
    parser.add_argument(
        "--host", help="host to listen on, with --port (as uvicorn's; default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, help="port to listen on, with --host (as uvicorn's; default 8000)"
    )
    parser.add_argument(
        "-w",
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="worker processes (hypercorn's runner; each one drains its own tasks) (default 1)",
    )
    parser.add_argument(
        "--server",
        choices=["native", "hypercorn"],
        help="triobg's own HTTP/1.1 server, or hypercorn's trio worker (HTTP/2 too) "
        "(default: native, or hypercorn for an app with WebSocket routes; hypercorn's "
        "runner for --workers N unless "
        "--server native is given: then N native processes share the port, SO_REUSEPORT)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart when a .py file under the current directory changes; an app that does "
        "not load is reported and retried after the next change (development)",
    )
    parser.add_argument(
        "--reload-dir",
        action="append",
        metavar="DIR",
        help="with --reload: watch this directory instead of the current one; repeat for several",
    )
    parser.add_argument(
        "--factory",
        action="store_true",
        help="MODULE:APP is a callable taking no arguments that returns the app",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_non_negative,
        metavar="S",
        help="seconds background tasks get at shutdown (default: the app's drain_timeout)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=_non_negative,
        metavar="S",
        help="seconds in-flight connections get at shutdown before being cancelled "
        "(default: drain timeout + 0.25, so the drain is never cut short)",
    )
    parser.add_argument(
        "--keep-alive",
        type=_non_negative,
        metavar="S",
        help="seconds an idle keep-alive connection stays open (default 5)",
    )
    parser.add_argument(
        "--send-timeout",
        type=_non_negative,
        default=DEFAULT_SEND_TIMEOUT,
        metavar="S",
        help="drop a client that accepts no data for this long; 0: never (Linux only) "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--read-timeout",
        type=_non_negative,
        default=DEFAULT_READ_TIMEOUT,
        metavar="S",
        help="close a connection that sends nothing for this long while the server waits to "
        "read (headers, a body, or while a handler works); 0: never (default %(default)s)",
    )
    parser.add_argument("--certfile", metavar="PATH", help="PEM certificate, to serve HTTPS")
    parser.add_argument("--keyfile", metavar="PATH", help="PEM private key for --certfile")
    parser.add_argument(
        "--access-log", action="store_true", help="log every request (logger hypercorn.access)"
    )
    parser.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="(default %(default)s)",
    )
    return parser


def setup_logging(level: str) -> None:
    """Send log records of ``level`` and above to stderr, once per process."""
    logging.basicConfig(
        level=level.upper(),
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    if level != "debug":
        # hypercorn repeats "Running on ..." per worker; keep it, but not its debug chatter.
        logging.getLogger("hypercorn.error").setLevel(max(logging.INFO, logging.getLogger().level))


def _fail(message: str, status: int = 2) -> NoReturn:
    print(f"triobg: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def _startup_problem(error: BaseException) -> str | None:
    """One line for an error that stops the server from starting, or ``None`` if it is none.

    A port already in use, an address that cannot be bound, a certificate that cannot be read
    and a malformed ``--bind`` reach us from inside the server's nurseries as a group of one; a
    person at a terminal needs the sentence, not forty lines of group traceback.
    """
    if isinstance(error, BaseExceptionGroup):
        leaf = _sole_leaf(error)
        return None if leaf is None else _startup_problem(leaf)
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        where = f" ({error.filename})" if error.filename else ""
        return f"cannot start the server: {reason.lower()}{where}"
    if isinstance(error, ValueError):
        return f"cannot start the server: {error}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("worker", "tasks"):  # durable tasks: see ``_cli_tasks.py``
        from ._cli_tasks import main as tasks_main

        return tasks_main(argv)
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    if args.reload_dir and not args.reload:
        _fail("--reload-dir goes with --reload")
    reload_child = os.environ.get(RELOAD_CHILD_ENV) == "1"
    if args.reload and not reload_child:
        # This process never imports the app: a syntax error must not stop the reloader.
        directories = [Path(d).resolve() for d in args.reload_dir or [os.getcwd()]]
        for directory in directories:
            if not directory.is_dir():
                _fail(f"--reload-dir {directory} is not a directory")
        return run_reloader(sys.argv[1:] if argv is None else argv, directories)
    try:
        app = load_app(args.app, factory=args.factory)
    except AppLoadError as error:
        if reload_child:
            print(f"triobg: error: {error}", file=sys.stderr, flush=True)
            return LOAD_FAILED
        _fail(str(error))
    except Exception as error:
        if not reload_child:
            raise
        report_load_error(args.app, error)  # one block; the reloader waits for the fix
        return LOAD_FAILED
    if args.drain_timeout is not None:
        app.background.drain_timeout = args.drain_timeout
    if (args.certfile is None) != (args.keyfile is None):
        _fail("--certfile and --keyfile go together")
    for flag, path in (("--certfile", args.certfile), ("--keyfile", args.keyfile)):
        if path is not None and not os.access(path, os.R_OK):
            _fail(f"cannot read {flag} {path}")
    if args.bind and (args.host is not None or args.port is not None):
        _fail("give --bind, or --host and --port, not both")
    if args.host is not None or args.port is not None:
        host = args.host or "127.0.0.1"
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host  # IPv6
        args.bind = [f"{host}:{8000 if args.port is None else args.port}"]
    options: dict[str, Any] = {
        "bind": args.bind or ["127.0.0.1:8000"],
        "keep_alive_timeout": args.keep_alive,
        "graceful_timeout": args.graceful_timeout,
        "send_timeout": args.send_timeout or None,
        "read_timeout": args.read_timeout or None,
        "certfile": args.certfile,
        "keyfile": args.keyfile,
        "access_log": args.access_log or None,
    }
    if args.workers == 1:
        options["server"] = args.server  # None: serve picks (hypercorn for WebSockets)
        if WORKER_BINDS_ENV in os.environ:  # one of ``run_workers``' processes
            options["bind"] = json.loads(os.environ[WORKER_BINDS_ENV])
            options["server_config"] = ServerConfig(reuse_port=True)
    elif args.server == "native":
        try:
            return run_workers(
                sys.argv[1:] if argv is None else argv, options["bind"], args.workers
            )
        except ValueError as error:
            _fail(str(error))
    else:
        return _run_hypercorn(app, args, options)
    try:
        trio.run(functools.partial(_serve_until_signalled, app, options))
    except (OSError, ValueError, BaseExceptionGroup) as error:
        problem = _startup_problem(error)
        if problem is None:
            raise
        logger.debug("the server could not start", exc_info=error)
        _fail(f"{problem}; bind: {', '.join(options['bind'])}", status=1)
    return 0


async def _serve_until_signalled(app: App, options: dict[str, Any]) -> None:
    stop = trio.Event()
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    if not stop.is_set():
                        logger.info(
                            "%s received: shutting down gracefully (send it again to stop now)",
                            name,
                        )
                        stop.set()
                    else:
                        logger.warning("%s received again: stopping now", name)
                        nursery.cancel_scope.cancel()

            async def run_server(task_status: trio.TaskStatus[list[str]]) -> None:
                await serve(app, shutdown_trigger=stop.wait, task_status=task_status, **options)
                nursery.cancel_scope.cancel()  # the signal watcher is done too

            nursery.start_soon(watch_signals)
            urls: list[str] = await nursery.start(run_server)
            for url in urls:
                # One write per line: several workers share the terminal (print writes the
                # newline separately, so their lines could interleave).
                sys.stderr.write(f"triobg: serving on {url} (CTRL+C to quit)\n")
                sys.stderr.flush()


def _run_hypercorn(app: App, args: argparse.Namespace, options: dict[str, Any]) -> int:
    # hypercorn's runner starts fresh processes (spawn) that import the app by a path it
    # evaluates in a module's namespace; pointing it at ``_worker_app`` here lets every worker
    # load the app the same way as this process did, with the same overrides and logging.
    from hypercorn.run import run

    module_name, _, attr_path = args.app.partition(":")
    config = build_config(app, **options)
    config.worker_class = "trio"
    config.workers = args.workers
    config.application_path = (
        f"{__name__}:_worker_app({module_name!r}, {attr_path!r}, {args.factory!r}, "
        f"{app.background.drain_timeout!r}, {args.log_level!r})"
    )
    print(
        f"triobg: starting {args.workers} hypercorn trio worker(s) on {', '.join(config.bind)}; "
        "each logs the URL it serves (CTRL+C to quit)",
        file=sys.stderr,
        flush=True,
    )
    return run(config)


def _worker_app(
    module_name: str, attr_path: str, factory: bool, drain_timeout: float, log_level: str
) -> App:
    """Load the app in a hypercorn worker process (see ``_run_hypercorn``).

    The runner's habit of sending SIGTERM to workers that are still draining is handled by the
    app's lifespan startup (``_signals.py``), the same way as under plain hypercorn.
    """
    setup_logging(log_level)
    app = load_app(f"{module_name}:{attr_path}", factory=factory)
    app.background.drain_timeout = drain_timeout
    return app
