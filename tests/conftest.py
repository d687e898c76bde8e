"""Shared test configuration: trio_mode (pyproject) makes every ``async def`` test a trio test.

The PostgreSQL server some tests start (``_postgres.py``) is stopped at the end of the session.
``either_server`` runs a test once on triobg's native server and once on hypercorn, by making
``serve_live`` pass ``server=`` to ``triobg.serve``; use it with
``pytestmark = pytest.mark.usefixtures("either_server")``.

Uploaded files go to one directory for the whole session (``TRIOBG_UPLOAD_DIR``, which
subprocess servers inherit too), and every test checks it is empty when it ends: a test that
leaves a temporary upload behind fails by name.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Literal

import pytest
from _postgres import stop_shared_server

import triobg.testing._live
from triobg._serve import serve
from triobg._uploads import UPLOAD_DIR_ENV

_UPLOAD_DIR = tempfile.mkdtemp(prefix="triobg-test-uploads-")
os.environ[UPLOAD_DIR_ENV] = _UPLOAD_DIR


@pytest.fixture(autouse=True)
def _no_leftover_uploads() -> Iterator[None]:
    """Fails the test that leaves a temporary upload file behind."""
    yield
    left = os.listdir(_UPLOAD_DIR)
    if left:
        for name in left:
            os.unlink(os.path.join(_UPLOAD_DIR, name))
        pytest.fail(f"temporary upload files left behind: {sorted(left)}")


@pytest.fixture(params=["native", "hypercorn"])
def either_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The server ``serve_live`` runs on, each in turn."""
    server: Literal["native", "hypercorn"] = request.param
    monkeypatch.setattr(triobg.testing._live, "serve", functools.partial(serve, server=server))
    return server


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    """The PostgreSQL server some tests start is stopped however the session ends."""
    stop_shared_server()
    shutil.rmtree(_UPLOAD_DIR, ignore_errors=True)
