"""The tutorial's first app: routes, path/query/body parameters, errors and dependencies.

Serve it with ``python -m triobg examples.items:app`` and try::

    curl http://127.0.0.1:8000/
    curl -X PUT http://127.0.0.1:8000/items/1 -H 'content-type: application/json' \\
         -d '{"name": "lamp", "price": 12.5}'
    curl 'http://127.0.0.1:8000/items/1?q=lamp'
    curl http://127.0.0.1:8000/items -H 'x-token: secret'
"""

from typing import Annotated, Any

import attrs

from triobg import App, Depends, Header, HTTPException, Query

app = App()


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "Hello from triobg"}


@attrs.frozen
class Item:
    name: str
    price: float
    tags: list[str] = attrs.field(factory=list)


# A dict is this example's database; every request of the process shares it.
ITEMS: dict[int, Item] = {}


@app.put("/items/{item_id}")
async def put_item(item_id: int, item: Item) -> dict[str, Any]:
    ITEMS[item_id] = item
    return {"item_id": item_id, "item": item}


@app.get("/items/{item_id}", responses={404: {"description": "No such item"}})
async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    item = ITEMS.get(item_id)
    if item is None:
        raise HTTPException(404, f"no item {item_id}")
    return {"item_id": item_id, "item": item, "matches": q is None or q in item.name}


@attrs.frozen
class Page:
    skip: int
    limit: int


def pagination(skip: int = 0, limit: Annotated[int, Query(ge=1, le=100)] = 10) -> Page:
    return Page(skip, limit)


async def require_token(x_token: Annotated[str, Header()]) -> None:
    if x_token != "secret":
        raise HTTPException(401, "a valid X-Token header is required")


@app.get(
    "/items",
    dependencies=[Depends(require_token)],
    responses={401: {"description": "Missing or wrong X-Token"}},
)
async def list_items(page: Annotated[Page, Depends(pagination)]) -> list[dict[str, Any]]:
    chosen = sorted(ITEMS.items())[page.skip : page.skip + page.limit]
    return [{"item_id": item_id, "item": item} for item_id, item in chosen]
