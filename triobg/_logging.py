# Making triobg's own log lines visible when nobody configured logging.
#
# Where it sits: the lifespan startup (``_lifespan.py``) calls ``ensure_visible`` once the server
# runs the app. triobg's promise is that no background task is lost without a log line naming
# it, and the drain summary says how shutdown went; under ``python -m triobg`` the CLI configures
# logging, but under plain ``hypercorn --worker-class trio`` nothing does (hypercorn only gives
# its own loggers handlers), so Python's last-resort handler would print warnings without a time
# or a process id and drop every INFO line, the drain summary among them.
#
# The fallback is deliberately shy: it is added only when neither the root logger nor the
# ``triobg`` logger has a handler, and it stays silent as soon as the root logger gets one, so a
# program that configures logging later never sees a line twice.
from __future__ import annotations

import logging
import sys

#: The format of triobg's log lines when triobg sets logging up (the CLI, or the fallback):
#: time, process id (several workers share one output), level, logger, message.
LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


class _FallbackHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to stderr while the program has configured no logging of its own."""

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return  # configured since: the record propagates to those handlers instead
        super().emit(record)


def ensure_visible() -> bool:
    """Send the ``triobg`` loggers' INFO and above to stderr if nothing else would show them.

    Returns whether the fallback was added (it is added at most once per process). If you
    configure logging yourself after the server has started, set the ``triobg`` logger's level
    as you want it too: the fallback set it to INFO.
    """
    logger = logging.getLogger("triobg")
    if logging.getLogger().handlers or logger.handlers:
        return False
    handler = _FallbackHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return True
