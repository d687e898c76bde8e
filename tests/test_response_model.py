"""``response_model``: what a handler returns is validated and filtered before it is sent."""

# No ``from __future__ import annotations``: handlers below refer to local classes.
import datetime as dt
import enum
import logging
from typing import Any

import attrs
import pytest

from triobg import App, Response, ResponseValidationError
from triobg.testing import TestClient


@attrs.frozen
class UserOut:
    name: str
    email: str


@attrs.frozen
class UserRecord(UserOut):
    password_hash: str


class Role(enum.Enum):
    ADMIN = "admin"
    USER = "user"


@attrs.frozen
class Account:
    owner: UserOut
    role: Role
    since: dt.datetime
    members: list[UserOut] = attrs.field(factory=list)


async def _get(app: App, path: str) -> Any:
    async with TestClient(app) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


class TestFiltering:
    """Fields the model does not declare never reach the client."""

    async def test_explicit_model_drops_extra_dict_keys(self) -> None:
        """A dict with a password, under ``response_model=UserOut``, loses the password."""
        app = App()

        @app.get("/me", response_model=UserOut)
        async def me() -> dict[str, str]:
            return {"name": "ada", "email": "ada@example.com", "password_hash": "x"}

        assert await _get(app, "/me") == {"name": "ada", "email": "ada@example.com"}

    async def test_return_annotation_is_the_default_model(self) -> None:
        """``-> UserOut`` returning a subclass instance with a secret sends only ``UserOut``."""
        app = App()

        @app.get("/me")
        async def me() -> UserOut:
            return UserRecord("ada", "ada@example.com", "secret")

        assert await _get(app, "/me") == {"name": "ada", "email": "ada@example.com"}

    async def test_nested_lists_enums_and_datetimes(self) -> None:
        """Nested models are filtered too; enums and datetimes come out as JSON values."""
        app = App()
        since = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)

        @app.get("/account", response_model=Account)
        async def account() -> dict[str, Any]:
            return {
                "owner": UserRecord("ada", "a@x", "secret"),
                "role": Role.ADMIN,
                "since": since,
                "members": [{"name": "bob", "email": "b@x", "password_hash": "y"}],
                "internal": True,
            }

        assert await _get(app, "/account") == {
            "owner": {"name": "ada", "email": "a@x"},
            "role": "admin",
            "since": "2024-05-01T12:30:00+00:00",
            "members": [{"name": "bob", "email": "b@x"}],
        }

    async def test_list_of_models(self) -> None:
        """``-> list[UserOut]`` filters every item."""
        app = App()

        @app.get("/users")
        async def users() -> list[UserOut]:
            return [UserRecord("ada", "a@x", "s1"), UserRecord("bob", "b@x", "s2")]

        assert await _get(app, "/users") == [
            {"name": "ada", "email": "a@x"},
            {"name": "bob", "email": "b@x"},
        ]

    async def test_status_code_and_injected_response_are_kept(self) -> None:
        """The filter changes the body only: status and headers set by the handler stay."""
        app = App()

        @app.post("/users", status_code=201, response_model=UserOut)
        async def create(response: Response) -> dict[str, str]:
            response.headers["x-created"] = "yes"
            return {"name": "ada", "email": "a@x", "password_hash": "s"}

        async with TestClient(app) as client:
            result = await client.post("/users")
        assert result.status_code == 201
        assert result.headers["x-created"] == "yes"
        assert result.json() == {"name": "ada", "email": "a@x"}


class TestNoFilter:
    """Where no model applies, the return value is sent as it is, at no cost."""

    async def test_plain_annotations_do_not_filter(self) -> None:
        """``-> dict[str, Any]`` keeps every key: it names no model to filter by."""
        app = App()

        @app.get("/raw")
        async def raw() -> dict[str, Any]:
            return {"a": 1, "b": [1, 2]}

        assert app.routes[-1]._filter is None
        assert await _get(app, "/raw") == {"a": 1, "b": [1, 2]}

    async def test_response_model_none_turns_the_annotation_off(self) -> None:
        """``response_model=None`` sends what is returned, and documents no schema."""
        app = App()

        @app.get("/me", response_model=None)
        async def me() -> UserOut:
            return UserRecord("ada", "a@x", "s")

        assert await _get(app, "/me") == {"name": "ada", "email": "a@x", "password_hash": "s"}
        content = app.openapi()["paths"]["/me"]["get"]["responses"]["200"]["content"]
        assert content == {"application/json": {"schema": {}}}

    async def test_a_returned_response_is_sent_as_is(self) -> None:
        """A handler that returns a ``Response`` chose its bytes; the model does not apply."""
        app = App()

        @app.get("/me", response_model=UserOut)
        async def me() -> Any:
            return Response(b"raw", media_type="text/plain")

        async with TestClient(app) as client:
            assert (await client.get("/me")).text == "raw"


class TestInvalidReturns:
    """A return value that does not fit the model is the server's bug: a logged 500."""

    async def test_missing_field_is_a_500_with_a_log_line(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The client gets the generic 500; the log names the route and the missing field."""
        caplog.set_level(logging.ERROR, logger="triobg.error")
        app = App()

        @app.get("/me", response_model=UserOut)
        async def me() -> dict[str, str]:
            return {"name": "ada"}

        async with TestClient(app) as client:
            response = await client.get("/me")
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal Server Error"}
        (record,) = [r for r in caplog.records if r.exc_info]
        error = record.exc_info[1] if record.exc_info else None
        assert isinstance(error, ResponseValidationError)
        assert "/me" in str(error) and "response.email: field required" in str(error)

    async def test_wrong_type_is_a_500(self, caplog: pytest.LogCaptureFixture) -> None:
        """A string where the model says a list is not sent."""
        caplog.set_level(logging.CRITICAL, logger="triobg.error")
        app = App()

        @app.get("/users", response_model=list[UserOut])
        async def users() -> Any:
            return "not a list"

        async with TestClient(app) as client:
            assert (await client.get("/users")).status_code == 500

    def test_a_model_the_converter_cannot_build_fails_at_declaration(self) -> None:
        """Caught when the route is declared, not on the first request."""
        app = App()

        class Opaque:
            def __init__(self, anything: object) -> None:
                self.anything = anything

        with pytest.raises(TypeError, match=r"cannot use .*Opaque.* as a response_model"):

            @app.get("/x", response_model=Opaque)
            async def x() -> None:
                return None
