# SIGTERM in a worker process of hypercorn's multi-process runner.
#
# Where it sits: the lifespan startup (``_lifespan.py``) calls ``guard_runner_sigterm`` in the
# process that serves the app. It matters for ``hypercorn --worker-class trio --workers N`` (any
# N, 1 included, which is hypercorn's default) and ``python -m triobg --workers N``: both run
# hypercorn's runner, which stops its workers like this:
#
#   1. it sets a shared shutdown event; every worker starts its graceful shutdown;
#   2. it waits until the *first* worker process has exited;
#   3. it sends SIGTERM to every other worker (``Process.terminate``), and on its own exit the
#      multiprocessing module terminates any worker that is left in the same way.
#
# A worker still draining its background tasks at step 3 used to die on the spot -- the default
# action of SIGTERM -- with its tasks cut off and not one of them named. The same happens when a
# service manager sends SIGTERM to the whole process group at once (systemd's default). In such
# a worker the SIGTERM always comes with, or after, the shutdown event, and the worker is already
# on its way out under hypercorn's graceful timeout; so the signal is noted in the log and the
# graceful shutdown goes on: tasks finish or are cancelled at the deadline and named either way.
#
# How we know we are such a worker: the runner ignores SIGINT in its workers (it owns Ctrl+C),
# so SIGINT is ignored and SIGTERM still has its default action. Any other arrangement (a
# program that handles SIGTERM itself, ``python -m triobg`` in one process, an embedding trio
# program, the test client) is left exactly as it is.
from __future__ import annotations

import contextlib
import logging
import signal
import threading
from types import FrameType

import trio

logger = logging.getLogger("triobg.serve")


def guard_runner_sigterm() -> bool:
    """In a worker of hypercorn's runner, make SIGTERM note the shutdown instead of killing.

    Must be called from trio, in the main thread. Returns whether the handler was installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return False  # somebody handles SIGTERM already; theirs is the decision
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        return False  # not a worker whose shutdown a runner controls
    token = trio.lowlevel.current_trio_token()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # A signal handler may run between any two bytecodes: hand the work to the event loop,
        # which ``run_sync_soon`` is safe to call for from a signal handler.
        # Once trio is done, the process is exiting and no task is left to wait for.
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(_note_sigterm)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _note_sigterm() -> None:
    logger.info(
        "SIGTERM received by a hypercorn worker: it finishes its graceful shutdown first "
        "(background tasks keep their deadline; each one cut off is named)"
    )
