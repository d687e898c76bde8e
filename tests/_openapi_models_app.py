"""An app of the models FastAPI users bring (#18 item 2) and of ``pattern=`` (#16 item 6), for
``test_openapi_fuzz``: schemathesis checks that what the document allows is what is accepted,
and that every response fits the document.

The pydantic models hold strings only: pydantic decides what its models accept, and its lax mode
takes ``"5"`` for an ``int`` (which the document, ``"type": "integer"``, does not allow) while
its strict mode refuses ``5.0`` (which the document does allow), exactly as under FastAPI.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import pathlib
from typing import Annotated

import pydantic

from triobg import App, Path, Query


class Address(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True)

    city: str = pydantic.Field(min_length=1, max_length=40)
    postcode: str = pydantic.Field(pattern=r"^[0-9]{5}")


class UserIn(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(strict=True)

    name: str = pydantic.Field(min_length=1, max_length=20)
    address: Address
    password: str


class UserOut(pydantic.BaseModel):
    name: str
    address: Address


@dataclasses.dataclass
class Invoice:
    total: decimal.Decimal
    due_in: dt.timedelta
    archive: pathlib.PurePosixPath
    tags: frozenset[str] = frozenset()
    lines: list[int] = dataclasses.field(default_factory=list)


def build_app() -> App:
    app = App(title="models")

    @app.post("/users", response_model=UserOut)
    async def create_user(user: UserIn) -> UserIn:
        return user

    @app.post("/invoices")
    async def invoice(invoice: Invoice) -> Invoice:
        return invoice

    @app.get("/codes/{code}")
    async def code(
        code: Annotated[str, Path(pattern=r"^[A-Z]{3}$")],
        tag: Annotated[str | None, Query(pattern=r"^[a-z]+$", max_length=10)] = None,
        amount: Annotated[decimal.Decimal, Query(ge=0)] = decimal.Decimal(1),
    ) -> dict[str, object]:
        return {"code": code, "tag": tag, "amount": amount}

    return app
