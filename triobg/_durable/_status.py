# The state machine of a durable task, written down once.
#
# Every arrow is one named store operation (``_store.TaskStore``); nothing else changes a
# task's status::
#
#            enqueue                 claim                    succeed
#   (new) ----------> READY -------------------> RUNNING -----------------> SUCCEEDED
#                      ^  ^                      |  |  |
#                      |  |  release             |  |  |  fail(retry_at=None), or
#                      |  +----------------------+  |  |  recover with no attempt left
#                      |     recover (lease lost,   |  +-------------------------> FAILED
#                      |     attempts left)         |                               |
#                      |                            | fail(retry_at=t)              |
#                      |        claim (t reached)   v                               |
#                      |   RUNNING <---------- RETRYING                             |
#                      |                                                            |
#                      +------------------------- retry --------------------------+-+
#                                                                                  |
#   READY, RETRYING, RUNNING --- cancel ---> CANCELLED ------- retry --------------+
#
# ``claim`` raises the attempt counter *before* the task runs, so a task that takes the whole
# process down is counted: ``recover`` turns it into FAILED once its attempts are used up,
# instead of letting it crash-loop for ever. ``release`` (graceful shutdown) gives the attempt
# back: the task did not fail, it was interrupted on purpose.
from __future__ import annotations

import enum


class TaskStatus(enum.Enum):
    """Where a durable task is in its life; see the diagram in ``triobg/_durable/_status.py``.

    READY, RETRYING and RUNNING are *unfinished*: an idempotency key is held only while its task
    is unfinished. SUCCEEDED, FAILED and CANCELLED are *finished*: only ``retry`` moves a task
    out of FAILED or CANCELLED, and finished tasks are pruned after the retention period.
    """

    READY = "ready"  #: stored, waiting for a worker (maybe until its ``run_after``)
    RUNNING = "running"  #: claimed by a worker under a lease
    RETRYING = "retrying"  #: an attempt failed; waits for its backoff, then runs again
    SUCCEEDED = "succeeded"  #: returned; its return value is stored
    FAILED = "failed"  #: every attempt failed (or it cannot run at all); errors are stored
    CANCELLED = "cancelled"  #: cancelled by an operator before it finished

    @property
    def finished(self) -> bool:
        """Whether the task will not run again unless someone calls ``retry``."""
        return self in _FINISHED


_FINISHED = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})
UNFINISHED = frozenset({TaskStatus.READY, TaskStatus.RUNNING, TaskStatus.RETRYING})
