# Response heads: each distinct head is checked by h11 once, then its event is reused.
#
# Where it sits: the ASGI adapter (``_cycle.py``) turns the app's ``http.response.start`` into an
# ``h11.Response`` when the first body piece goes out. h11 validates every header of every event
# it is given (two regular expressions and a few calls per header), which was the largest single
# cost the server added per request (see ``docs/design/performance.rst``). Under load most heads
# are byte for byte one sent moments before (the same status and headers, ``Date`` included, since
# it changes once a second), and h11's events are immutable, so the event built for a head is kept
# and handed to h11 again. Nothing is skipped: every distinct head is validated by h11 exactly as
# before, a head that fails validation is never kept, and a repeat gets the very event that passed.
from __future__ import annotations

from typing import Any, Final

import h11

from ._scope import reason

#: Most heads kept; past it the cache starts again (heads that differ every time, such as ones
#: carrying a fresh cookie, must not grow it without bound).
MAX_HEADS: Final = 256

_heads: dict[tuple[int, tuple[Any, ...]], h11.Response] = {}


def response_head(status: int, headers: list[tuple[bytes, bytes]]) -> h11.Response:
    """The ``h11.Response`` for ``status`` and ``headers``: built (and so validated) by h11 the
    first time this exact head is seen, the same immutable event after that.

    Raises:
        h11.LocalProtocolError: a header h11 refuses (a bad name, a value with a line break...).
    """
    key = (status, tuple(headers))
    try:
        head = _heads.get(key)
    except TypeError:  # pairs given as lists (ASGI allows any pairs): nothing to key on
        return h11.Response(status_code=status, headers=headers, reason=reason(status))
    if head is None:
        head = h11.Response(status_code=status, headers=headers, reason=reason(status))
        if len(_heads) >= MAX_HEADS:
            _heads.clear()
        _heads[key] = head
    return head
