"""``/docs`` in a real browser: Swagger UI, served from the installed package, renders every
operation of a live app, and nothing it loads comes from anywhere but that app.

Debian's ``chromium`` (``tests/_chromium.py`` drives it over the DevTools protocol) opens
``/docs`` of the kitchen-sink app (``tests/_openapi_app.py``) served by ``serve_live`` on
127.0.0.1. Skipped, saying why, where ``chromium`` or ``websockets`` is missing; CI installs
both. Swagger UI builds the page from ``/openapi.json`` after the load event, so the probe waits
in the page (bounded) until the operations are there.
"""

from __future__ import annotations

import importlib.util

import pytest
import trio

if importlib.util.find_spec("websockets") is None:
    pytest.skip("the docs extra (websockets) is not installed", allow_module_level=True)

from _chromium import Browser, Loaded, find_chromium
from _openapi_app import build_app

from triobg.testing import serve_live

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
    ),
]

#: Swagger UI's element ids: ``operations-{tag}-{operationId}``.
OPERATIONS = {
    "operations-items-list_items",
    "operations-items-create_item",
    "operations-items-read_item",
    "operations-items-replace_item",
    "operations-items-delete_item",
    "operations-users-me",
    "operations-search-search",
    "operations-default-hello",
    "operations-default-page",
}

# Resolves once every expected operation is on the page, or after 15 s with what is there.
PROBE = """
new Promise((resolve) => {
  const wanted = __COUNT__;
  const started = Date.now();
  const look = () => {
    const ops = [...document.querySelectorAll(".opblock")].map((block) => block.id);
    if (ops.length >= wanted || Date.now() - started > 15000) {
      resolve({
        ops,
        deprecated: [...document.querySelectorAll(".opblock-deprecated")].map((b) => b.id),
        title: document.title,
        versions: [...document.querySelectorAll(".version")].map((v) => v.textContent.trim()),
      });
    } else {
      setTimeout(look, 50);
    }
  };
  look();
})
""".replace("__COUNT__", str(len(OPERATIONS)))


def open_docs(url: str) -> tuple[Loaded, list[str]]:
    """``/docs`` as Chromium renders it, and the URL of every request the page made."""
    assert CHROMIUM is not None
    with Browser.launch(CHROMIUM, width=1280, height=900) as browser:
        loaded = browser.open(url + "/docs", PROBE)
        requests = [
            event["params"]["request"]["url"]
            for event in browser._events
            if event["method"] == "Network.requestWillBeSent"
        ]
    return loaded, requests


async def test_swagger_ui_renders_every_operation_offline() -> None:
    """Every operation appears under its tag, the deprecated one marked, the hidden one absent;
    the page names the app and its version; every request it made went to the app itself."""
    async with serve_live(build_app()) as server:
        with trio.fail_after(120):
            loaded, requests = await trio.to_thread.run_sync(open_docs, server.url)
    assert loaded.problems == (), loaded.problems
    result = loaded.result
    assert set(result["ops"]) == OPERATIONS, result["ops"]
    assert result["deprecated"] == ["operations-default-page"]
    assert result["title"] == "Kitchen sink 1.2.3 - API documentation"
    assert "1.2.3" in result["versions"]
    assert requests and all(url.startswith(server.url + "/") for url in requests), requests
    assert not any(url.endswith("/favicon.ico") for url in requests)  # the page names its icon
    assert any(url.startswith(server.url + "/openapi.json") for url in requests)
