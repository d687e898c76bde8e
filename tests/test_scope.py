"""Annotations resolve where they were written, also under ``from __future__ import annotations``.

This module uses the future import on purpose: every model below is defined inside a test
function, as test suites and app factories do, and every annotation is a string.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import attrs
import pytest

from triobg import App, Depends, Router
from triobg.testing import TestClient


@attrs.frozen
class Item:
    """A module-level model that the local ``Item`` below shadows."""

    module_level: int


@attrs.frozen
class Broken:
    """A module-level model naming something its module does not define."""

    part: Missing  # type: ignore[name-defined]  # noqa: F821


def make_app() -> App:
    """An app factory: models, dependency and routes all local to this function."""
    app = App()

    @attrs.frozen
    class Tag:
        name: str

    @attrs.frozen
    class Item:  # shadows the module-level Item, as a reader of this function expects
        name: str
        tags: list[Tag]

    @attrs.frozen
    class ItemOut:
        name: str

    def tag_count(item: Item) -> int:
        return len(item.tags)

    @app.post("/items", response_model=ItemOut)
    async def create(item: Item, count: Annotated[int, Depends(tag_count)]) -> dict[str, Any]:
        return {"name": f"{item.name}:{count}", "secret": "never sent"}

    return app


async def _post(app: App, path: str, body: Any) -> tuple[int, Any]:
    async with TestClient(app) as client:
        response = await client.post(path, json=body)
    return response.status_code, response.json()


class TestLocalModels:
    async def test_app_factory_with_local_models(self) -> None:
        """A body model, a nested model, a dependency and a response model local to a factory."""
        status, body = await _post(
            make_app(), "/items", {"name": "lamp", "tags": [{"name": "a"}, {"name": "b"}]}
        )
        assert (status, body) == (200, {"name": "lamp:2"})

    async def test_local_model_errors_are_located(self) -> None:
        """A local nested model still reports its errors at the field that is wrong."""
        status, body = await _post(make_app(), "/items", {"name": "lamp", "tags": [{}]})
        assert status == 422
        assert body["detail"] == [
            {"loc": ["body", "tags", 0, "name"], "msg": "field required", "type": "missing"}
        ]

    async def test_local_dataclass_and_return_annotation(self) -> None:
        """A local dataclass as body and as return annotation, defined in the test itself."""
        app = App()

        @dataclasses.dataclass
        class Point:
            x: int
            y: int

        @dataclasses.dataclass
        class Segment:
            start: Point
            end: Point

        @app.post("/flip")
        async def flip(segment: Segment) -> Segment:
            return Segment(segment.end, segment.start)

        body = {"start": {"x": 1, "y": 2}, "end": {"x": 3, "y": 4}}
        status, answer = await _post(app, "/flip", body)
        assert (status, answer) == (200, {"start": {"x": 3, "y": 4}, "end": {"x": 1, "y": 2}})

    async def test_router_declared_in_a_factory_keeps_its_scope(self) -> None:
        """Routes copied by ``include_router`` resolve where they were written, not where copied."""

        def make_router() -> Router:
            router = Router()

            @attrs.frozen
            class Note:
                text: str

            @router.post("/notes")
            async def add(note: Note) -> dict[str, str]:
                return {"text": note.text}

            return router

        app = App()
        app.include_router(make_router(), prefix="/v1")
        assert await _post(app, "/v1/notes", {"text": "hi"}) == (200, {"text": "hi"})

    async def test_override_resolves_where_it_was_set(self) -> None:
        """An override written in a test, with a local annotation, compiles at the next request."""
        app = App()

        def current_user() -> str:
            return "real"

        @app.get("/me")
        async def me(user: Annotated[str, Depends(current_user)]) -> dict[str, str]:
            return {"user": user}

        @attrs.frozen
        class Settings:
            name: str = "fake"

        def fake_user(settings: Annotated[Settings, Depends()]) -> str:
            return settings.name

        app.dependency_overrides[current_user] = fake_user
        async with TestClient(app) as client:
            response = await client.get("/me")
        assert (response.status_code, response.json()) == (200, {"user": "fake"})

    def test_module_level_name_is_used_when_no_local_one_exists(self) -> None:
        """A handler in a function that names a module-level model gets that model."""
        app = App()

        @app.post("/")
        async def handler(item: Item) -> int:
            return item.module_level

        [route] = [r for r in app.router.routes if r.path == "/"]
        assert route.solver(app.dependency_overrides).plan.body[0].annotation is Item

    async def test_a_helper_nested_in_the_factory_sees_the_factorys_names(self) -> None:
        """A route declared by a helper inside the factory resolves the factory's locals."""

        def make() -> App:
            app = App()

            @attrs.frozen
            class Pet:
                name: str

            def register(target: App) -> None:
                @target.post("/pets")
                async def add(pet: Pet) -> Pet:
                    return pet

            register(app)
            return app

        assert await _post(make(), "/pets", {"name": "rex"}) == (200, {"name": "rex"})


class TestMissingNames:
    def test_a_name_that_exists_nowhere_fails_at_declaration(self) -> None:
        """A typo in an annotation is a TypeError naming the callable and the missing name."""
        app = App()
        with pytest.raises(TypeError, match=r"cannot resolve the annotations of .*Itme"):

            @app.post("/")
            async def handler(item: Itme) -> None:  # type: ignore[name-defined]  # noqa: F821
                pass

    def test_module_level_code_never_reads_a_functions_locals(self) -> None:
        """A reader of a module-level model looks in its module, not in the caller's locals."""
        app = App()
        Missing = int  # the name the module-level model lacks, defined here only

        with pytest.raises(TypeError, match=r"field types of Broken.*Missing"):

            @app.post("/")
            async def handler(broken: Broken) -> None:
                pass

        assert Missing is int

    def test_a_missing_name_in_a_local_model_fails_at_declaration(self) -> None:
        """A local model whose field names nothing defined fails when the route is declared."""
        app = App()

        @attrs.frozen
        class Order:
            lines: list[Line]  # type: ignore[name-defined]  # noqa: F821

        with pytest.raises(TypeError, match=r"field types of .*Order.*Line"):

            @app.post("/")
            async def handler(order: Order) -> None:
                pass
