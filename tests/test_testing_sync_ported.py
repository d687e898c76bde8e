"""A FastAPI test module ported by changing its imports: ``SyncTestClient`` at module level.

Everything below the imports is written the way FastAPI's tutorial writes tests (plain ``def``
tests, a module-level client, no ``with``); only ``fastapi`` became ``triobg`` and
``fastapi.testclient.TestClient`` became ``triobg.testing.SyncTestClient``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

import attrs

from triobg import App as FastAPI
from triobg import Cookie, Header, HTTPException, Response
from triobg.testing import SyncTestClient as TestClient

app = FastAPI()
fake_db = {"foo": {"id": "foo", "title": "Foo", "description": "There goes my hero"}}


@attrs.define
class Item:
    id: str
    title: str
    description: str | None = None


@app.get("/items/{item_id}")
async def read_item(item_id: str, x_token: Annotated[str, Header()]) -> dict[str, str]:
    if x_token != "coneofsilence":
        raise HTTPException(status_code=400, detail="Invalid X-Token header")
    if item_id not in fake_db:
        raise HTTPException(status_code=404, detail="Item not found")
    return fake_db[item_id]


@app.post("/items/")
async def create_item(item: Item, x_token: Annotated[str, Header()]) -> Item:
    if x_token != "coneofsilence":
        raise HTTPException(status_code=400, detail="Invalid X-Token header")
    if item.id in fake_db:
        raise HTTPException(status_code=409, detail="Item already exists")
    fake_db[item.id] = attrs.asdict(item)
    return item


@app.get("/search")
async def search(q: str, limit: int = 10) -> dict[str, object]:
    return {"q": q, "limit": limit}


@app.post("/login")
async def login(response: Response) -> dict[str, str]:
    response.set_cookie("session", "abc")
    return {"ok": "yes"}


@app.get("/me")
async def me(session: Annotated[str | None, Cookie()] = None) -> dict[str, str | None]:
    return {"session": session}


client = TestClient(app)


def test_read_item() -> None:
    response = client.get("/items/foo", headers={"X-Token": "coneofsilence"})
    assert response.status_code == 200
    assert response.json() == {"id": "foo", "title": "Foo", "description": "There goes my hero"}


def test_read_item_bad_token() -> None:
    response = client.get("/items/foo", headers={"X-Token": "hailhydra"})
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid X-Token header"}


def test_read_nonexistent_item() -> None:
    response = client.get("/items/baz", headers={"X-Token": "coneofsilence"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Item not found"}


def test_create_item() -> None:
    response = client.post(
        "/items/",
        headers={"X-Token": "coneofsilence"},
        json={"id": "foobar", "title": "Foo Bar", "description": "The Foo Barters"},
    )
    assert response.status_code == 200
    assert response.json() == {"id": "foobar", "title": "Foo Bar", "description": "The Foo Barters"}


def test_create_item_bad_token() -> None:
    response = client.post(
        "/items/",
        headers={"X-Token": "hailhydra"},
        json={"id": "bazz", "title": "Bazz", "description": "Drop the bazz"},
    )
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid X-Token header"}


def test_create_existing_item() -> None:
    response = client.post(
        "/items/",
        headers={"X-Token": "coneofsilence"},
        json={"id": "foo", "title": "The Foo ID Stealers", "description": "There goes my stealer"},
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "Item already exists"}


def test_query_parameters_and_validation() -> None:
    assert client.get("/search", params={"q": "x", "limit": 3}).json() == {"q": "x", "limit": 3}
    response = client.get("/search")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "q"]


def test_cookies_persist_between_calls() -> None:
    assert client.post("/login").cookies == {"session": "abc"}
    assert client.get("/me").json() == {"session": "abc"}
    assert client.cookies["session"] == "abc"


def test_absolute_urls_on_the_test_server() -> None:
    response = client.get("http://testserver/search?q=a")
    assert (response.json(), response.url) == (
        {"q": "a", "limit": 10},
        "http://testserver/search?q=a",
    )


# FastAPI's "Testing Events: lifespan" pattern: the lifespan runs around ``with``.
@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    items["foo"] = {"name": "Fighters"}
    yield
    items.clear()


items: dict[str, dict[str, str]] = {}
app_with_lifespan = FastAPI(lifespan=lifespan)


@app_with_lifespan.get("/items/{item_id}")
async def read_items(item_id: str) -> dict[str, str]:
    return items[item_id]


def test_read_items_with_lifespan() -> None:
    with TestClient(app_with_lifespan) as client:
        response = client.get("/items/foo")
        assert response.status_code == 200
        assert response.json() == {"name": "Fighters"}
    assert items == {}
