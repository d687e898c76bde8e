# Serving the API's description: ``/openapi.json`` and the interactive Swagger UI at ``/docs``.
#
# Installed by ``App`` as ordinary routes (left out of the document themselves), so they go
# through the same pipeline as every other request. The document comes from ``App.openapi()``
# (generated once, cached). Swagger UI's files come from the ``swagger-ui-bundle-v2`` package
# (the ``triobg[swagger]`` extra: Swagger UI 5, which reads OpenAPI 3.1), read once and served
# by the app itself, so ``/docs`` works with no internet; ``swagger_js_url``/``swagger_css_url``
# point the page at other copies (a CDN) instead.
from __future__ import annotations

import html
import importlib
import json
import os
import typing
from typing import Any

import attrs
import trio

from ._requests import Request
from ._responses import HTMLResponse, Response

if typing.TYPE_CHECKING:
    from ._app import App

#: The files the page needs, by the name they are served under.
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
_MIN_MAJOR = 5  # Swagger UI 4 shows OpenAPI 3.1 documents as "unsupported"


@attrs.frozen
class SwaggerFiles:
    """Where an installed Swagger UI lives: its directory and version (``"5.31.0"``)."""

    directory: str
    version: str


def find_swagger_ui() -> SwaggerFiles | None:
    """The installed Swagger UI 5 (from ``swagger-ui-bundle-v2``), or ``None``."""
    try:
        bundle = importlib.import_module("swagger_ui_bundle")
    except ImportError:
        return None
    directory = os.fspath(getattr(bundle, "swagger_ui_path", ""))
    version = os.path.basename(directory).removeprefix("swagger-ui-")
    major = version.partition(".")[0]
    if not (major.isdigit() and int(major) >= _MIN_MAJOR):
        return None  # the older ``swagger-ui-bundle`` (Swagger UI 4) shares the import name
    if not all(os.path.isfile(os.path.join(directory, name)) for name in _ASSETS):
        return None
    return SwaggerFiles(directory, version)


@attrs.define
class _AssetCache:
    files: SwaggerFiles
    _loaded: dict[str, bytes] = attrs.field(factory=dict)

    async def get(self, name: str) -> bytes:
        found = self._loaded.get(name)
        if found is None:
            path = os.path.join(self.files.directory, name)
            found = await trio.to_thread.run_sync(_read, path)
            self._loaded[name] = found
        return found


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


_MISSING = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title></head>"
    "<body><h1>{title}</h1><p>The interactive documentation needs Swagger UI's files, which are "
    "not installed. Install them with <code>pip install 'triobg[swagger]'</code>, or create the "
    "app with <code>swagger_js_url=</code> and <code>swagger_css_url=</code>. The OpenAPI document "
    "is at <a href='{openapi}'>{openapi}</a>.</p></body></html>"
)


def docs_page(*, title: str, openapi_url: str, js_url: str, css_url: str) -> str:
    """The HTML of the ``/docs`` page. ``title`` names the app and version."""
    # JSON inside <script>: escape "<" so that no value can close the script element.
    config = json.dumps({"url": openapi_url, "dom_id": "#swagger-ui", "deepLinking": True}).replace(
        "<", "\\u003c"
    )
    return (
        "<!doctype html>\n"
        "<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{html.escape(title)}</title>\n"
        # An empty icon: otherwise every visit asks the app for a /favicon.ico it does not have.
        "<link rel='icon' href='data:,'>\n"
        f"<link rel='stylesheet' href='{html.escape(css_url)}'>\n"
        "</head>\n<body>\n"
        f"<noscript><h1>{html.escape(title)}</h1><p>This page needs JavaScript. The OpenAPI "
        f"document is at <a href='{html.escape(openapi_url)}'>{html.escape(openapi_url)}</a>."
        "</p></noscript>\n"
        "<div id='swagger-ui'></div>\n"
        f"<script src='{html.escape(js_url)}'></script>\n"
        "<script>\n"
        f"const config = {config};\n"
        "config.presets = [SwaggerUIBundle.presets.apis];\n"
        "config.layout = 'BaseLayout';\n"
        "window.ui = SwaggerUIBundle(config);\n"
        "</script>\n</body>\n</html>\n"
    )


def install_docs(
    app: App,
    *,
    openapi_url: str | None,
    docs_url: str | None,
    swagger_js_url: str | None,
    swagger_css_url: str | None,
) -> None:
    """Add the ``openapi_url`` route and, when it exists, the ``docs_url`` routes to ``app``.

    ``docs_url`` without ``openapi_url`` has nothing to show, so it is refused.

    Raises:
        ValueError: ``docs_url`` is set but ``openapi_url`` is ``None``.
    """
    if openapi_url is None:
        if docs_url is not None:
            raise ValueError("docs_url needs an openapi_url to show; set docs_url=None too")
        return

    async def openapi() -> Response:
        return Response(app._openapi_json(), media_type="application/json")

    app.router.add_route(openapi_url, openapi, include_in_schema=False, name="openapi")
    if docs_url is None:
        return
    files = find_swagger_ui() if swagger_js_url is None or swagger_css_url is None else None
    cache = _AssetCache(files) if files is not None else None
    asset_base = docs_url.rstrip("/")
    tag = f"?v={files.version}" if files is not None else ""

    async def docs(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix, the server's ``root_path`` is that prefix.
        root = str(request.scope.get("root_path") or "").rstrip("/")
        title = f"{app.title} {app.version} - API documentation"
        openapi_at = root + openapi_url
        js = swagger_js_url or f"{root}{asset_base}/swagger-ui-bundle.js{tag}"
        css = swagger_css_url or f"{root}{asset_base}/swagger-ui.css{tag}"
        if (swagger_js_url is None or swagger_css_url is None) and cache is None:
            page = _MISSING.format(title=html.escape(title), openapi=html.escape(openapi_at))
            return HTMLResponse(page, status_code=501)
        return HTMLResponse(docs_page(title=title, openapi_url=openapi_at, js_url=js, css_url=css))

    app.router.add_route(docs_url, docs, include_in_schema=False, name="swagger_ui")
    if cache is None:
        return
    for name, media_type in _ASSETS.items():
        app.router.add_route(
            f"{asset_base}/{name}",
            _asset_handler(cache, name, media_type),
            include_in_schema=False,
            name=f"swagger_ui_{name}",
        )


def _asset_handler(cache: _AssetCache, name: str, media_type: str) -> Any:
    async def asset() -> Response:
        body = await cache.get(name)
        # Versioned by the ``?v=`` the page adds, so browsers may keep it a while.
        return Response(
            body, media_type=media_type, headers={"cache-control": "public, max-age=86400"}
        )

    return asset
