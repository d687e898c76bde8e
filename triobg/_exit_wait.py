# ``def`` tasks cut off while running: the process waits for them at exit, and says so.
#
# Where it sits: a ``def`` task (in-process, ``_background.py``; durable, ``_durable/_worker.py``)
# runs in a worker thread, which nothing can interrupt. When its owner is cancelled -- the
# server's graceful timeout (hypercorn's is 3 s by default), the drain deadline, an attempt's
# timeout -- trio abandons the thread and the task goes on running there. Trio's worker threads
# are daemon threads, so when ``trio.run`` then returns and the interpreter exits, they would be
# stopped wherever they are, half done and without a word. Starlette and FastAPI do not do that
# to a sync task (their thread pools are joined at exit), and neither do we.
#
# What happens instead: each such task is noted here with how long it may still take (the
# app's ``drain_timeout``, counted from the moment it was cut off). At interpreter exit (an
# ``atexit`` hook, which runs after the trio program has returned and before daemon threads are
# stopped) the process names every one still running and waits for it, up to that time; it names
# each one that finished, and each one it stops mid-work when the time is up. ``kill -9`` and
# ``os._exit`` skip all of this, as they skip everything else.
from __future__ import annotations

import atexit
import logging
import threading
import time

import attrs

logger = logging.getLogger("triobg.background")


@attrs.define
class _Cut:
    label: str
    done: threading.Event
    until: float  # time.monotonic()


_lock = threading.Lock()
_cut: list[_Cut] = []
_hooked = False


def wait_at_exit(label: str, done: threading.Event, seconds: float) -> None:
    """Have the process wait, at exit, up to ``seconds`` from now until ``done`` is set.

    Args:
        label: Names the task in the log lines (``background task mod.f of POST /x``).
        done: Set by the worker thread once the task has returned.
        seconds: How long the task may still take; after that the exit goes ahead.
    """
    global _hooked
    with _lock:
        _cut[:] = [cut for cut in _cut if not cut.done.is_set()]  # forget the finished
        _cut.append(_Cut(label, done, time.monotonic() + max(seconds, 0.0)))
        if not _hooked:
            atexit.register(_wait)
            _hooked = True


def _wait() -> None:
    with _lock:
        pending = [cut for cut in _cut if not cut.done.is_set()]
        _cut.clear()
    for cut in pending:
        logger.warning(
            "waiting up to %.1f s for %s, still running in its worker thread, before the "
            "process exits",
            max(cut.until - time.monotonic(), 0.0),
            cut.label,
        )
    for cut in sorted(pending, key=lambda cut: cut.until):
        if cut.done.wait(max(cut.until - time.monotonic(), 0.0)):
            logger.info("%s finished in its worker thread", cut.label)
        else:
            logger.error(
                "%s is still running in its worker thread after its drain time: the process "
                "exits now and stops it mid-work",
                cut.label,
            )
