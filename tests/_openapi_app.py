"""A larger app for the OpenAPI checks: every parameter source, models, response models, tags.

``test_openapi`` validates its document; ``test_openapi_fuzz`` lets schemathesis loose on it
over a live server. Its handlers are deterministic and keep no state between requests, so any
request a fuzzer makes is answered the same way every time.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Annotated, Literal

import attrs

from triobg import (
    App,
    Body,
    Cookie,
    Depends,
    Header,
    HTMLResponse,
    HTTPException,
    Path,
    PlainTextResponse,
    Query,
    Router,
)


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


@attrs.frozen
class Dimensions:
    width: float
    height: float


@attrs.frozen
class ItemIn:
    """What a client sends to create an item."""

    name: str
    price: float
    size: Size = Size.SMALL
    condition: Literal["new", "used"] = "new"
    tags: list[str] = attrs.field(factory=list)
    dimensions: Dimensions | None = None
    available_from: dt.date | None = None


@attrs.frozen
class ItemOut:
    """What the API sends back about an item."""

    id: int
    name: str
    price: float
    size: Size
    tags: list[str]


@attrs.frozen
class UserRecord:
    name: str
    email: str
    password_hash: str


@attrs.frozen
class UserOut:
    name: str
    email: str


@attrs.frozen
class Message:
    detail: str


def paging(
    skip: Annotated[int, Query(ge=0, le=1000)] = 0,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> tuple[int, int]:
    return skip, limit


def build_app() -> App:
    """A fresh app (a new one per test, so no test sees another's routes)."""
    app = App(title="Kitchen sink", version="1.2.3", description="Every feature at once.")
    items = Router(prefix="/items", tags=["items"])

    @items.get("/", response_model=list[ItemOut])
    async def list_items(
        page: Annotated[tuple[int, int], Depends(paging)],
    ) -> list[dict[str, object]]:
        """List items, a page at a time."""
        skip, limit = page
        return [
            {"id": i, "name": f"item {i}", "price": 1.0, "size": "small", "tags": [], "x": 1}
            for i in range(skip + 1, min(skip + limit, 3) + 1)
        ]

    @items.post("/", status_code=201, responses={409: {"model": Message, "description": "Taken"}})
    async def create_item(item: ItemIn, dry_run: bool = False) -> ItemOut:
        return ItemOut(1, item.name, item.price, item.size, list(item.tags))

    @items.get("/{item_id}", responses={404: {"model": Message}})
    async def read_item(
        item_id: Annotated[int, Path(ge=1, le=1_000_000)],
        q: Annotated[str | None, Query(max_length=20)] = None,
        when: dt.datetime | None = None,
    ) -> ItemOut:
        if item_id > 3:
            raise HTTPException(404, f"no item {item_id}")
        return ItemOut(item_id, q or "lamp", 2.5, Size.LARGE, [])

    @items.put("/{item_id}")
    async def replace_item(
        item_id: Annotated[int, Path(ge=1, le=1_000_000)],
        item: ItemIn,
        note: Annotated[str, Body(max_length=50)] = "",
    ) -> ItemOut:
        return ItemOut(item_id, item.name, item.price, item.size, [note] if note else [])

    @items.delete("/{item_id}", status_code=204)
    async def delete_item(item_id: Annotated[int, Path(ge=1, le=1_000_000)]) -> None:
        return None

    app.include_router(items)

    @app.get("/users/me", tags=["users"], response_model=UserOut)
    async def me(
        x_user: Annotated[str, Header(min_length=1, max_length=30)] = "ada",
        session: Annotated[str | None, Cookie()] = None,
    ) -> UserRecord:
        return UserRecord(x_user, f"{x_user}@example.com", "secret-hash")

    @app.get("/search", tags=["search"])
    async def search(
        terms: Annotated[list[str], Query(max_length=5)] = [],  # noqa: B006
        ids: Annotated[list[uuid.UUID], Query()] = [],  # noqa: B006
        size: Size | None = None,
        exact: bool = False,
    ) -> dict[str, object]:
        return {"terms": terms, "ids": [str(i) for i in ids], "exact": exact}

    @app.get("/hello", response_class=PlainTextResponse)
    async def hello(name: Annotated[str, Query(max_length=40)] = "world") -> str:
        return f"hello {name}"

    @app.get("/page", response_class=HTMLResponse, deprecated=True)
    async def page() -> str:
        return "<p>old page</p>"

    @app.get("/internal", include_in_schema=False)
    async def internal() -> str:
        return "not documented"

    return app
