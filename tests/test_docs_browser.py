"""The docs site, built and opened in headless Chromium at 1280 px: the key pages load without a
console error, an exception or a missing asset, and their code blocks need no horizontal scroll.

The site is built from ``docs/`` into a temporary directory with the same options as CI
(``-n -W --keep-going``), served from 127.0.0.1 on a random port, and each page in ``PAGES`` is
opened by Debian's ``chromium`` (``tests/_chromium.py`` drives it). ``nox -s docs`` and CI run
this file; without ``chromium`` (``apt-get install chromium``) or the ``docs`` extra it is
skipped, saying which is missing. The front page's screenshots, light and dark, are written to
the test's ``tmp_path`` (``pytest --basetemp=DIR`` to keep them somewhere known).
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 1280, 900
COLUMNS = 100  # the project's line limit: any code line this long must fit without scrolling

# The pages to open, by path in the built site; add a page (the durable-tasks pages, say) with
# one line.
PAGES = [
    "index.html",
    "tutorial/index.html",
    "tutorial/first-app.html",
    "tutorial/background-tasks.html",
    "tutorial/uploads.html",
    "tutorial/testing.html",
    "howto/migrate-from-fastapi.html",
    "howto/graceful-shutdown.html",
    "design/lifecycle.html",
    "tutorial/durable-tasks.html",
    "howto/poll-task-status.html",
    "howto/dedicated-workers.html",
    "howto/recover-after-a-crash.html",
    "howto/postgresql.html",
    "design/durable-tasks.html",
    "design/native-server.html",
    "tutorial/api-docs.html",
    "reference/triobg.html",
    "howto/mount-and-static.html",
    "search.html",
]

_missing = [
    name for name in ("sphinx", "furo", "websockets") if importlib.util.find_spec(name) is None
]
if _missing:
    pytest.skip(
        f"the docs extra is not installed ({', '.join(_missing)} missing): "
        "pip install -e '.[docs]'",
        allow_module_level=True,
    )

from _chromium import Browser, Loaded, find_chromium  # noqa: E402  (needs websockets)

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

# Evaluated in each page once it has loaded: every code block that scrolls sideways, with its
# longest line in columns; and the room a line of ``COLUMNS`` characters would leave in each block
# (measured by adding one for a moment), so that the promise holds for lines not written yet.
PROBE = """
(() => {
  const blocks = [];
  for (const pre of document.querySelectorAll("pre")) {
    const lines = pre.textContent.replace(/\\n$/, "").split("\\n");
    const columns = Math.max(...lines.map((line) => line.length));
    const scrolls = pre.scrollWidth > pre.clientWidth;
    const probe = document.createElement("span");
    const line = document.createElement("span");
    line.textContent = "M".repeat(__COLUMNS__);
    probe.append("\\n", line);
    pre.appendChild(probe);
    const style = getComputedStyle(pre);
    const inside = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    const room = Math.floor(inside - line.getBoundingClientRect().width);
    pre.removeChild(probe);
    // Blocks inside a list, a definition (docstrings), a table or an aside are indented, as in
    // the source they come from; only their actual lines are held to the limit.
    const nested = pre.closest("li, dd, blockquote, table, aside, .admonition") !== null;
    blocks.push({columns, scrolls, room, nested, start: lines[0].slice(0, 70)});
  }
  return {
    blocks,
    pageWidth: document.documentElement.scrollWidth,
    viewportWidth: window.innerWidth,
    background: getComputedStyle(document.body).backgroundColor,
    stylesheets: document.styleSheets.length,
  };
})()
""".replace("__COLUMNS__", str(COLUMNS))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs, built as CI builds them: every warning an error, every reference resolved."""
    html = tmp_path_factory.mktemp("docs") / "html"
    command = [sys.executable, "-m", "sphinx", "-q", "-n", "-W", "--keep-going"]
    built = subprocess.run(
        [*command, "-b", "html", str(ROOT / "docs"), str(html)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # the browser reports every failed load; the server need not print each request


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """The built site served over HTTP on a random loopback port, as a reader would get it."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM is not None
    with Browser.launch(CHROMIUM, width=WIDTH, height=HEIGHT) as made:
        yield made


def open_page(browser: Browser, base_url: str, page: str, scheme: str = "light") -> Loaded:
    browser.color_scheme(scheme)
    return browser.open(base_url + page, PROBE)


@pytest.mark.parametrize("page", PAGES)
def test_page_loads_cleanly_and_its_code_fits(
    browser: Browser, base_url: str, site: Path, page: str
) -> None:
    """The page exists, loads with no console error or failed asset, styles applied, and no code
    block within the column limit scrolls sideways, nor would a full-width line."""
    assert (site / page).is_file(), f"{page} is listed in PAGES but was not built"
    loaded = open_page(browser, base_url, page)
    assert loaded.problems == (), loaded.problems
    result = loaded.result
    assert result["stylesheets"] >= 2  # Sphinx's and Furo's, at least
    assert result["pageWidth"] <= result["viewportWidth"], "the page itself scrolls sideways"
    scrolling = [b for b in result["blocks"] if b["scrolls"] and b["columns"] <= COLUMNS]
    assert scrolling == [], f"code blocks within {COLUMNS} columns scroll sideways"
    too_narrow = [b for b in result["blocks"] if b["room"] < 0 and not b["nested"]]
    assert too_narrow == [], f"a {COLUMNS}-column line would not fit in these blocks"


def test_front_page_light_and_dark(
    browser: Browser, base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The front page follows the reader's colour scheme: the background changes, cleanly."""
    backgrounds = {}
    for scheme in ("light", "dark"):
        loaded = open_page(browser, base_url, "index.html", scheme)
        assert loaded.problems == (), loaded.problems
        backgrounds[scheme] = loaded.result["background"]
        (tmp_path / f"index-{scheme}.png").write_bytes(browser.screenshot())
    assert backgrounds["light"] != backgrounds["dark"], backgrounds
    with capsys.disabled():
        print(f"\nfront page screenshots: {tmp_path}/index-{{light,dark}}.png")
