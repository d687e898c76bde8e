"""Dependency injection: caching, depth, sync/async, ``yield`` teardown, overrides."""

from __future__ import annotations

import contextvars
import threading
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import pytest

from triobg import App, Depends, HTTPException, Query, Request
from triobg.testing import TestClient


class TestSolving:
    async def test_cached_dependency_runs_once_per_request(self) -> None:
        """Two dependents of one dependency share one call; ``use_cache=False`` opts out."""
        app = App()
        calls: list[str] = []

        def counter() -> int:
            calls.append("counter")
            return len(calls)

        def left(n: int = Depends(counter)) -> int:
            return n

        def right(n: int = Depends(counter)) -> int:
            return n

        def fresh(n: int = Depends(counter, use_cache=False)) -> int:
            return n

        @app.get("/")
        async def handler(
            a: int = Depends(left), b: int = Depends(right), c: int = Depends(fresh)
        ) -> list[int]:
            return [a, b, c]

        async with TestClient(app) as client:
            assert (await client.get("/")).json() == [1, 1, 2]
        assert calls == ["counter", "counter"]

    async def test_sub_dependencies_to_any_depth_with_their_own_parameters(self) -> None:
        """Each level can read request values; they are all validated before any call."""
        app = App()

        def level3(c: int) -> int:
            return c

        def level2(b: int, three: int = Depends(level3)) -> int:
            return b + three

        def level1(a: int, two: int = Depends(level2)) -> int:
            return a + two

        @app.get("/")
        async def handler(total: int = Depends(level1)) -> int:
            return total

        async with TestClient(app) as client:
            assert (await client.get("/?a=1&b=10&c=100")).json() == 111
            bad = await client.get("/?a=x&c=y")
        assert bad.status_code == 422
        assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
            ("query", "a"),
            ("query", "b"),
            ("query", "c"),
        }

    async def test_invalid_input_runs_no_dependency_at_all(self) -> None:
        """Validation happens before any user code, so a 422 has no side effects."""
        app = App()
        calls: list[str] = []

        def side_effect() -> None:
            calls.append("ran")

        @app.get("/", dependencies=[Depends(side_effect)])
        async def handler(n: int) -> int:
            return n

        async with TestClient(app) as client:
            assert (await client.get("/?n=nope")).status_code == 422
        assert calls == []

    async def test_annotated_markers_and_class_dependencies(self) -> None:
        """``Annotated[..., Depends()]`` with no argument calls the annotated class."""
        app = App()

        @app.get("/")
        async def handler(page: Annotated[Pagination, Depends()]) -> list[int]:
            return [page.skip, page.limit]

        async with TestClient(app) as client:
            assert (await client.get("/?skip=5")).json() == [5, 10]
            assert (await client.get("/?limit=99")).status_code == 422

    async def test_sync_callables_run_in_worker_threads_under_their_own_limiter(self) -> None:
        """def handlers and dependencies never block the event loop."""
        app = App(sync_threads=3)
        loop_thread = threading.get_ident()
        seen: list[int] = []

        def dep() -> None:
            seen.append(threading.get_ident())

        @app.get("/", dependencies=[Depends(dep)])
        def handler() -> None:
            seen.append(threading.get_ident())

        async with TestClient(app) as client:
            await client.get("/")
        assert loop_thread not in seen
        assert app.sync_limiter.total_tokens == 3

    async def test_app_level_dependencies_run_before_every_route(self) -> None:
        """``App(dependencies=...)`` guards everything; an HTTPException stops the request."""

        def require_token(x_token: str | None = None, request: Request | None = None) -> None:
            if x_token != "secret":
                raise HTTPException(401, "missing token")

        app = App(dependencies=[Depends(require_token)])

        @app.get("/")
        async def handler() -> str:
            return "ok"

        async with TestClient(app) as client:
            assert (await client.get("/")).status_code == 401
            assert (await client.get("/?x_token=secret")).json() == "ok"


