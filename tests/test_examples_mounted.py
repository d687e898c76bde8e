"""``examples/mounted.py``: the mounted API, the bare ASGI app, the static files and the two
redirects, in-process and over a real server (both kinds)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from examples import mounted
from triobg.testing import TestClient, serve_live

WAIT = 5


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example writes ``visits.txt`` to the working directory: a fresh one per test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


class TestInProcess:
    async def test_the_api_under_v2(self, in_tmp: Path) -> None:
        """The mounted API answers with its lifespan's data and a URL that carries ``/v2``, and
        its background task writes its line."""
        async with TestClient(mounted.build_app()) as client:
            response = await client.get("/v2/items/1")
            assert response.json() == {
                "id": 1,
                "name": "kettle",
                "self": "http://testserver/v2/items/1",
            }
            await client.wait_background()
            docs = await client.get("/v2/openapi.json")
            assert docs.json()["info"]["title"] == "Shop API"
            assert "/v2/items/{item_id}" not in (await client.get("/openapi.json")).text
        assert (in_tmp / "visits.txt").read_text() == "item 1\n"

    async def test_health_static_and_links(self) -> None:
        """The bare app's lifespan ran; the front page and its stylesheet are served; ``url_for``
        reaches into both mounts."""
        async with TestClient(mounted.build_app()) as client:
            health = await client.get("/health")
            assert health.status_code == 200
            assert health.text.startswith("ok, up ")
            home = await client.get("/")
            assert (home.status_code, home.headers["location"]) == (307, "/static/")
            page = await client.get("/static/")
            assert "Served by StaticFiles" in page.text
            css = await client.get("/static/style.css")
            assert css.headers["content-type"] == "text/css; charset=utf-8"
            links = (await client.get("/links")).json()
        assert links == {
            "kettle": "http://testserver/v2/items/1",
            "style": "http://testserver/static/style.css",
        }

    async def test_redirects(self) -> None:
        """``/login`` keeps ``next`` on the site; ``/manual`` goes where the app says."""
        async with TestClient(mounted.build_app()) as client:
            evil = await client.get("/login", params={"next": "https://evil.example"})
            local = await client.get("/login", params={"next": "/v2/items/2"})
            manual = await client.get("/manual")
        assert (evil.status_code, evil.headers["location"]) == (303, "/")
        assert local.headers["location"] == "/v2/items/2"
        assert manual.headers["location"] == "https://trio.readthedocs.io/"


@pytest.mark.e2e
@pytest.mark.usefixtures("either_server")
async def test_over_a_real_server(in_tmp: Path) -> None:
    """The whole site over HTTP/1.1 on loopback, on one kept-alive connection."""
    async with serve_live(mounted.build_app()) as server, await server.connect() as conn:
        with trio.fail_after(WAIT):
            item = await conn.request("GET", "/v2/items/2")
            assert item.json()["name"] == "teapot"
            assert item.json()["self"] == f"http://{server.host}:{server.port}/v2/items/2"
            css = await conn.request("GET", "/static/style.css")
            etag = css.header("etag")
            assert css.status == 200 and etag
            again = await conn.request("GET", "/static/style.css", headers={"if-none-match": etag})
            assert again.status == 304
            assert (await conn.request("GET", "/health")).status == 200
    assert (in_tmp / "visits.txt").read_text() == "item 2\n"
