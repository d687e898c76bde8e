"""The native server's side of the ASGI lifespan protocol, with plain ASGI apps."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hypercorn.utils import LifespanFailureError

from triobg._server._lifespan import Lifespan

WAIT = 5.0


class TestLifespan:
    async def test_startup_then_shutdown(self) -> None:
        """``run`` reports started after ``startup.complete``; ``shutdown`` waits for the app."""
        seen: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append((await receive())["type"])
            scope["state"]["ready"] = True
            await send({"type": "lifespan.startup.complete"})
            seen.append((await receive())["type"])
            await send({"type": "lifespan.shutdown.complete"})

        lifespan = Lifespan(app)
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                await nursery.start(lifespan.run)
                assert lifespan.state == {"ready": True}
                await lifespan.shutdown(timeout=WAIT)
        assert seen == ["lifespan.startup", "lifespan.shutdown"]

    async def test_an_app_without_lifespan_support_is_served(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Raising on the lifespan scope before startup means "not supported", not a failure."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            raise ValueError("http only")

        lifespan = Lifespan(app)
        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                await nursery.start(lifespan.run)
                await lifespan.shutdown(timeout=WAIT)
        assert "does not support the ASGI lifespan" in caplog.text

    async def test_failed_startup_raises(self) -> None:
        """``startup.failed`` comes out of ``run`` as hypercorn's ``LifespanFailureError``."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.failed", "message": "no db"})

        with trio.fail_after(WAIT), pytest.raises(LifespanFailureError, match="no db"):
            await Lifespan(app).run()

    async def test_failed_shutdown_raises(self) -> None:
        """``shutdown.failed`` comes out of ``shutdown``."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.failed", "message": "flush failed"})

        lifespan = Lifespan(app)
        failure = pytest.RaisesGroup(pytest.RaisesExc(LifespanFailureError, match="flush failed"))
        with trio.fail_after(WAIT), failure:
            async with trio.open_nursery() as nursery:
                await nursery.start(lifespan.run)
                await lifespan.shutdown(timeout=WAIT)

    async def test_a_slow_shutdown_is_bounded(
        self, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A lifespan exit that hangs is given up on after the timeout, with a log line."""

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await trio.sleep_forever()

        lifespan = Lifespan(app)
        async with trio.open_nursery() as nursery:
            await nursery.start(lifespan.run)
            await lifespan.shutdown(timeout=3)
            assert trio.current_time() == pytest.approx(3)
            nursery.cancel_scope.cancel()
        assert "took longer than 3.0 s" in caplog.text
