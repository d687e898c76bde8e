# The ceiling: a hand-written ASGI callable doing the seed endpoint's work with no framework.
#
# It parses path and query itself, sends the JSON reply, then runs its own tasks after sending:
# ``async def`` tasks are awaited in the loop, each ``def`` task gets its own
# ``trio.to_thread.run_sync`` hop. Every other app is reported as a ratio to this one.
import functools
import inspect
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import trio

from benchmarks._types import ASGIApp, Receive, Scope, Send
from benchmarks.apps import _work

PREFIX = "/send-notification/"
JSON_HEADERS = [(b"content-type", b"application/json")]


async def _send_json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    headers = [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    # Nothing to set up; answer so servers and drivers that always run lifespan are satisfied.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(kind: str, *, log_dir: str | None = None, extra_routes: int = 0) -> ASGIApp:
    """Build the bare app.

    Args:
        kind: Task kind, see ``_work.KINDS``.
        log_dir: Log directory for the ``file`` kind.
        extra_routes: Ignored: the bare app has no router, which is what makes it the ceiling.
    """
    tasks = _work.task_set(kind, log_dir)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "GET" and path == "/count":
            await _send_json(send, 200, {"count": _work.COMPLETED.value})
            return
        email = path[len(PREFIX) :]
        if method != "POST" or not path.startswith(PREFIX) or not email or "/" in email:
            await _send_json(send, 404, {"detail": "Not Found"})
            return
        q = dict(parse_qsl(scope["query_string"].decode("latin-1"))).get("q")

        pending: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        if tasks.enabled:
            if q:
                pending.append((tasks.write_log, (f"found query: {q}",), {}))
            pending.append((tasks.write_notification, (email,), {"message": "some notification"}))

        await _send_json(send, 200, {"message": "Message sent"})

        for func, args, kwargs in pending:
            if inspect.iscoroutinefunction(func):
                await func(*args, **kwargs)
            else:
                await trio.to_thread.run_sync(functools.partial(func, *args, **kwargs))

    return app


app = create_app(_work.kind_from_env(), log_dir=_work.log_dir_from_env())