class TestYield:
    async def test_teardown_runs_in_reverse_order_after_the_response(self) -> None:
        """Setup in dependency order, teardown in reverse, both after the handler."""
        app = App()
        events: list[str] = []

        async def outer() -> AsyncIterator[None]:
            events.append("outer up")
            yield
            events.append("outer down")

        def inner(_: None = Depends(outer)) -> Iterator[None]:
            events.append("inner up")
            yield
            events.append("inner down")

        @app.get("/")
        async def handler(_: None = Depends(inner)) -> None:
            events.append("handler")

        async with TestClient(app, wait_for_tasks=True) as client:
            await client.get("/")
        assert events == ["outer up", "inner up", "handler", "inner down", "outer down"]

    @pytest.mark.parametrize("sync", [True, False])
    async def test_the_handlers_exception_is_visible_to_the_dependency(self, sync: bool) -> None:
        """A yield dependency can roll back when the handler fails, sync or async."""
        app = App()
        outcome: list[str] = []

        def sync_session() -> Iterator[str]:
            try:
                yield "session"
            except HTTPException as error:
                outcome.append(f"rollback after {error.status_code}")
                raise
            else:
                outcome.append("commit")

        async def async_session() -> AsyncIterator[str]:
            try:
                yield "session"
            except HTTPException as error:
                outcome.append(f"rollback after {error.status_code}")
                raise
            else:
                outcome.append("commit")

        session = sync_session if sync else async_session

        @app.post("/{ok}")
        async def handler(ok: bool, s: str = Depends(session)) -> str:
            if not ok:
                raise HTTPException(409, "conflict")
            return s

        async with TestClient(app, wait_for_tasks=True) as client:
            assert (await client.post("/true")).status_code == 200
            assert (await client.post("/false")).status_code == 409
        assert outcome == ["commit", "rollback after 409"]

    async def test_sync_generator_context_reaches_the_handler(self) -> None:
        """A ContextVar set before a sync generator's yield (in a thread) is visible later."""
        app = App()
        tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant")

        def set_tenant() -> Iterator[None]:
            tenant.set("acme")
            yield

        @app.get("/", dependencies=[Depends(set_tenant)])
        async def handler() -> str:
            return tenant.get()

        async with TestClient(app) as client:
            assert (await client.get("/")).json() == "acme"

    async def test_a_failing_teardown_is_logged_not_sent(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The response is already out; a teardown error goes to the log with the route."""
        app = App()

        async def flaky() -> AsyncIterator[None]:
            yield
            raise RuntimeError("close failed")

        @app.get("/", dependencies=[Depends(flaky)])
        async def handler() -> str:
            return "ok"

        async with TestClient(app, wait_for_tasks=True) as client:
            assert (await client.get("/")).json() == "ok"
        assert "dependency teardown failed after GET /" in caplog.text


class TestOverrides:
    async def test_overrides_replace_dependencies_and_can_be_removed(self) -> None:
        """``app.dependency_overrides`` swaps a dependency (with its own parameters) for tests."""
        app = App()

        def real_db() -> str:
            return "postgres"

        @app.get("/")
        async def handler(db: str = Depends(real_db)) -> str:
            return db

        def fake_db(suffix: str = "") -> str:
            return "memory" + suffix

        async with TestClient(app) as client:
            assert (await client.get("/")).json() == "postgres"
            app.dependency_overrides[real_db] = fake_db
            assert (await client.get("/?suffix=!")).json() == "memory!"
            app.dependency_overrides.clear()
            assert (await client.get("/")).json() == "postgres"

    def test_dependency_cycles_are_reported_at_declaration(self) -> None:
        """A cycle is a declaration error, not a recursion crash on every request."""
        with pytest.raises(TypeError, match="dependency cycle"):
            App().add_route("/", _cycle_a)

    def test_unknown_scope_is_rejected(self) -> None:
        """Only ``request`` and ``function`` scopes exist."""
        with pytest.raises(ValueError, match="scope"):
            Depends(_cycle_a, scope="session")  # type: ignore[arg-type]


class TestGeneratedSolver:
    """Each route's plan is written out as Python (``_solve.py``); these pin what that must keep."""

    async def test_parameter_names_never_clash_with_the_generated_code(self) -> None:
        """Names the solver uses for its own locals are ordinary parameter names to users."""
        app = App()

        def dep(query: str, path_params: str, body: str = "b") -> str:
            return f"{query}-{path_params}-{body}"

        @app.get("/{request}")
        async def handler(
            request: int,
            errors: int,
            limiter: str,
            teardown: str = "t",
            tasks: list[int] = Query([]),
            joined: str = Depends(dep),
        ) -> list[object]:
            return [request, errors, limiter, teardown, tasks, joined]

        async with TestClient(app) as client:
            response = await client.get(
                "/7?errors=3&limiter=l&tasks=1&tasks=2&query=q&path_params=p"
            )
            assert response.json() == [7, 3, "l", "t", [1, 2], "q-p-b"]
            bad = await client.get("/x?errors=y")
        assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
            ("path", "request"),
            ("query", "errors"),
            ("query", "limiter"),
            ("query", "query"),
            ("query", "path_params"),
        }

    async def test_a_failing_dependency_shows_the_generated_line_in_its_traceback(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The generated source is in ``linecache``, so a traceback names the call it made."""
        app = App()

        async def broken() -> None:
            raise RuntimeError("boom")

        @app.get("/")
        async def handler(value: None = Depends(broken)) -> None:
            return value

        async with TestClient(app) as client:
            assert (await client.get("/")).status_code == 500
        logged = "".join(
            "".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info
        )
        assert "<triobg solver" in logged and "GET />" in logged
        assert "= await _call" in logged  # the generated line itself, not "<unknown>"


class Pagination:
    def __init__(self, skip: int = 0, limit: Annotated[int, Query(le=50)] = 10) -> None:
        self.skip = skip
        self.limit = limit


def _cycle_a(x: Annotated[None, Depends(_cycle_b)]) -> None:
    return None


def _cycle_b(x: Annotated[None, Depends(_cycle_a)]) -> None:
    return None
