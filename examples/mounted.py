"""Compose one site from parts: an API mounted under ``/v2``, a bare ASGI app, static files.

* ``/v2/...`` is another triobg ``App`` with its own lifespan, routes, background tasks and
  ``/v2/docs``; it sees ``root_path == "/v2"``, so its URLs (``request.url_for``) carry it.
* ``/health`` is a plain ASGI callable (no framework) whose lifespan runs inside the site's.
* ``/static/...`` serves ``examples/static/`` (``index.html`` for the directory itself).
* ``/login?next=...`` redirects only to a path on this site; ``/manual`` redirects to another
  site the application itself names.

Run it and try::

    python -m triobg examples.mounted:app
    curl -i http://127.0.0.1:8000/v2/items/1
    curl -I http://127.0.0.1:8000/static/style.css
    curl -i 'http://127.0.0.1:8000/login?next=https://evil.example'

The API's background task appends to ``visits.txt`` in the current directory.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from triobg import App, BackgroundTasks, RedirectResponse, Request, StaticFiles, same_site_path

STATIC = Path(__file__).parent / "static"

Message = dict[str, Any]


def record_visit(item_id: int) -> None:
    with open("visits.txt", "a") as log:
        log.write(f"item {item_id}\n")


def build_api() -> App:
    """The versioned API: a complete triobg app of its own, mounted under ``/v2`` below."""

    @contextlib.asynccontextmanager
    async def lifespan(app: App) -> AsyncIterator[dict[str, Any]]:
        yield {"catalog": {1: "kettle", 2: "teapot"}}

    api = App(lifespan=lifespan, title="Shop API", version="2.0")

    @api.get("/items/{item_id}")
    async def read_item(item_id: int, request: Request, tasks: BackgroundTasks) -> dict[str, Any]:
        tasks.add_task(record_visit, item_id)
        return {
            "id": item_id,
            "name": request.state.catalog.get(item_id, "unknown"),
            "self": str(request.url_for("read_item", item_id=item_id)),
        }

    return api


async def health(scope: Message, receive: Callable[[], Awaitable[Message]], send: Any) -> None:
    """A bare ASGI app: answers ``ok`` with its uptime, and keeps its own lifespan."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["started"] = time.monotonic()
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    uptime = time.monotonic() - scope["state"]["started"]
    body = f"ok, up {uptime:.0f} s\n".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def build_app(static: Path = STATIC) -> App:
    app = App(title="Shop")

    @app.get("/")
    async def home() -> RedirectResponse:
        return RedirectResponse("/static/")

    @app.get("/login")
    async def login(next: str = "/") -> RedirectResponse:
        # ``next`` comes from the client: keep it on this site, whatever it says.
        return RedirectResponse(same_site_path(next, default="/"), status_code=303)

    @app.get("/manual")
    async def manual() -> RedirectResponse:
        # A target the application writes itself may be anywhere.
        return RedirectResponse("https://trio.readthedocs.io/")

    @app.get("/links")
    async def links(request: Request) -> dict[str, str]:
        return {
            "kettle": str(request.url_for("api:read_item", item_id=1)),
            "style": str(request.url_for("static", path="/style.css")),
        }

    app.mount("/v2", build_api(), name="api")
    app.mount("/health", health)
    app.mount("/static", StaticFiles(directory=static, html=True), name="static")
    return app


app = build_app()
