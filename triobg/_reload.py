# ``python -m triobg --reload``: serve in a child process and start a new one when a source
# file changes, surviving an app that does not load (a syntax error, a failing import).
#
# Where it sits: ``_cli.py`` calls ``run_reloader`` instead of loading the app. This process
# never imports the app, so nothing the user writes can break it; it watches the ``*.py`` files
# under the watched directories (the current one by default) by polling their modification
# times, and runs ``python -m triobg`` with the same arguments and ``RELOAD_CHILD_ENV`` set. That
# child serves exactly as without ``--reload``; if the app fails to load it prints the error as
# one block and exits with ``LOAD_FAILED``. After a change the child gets SIGTERM, so a reload
# is a graceful shutdown (background tasks drain) followed by a fresh start; after a child that
# failed or exited, the reloader waits for the next change instead of giving up.
#
# Signals, as in ``_server/_workers.py``: the child shares the terminal's process group, so a
# CTRL+C reaches it directly and this process only notes it and waits for the child to finish
# its graceful shutdown. SIGTERM sent to this process is forwarded to the child.
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Final

#: Tells ``python -m triobg`` that it is the reloader's child: serve, never reload.
RELOAD_CHILD_ENV: Final = "TRIOBG_RELOAD_CHILD"

#: The exit status of a child whose app did not load (the reloader then waits for a change).
LOAD_FAILED: Final = 3

#: The exit status of a usage error (argparse's): no file change can fix it, so stop.
_USAGE_ERROR: Final = 2

#: Seconds between two looks at the watched files (uvicorn's stat reloader uses 0.25 too).
POLL_INTERVAL: Final = 0.25

#: Most files watched: a reloader started from a home directory must not crawl it every time.
MAX_WATCHED_FILES: Final = 10_000

_SKIPPED_DIRS: Final = frozenset({"__pycache__", "node_modules", "site-packages"})

#: Where traceback frames say nothing about the user's code: triobg's ``load_app`` and the
#: import machinery.
_NOT_THE_USERS: Final = (
    str(Path(__file__).parent) + os.sep,
    str(Path(importlib.__file__).parent) + os.sep,
)

Snapshot = dict[str, tuple[int, int]]


def _say(message: str) -> None:
    sys.stderr.write(f"triobg: {message}\n")  # one write per line: the child shares stderr
    sys.stderr.flush()


def snapshot(directories: Sequence[Path]) -> Snapshot:
    """Modification time and size of each ``*.py`` file under ``directories``.

    Hidden directories, ``__pycache__``, ``node_modules`` and virtual environments (a directory
    holding ``pyvenv.cfg``) are skipped; past ``MAX_WATCHED_FILES`` files the rest are not seen.
    """
    found: Snapshot = {}
    for directory in directories:
        for root, subdirs, files in os.walk(directory):
            subdirs[:] = [
                name
                for name in subdirs
                if not name.startswith(".")
                and name not in _SKIPPED_DIRS
                and not os.path.exists(os.path.join(root, name, "pyvenv.cfg"))
            ]
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(root, name)
                try:
                    stat = os.stat(path)
                except OSError:  # removed between the listing and now: a change next time
                    continue
                found[path] = (stat.st_mtime_ns, stat.st_size)
                if len(found) >= MAX_WATCHED_FILES:
                    return found
    return found


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """The files added, removed or modified between two snapshots, sorted."""
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def report_load_error(spec: str, error: BaseException) -> None:
    """Print why the app did not load as one block: where, the code, the error.

    A syntax error shows its file, line and caret; any other exception its traceback without
    the import machinery's frames, which say nothing about the user's code.
    """
    lines = [f"triobg: error: cannot load the app {spec!r}:\n"]
    if not isinstance(error, SyntaxError):
        frames = [
            frame
            for frame in traceback.extract_tb(error.__traceback__)
            if not frame.filename.startswith(("<frozen importlib", *_NOT_THE_USERS))
        ]
        lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    sys.stderr.write("".join(lines))
    sys.stderr.flush()


class _Signals:
    """What the reloader was told: stop gracefully (first signal), stop now (second)."""

    def __init__(self) -> None:
        self.stopping = False
        self.child: subprocess.Popen[bytes] | None = None

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # The terminal sent it to the child too (same process group): only remember it.
        self.stopping = True

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)


def run_reloader(argv: Sequence[str], directories: Sequence[Path]) -> int:
    """Serve ``python -m triobg *argv`` in a child, restarting it when a watched file changes.

    Returns:
        The last child's exit status once a signal stopped the reloader (0 after a graceful
        shutdown), or 2 if the child refused its arguments.
    """
    command = [sys.executable, "-m", "triobg", *argv]
    env = {**os.environ, RELOAD_CHILD_ENV: "1"}
    signals = _Signals()
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signals.on_sigint),
        signal.SIGTERM: signal.signal(signal.SIGTERM, signals.on_sigterm),
    }
    watched = ", ".join(str(d) for d in directories)
    try:
        files = snapshot(directories)
        _say(f"reloading when a .py file under {watched} changes ({len(files)} watched)")
        while True:
            child = signals.child = subprocess.Popen(command, env=env)
            status, changed = _watch(child, files, directories, signals)
            if signals.stopping:
                return child.wait() if status is None else status
            if changed is None:  # the child exited on its own
                assert status is not None
                if status == _USAGE_ERROR:
                    return status
                why = "the app did not load" if status == LOAD_FAILED else f"exit status {status}"
                _say(f"the server stopped ({why}); waiting for a file to change")
                changed = _wait_for_change(files, directories, signals)
                if changed is None:
                    return 0
            _say(f"{_describe(changed)} changed: reloading")
            files = snapshot(directories)  # what the next child starts from
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _watch(
    child: subprocess.Popen[bytes], files: Snapshot, directories: Sequence[Path], signals: _Signals
) -> tuple[int | None, list[str] | None]:
    """Until the child exits or a file changes: (exit status, changed files)."""
    while True:
        try:
            return child.wait(timeout=POLL_INTERVAL), None
        except subprocess.TimeoutExpired:
            pass
        if signals.stopping:
            return None, None
        changed = changed_files(files, snapshot(directories))
        if changed:
            child.send_signal(signal.SIGTERM)  # a graceful shutdown: its tasks drain first
            return child.wait(), changed


def _wait_for_change(
    files: Snapshot, directories: Sequence[Path], signals: _Signals
) -> list[str] | None:
    """Poll until a watched file changes (its names), or ``None`` once a signal came."""
    while not signals.stopping:
        changed = changed_files(files, snapshot(directories))
        if changed:
            return changed
        time.sleep(POLL_INTERVAL)
    return None


def _describe(changed: Sequence[str]) -> str:
    first = os.path.relpath(changed[0])
    return first if len(changed) == 1 else f"{first} and {len(changed) - 1} more"
