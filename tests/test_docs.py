"""``/docs``: Swagger UI from an installed package, served by the app itself: no internet."""

from __future__ import annotations

import re

import pytest
import trio

import triobg._docs
from triobg import App
from triobg.testing import TestClient, serve_live


def _asset_urls(page: str) -> tuple[str, str]:
    js = re.search(r"<script src='([^']+)'", page)
    css = re.search(r"<link rel='stylesheet' href='([^']+)'", page)
    assert js and css, page
    return js.group(1), css.group(1)


class TestPackage:
    """The assets come from a maintained package, Swagger UI 5 (which reads OpenAPI 3.1)."""

    def test_swagger_ui_5_is_installed_with_the_docs_extra(self) -> None:
        files = triobg._docs.find_swagger_ui()
        assert files is not None, "pip install 'triobg[swagger]' (swagger-ui-bundle-v2)"
        assert int(files.version.split(".")[0]) >= 5


class TestPage:
    """The page names the app and version and loads everything from this server."""

    async def test_page_and_assets_over_a_real_server(self) -> None:
        """Over HTTP/1.1 on loopback: the page, then each asset it names, all from the app."""
        app = App(title="Shop <API>", version="2.0")
        with trio.fail_after(30):
            async with serve_live(app) as server, await server.connect() as conn:
                page = await conn.request("GET", "/docs")
                assert page.status == 200
                assert (page.header("content-type") or "").startswith("text/html")
                text = page.body.decode()
                # The app's name and version, escaped (the title is the app's, not markup).
                assert "<title>Shop &lt;API&gt; 2.0 - API documentation</title>" in text
                assert '"url": "/openapi.json"' in text
                assert "http" not in text.replace("http-equiv", "")  # nothing from elsewhere
                js, css = _asset_urls(text)
                assert js.startswith("/docs/swagger-ui-bundle.js?v=5.")
                script = await conn.request("GET", js)
                assert script.status == 200
                assert (script.header("content-type") or "").startswith("text/javascript")
                assert b"SwaggerUIBundle" in script.body
                assert len(script.body) > 100_000
                style = await conn.request("GET", css)
                assert style.status == 200
                assert (style.header("content-type") or "").startswith("text/css")
                assert b".swagger-ui" in style.body
                spec = await conn.request("GET", "/openapi.json")
                assert spec.status == 200

    async def test_behind_a_prefix_the_urls_carry_the_root_path(self) -> None:
        """A proxy that strips ``/api`` (the server's ``root_path``) still gets working URLs."""
        app = App()

        async def call() -> str:
            scope = {
                "type": "http", "method": "GET", "path": "/docs", "raw_path": b"/docs",
                "root_path": "/api", "query_string": b"", "headers": [], "http_version": "1.1",
                "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 1),
                "asgi": {"version": "3.0"},
            }  # fmt: skip
            body: list[bytes] = []

            async def receive() -> dict[str, object]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: dict[str, object]) -> None:
                if message["type"] == "http.response.body":
                    body.append(message.get("body", b""))  # type: ignore[arg-type]

            await app(scope, receive, send)
            return b"".join(body).decode()

        page = await call()
        js, css = _asset_urls(page)
        assert js.startswith("/api/docs/swagger-ui-bundle.js")
        assert css.startswith("/api/docs/swagger-ui.css")
        assert '"url": "/api/openapi.json"' in page

    async def test_a_script_closing_title_cannot_break_out(self) -> None:
        """The config is JSON inside ``<script>``; ``</script>`` in a URL is escaped."""
        app = App(openapi_url="/x</script><script>alert(1)//")
        async with TestClient(app) as client:
            page = (await client.get("/docs")).text
        assert "</script><script>alert" not in page


class TestOptions:
    """Turning things off, and using other copies of the assets."""

    async def test_docs_url_none_turns_the_page_off(self) -> None:
        """The document stays; the page and its assets are gone."""
        async with TestClient(App(docs_url=None)) as client:
            assert (await client.get("/docs")).status_code == 404
            assert (await client.get("/docs/swagger-ui.css")).status_code == 404
            assert (await client.get("/openapi.json")).status_code == 200

    async def test_docs_url_moves(self) -> None:
        async with TestClient(App(docs_url="/api-docs")) as client:
            page = (await client.get("/api-docs")).text
            js, _ = _asset_urls(page)
            assert js.startswith("/api-docs/swagger-ui-bundle.js")
            assert (await client.get(js.partition("?")[0])).status_code == 200

    async def test_cdn_urls_replace_the_local_assets(self) -> None:
        """With both URLs given, the page uses them and the app serves no copies."""
        app = App(
            swagger_js_url="https://cdn.example/swagger-ui-bundle.js",
            swagger_css_url="https://cdn.example/swagger-ui.css",
        )
        async with TestClient(app) as client:
            page = (await client.get("/docs")).text
            assert _asset_urls(page) == (
                "https://cdn.example/swagger-ui-bundle.js",
                "https://cdn.example/swagger-ui.css",
            )
            assert (await client.get("/docs/swagger-ui.css")).status_code == 404

    async def test_without_the_package_the_page_says_what_to_install(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A clear 501 naming the extra, never a page that silently fails to load."""
        monkeypatch.setattr(triobg._docs, "find_swagger_ui", lambda: None)
        app = App(title="Shop", version="3")
        async with TestClient(app) as client:
            response = await client.get("/docs")
        assert response.status_code == 501
        assert "triobg[swagger]" in response.text
        assert "Shop 3" in response.text
