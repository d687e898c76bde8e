"""Shared test configuration: trio_mode (pyproject) makes every ``async def`` test a trio test.

The PostgreSQL server some tests start (``_postgres.py``) is stopped at the end of the session.
``either_server`` runs a test once on triobg's native server and once on hypercorn, by making
``serve_live`` pass ``server=`` to ``triobg.serve``; use it with
``pytestmark = pytest.mark.usefixtures("either_server")``.
"""

from __future__ import annotations

import functools
from typing import Literal

import pytest
from _postgres import stop_shared_server

import triobg.testing._live
from triobg._serve import serve


@pytest.fixture(params=["native", "hypercorn"])
def either_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server ``serve_live`` runs on, each in turn."""
    server: Literal["native", "hypercorn"] = request.param
    monkeypatch.setattr(triobg.testing._live, "serve", functools.partial(serve, server=server))
    return server


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    """The PostgreSQL server some tests start is stopped however the session ends."""
    stop_shared_server()
