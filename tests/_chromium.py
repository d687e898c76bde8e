"""A headless Chromium driven over the DevTools protocol, for the docs check
(``test_docs_browser.py``): open a page at a given width, then read back what the browser itself
reported (console messages, uncaught exceptions, failed or 4xx/5xx loads) and evaluate a script
in the page.

Why the DevTools protocol rather than ``--dump-dom`` and log scraping: the browser reports every
console message and every network response as structured events, so nothing has to be injected
into the pages under test and nothing is parsed out of free-form log text; one browser serves
every page, and the colour scheme is switched by media emulation. The protocol runs over a
WebSocket, spoken here with the ``websockets`` package's synchronous client (no dependencies of
its own), so this file stays a few dozen lines of plain calls.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import attrs
from websockets.sync.client import ClientConnection, connect

STARTUP = 30.0  # seconds for Chromium to start and say where its DevTools endpoint is
STEP = 20.0  # seconds any single page load or protocol command may take

# Debian's ``chromium`` as root in a container: no sandbox, no GPU, and none of the background
# traffic a browser makes on its own (the machine has no network beyond loopback).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--remote-allow-origins=*",
)


def find_chromium() -> str | None:
    """The path of Debian's ``chromium``, or ``None`` when it is not installed."""
    return shutil.which("chromium")


@attrs.frozen
class Problem:
    """One thing the browser reported while a page loaded: a console message, an exception, a
    failed load."""

    kind: str
    text: str


@attrs.frozen
class Loaded:
    """A page as the browser saw it: what it reported while loading, and the probe's result."""

    url: str
    problems: tuple[Problem, ...]
    result: Any


class Browser:
    """One headless Chromium process and one tab, attached over the DevTools protocol."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []
        self._session = ""

    @classmethod
    @contextlib.contextmanager
    def launch(cls, executable: str, *, width: int, height: int) -> Iterator[Browser]:
        """Start Chromium with a fresh profile; always killed and reaped on the way out."""
        with tempfile.TemporaryDirectory(prefix="triobg-chromium-") as profile:
            process = subprocess.Popen(
                [executable, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # so one kill reaches its renderer and helper processes
            )
            lines: queue.Queue[str | None] = queue.Queue()
            reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
            reader.start()
            try:
                url = _devtools_url(lines)
                with connect(url, max_size=None, open_timeout=STEP) as ws:
                    browser = cls(ws)
                    browser._open_tab(width, height)
                    yield browser
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STEP)
                reader.join(timeout=STEP)  # it closes stderr once the pipe reaches its end

    def _open_tab(self, width: int, height: int) -> None:
        target = self.command("Target.createTarget", url="about:blank", session=False)
        attached = self.command(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True, session=False
        )
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.command(f"{domain}.enable")
        self.command(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def command(self, method: str, *, session: bool = True, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._ws.send(json.dumps(message))
        while True:
            reply = json.loads(self._ws.recv(timeout=STEP))
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def _wait_event(self, method: str) -> None:
        # The event may have come in already, while ``command`` waited for its reply.
        if any(event["method"] == method for event in self._events):
            return
        while True:
            event = json.loads(self._ws.recv(timeout=STEP))
            if "method" in event:
                self._events.append(event)
                if event["method"] == method:
                    return

    def color_scheme(self, scheme: str) -> None:
        """Emulate ``prefers-color-scheme: light`` or ``dark`` for the pages opened next."""
        self.command(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": scheme}],
        )

    def open(self, url: str, probe: str) -> Loaded:
        """Load ``url``, wait for its load event and its fonts, then evaluate ``probe`` in it."""
        self._events.clear()
        self.command("Page.navigate", url=url)
        self._wait_event("Page.loadEventFired")
        self.evaluate("document.fonts.ready.then(() => true)")
        result = self.evaluate(probe)
        return Loaded(url, tuple(_problems(self._events)), result)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises are awaited)."""
        reply = self.command(
            "Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:60]}...: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the viewport."""
        return base64.b64decode(self.command("Page.captureScreenshot", format="png")["data"])


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Pass Chromium's stderr on line by line (``None`` at the end), so the pipe never fills."""
    assert process.stderr is not None
    with process.stderr:
        for line in process.stderr:
            lines.put(line)
    lines.put(None)


def _devtools_url(lines: queue.Queue[str | None]) -> str:
    """Wait for the stderr line that names the DevTools endpoint (bounded by ``STARTUP``)."""
    seen: list[str] = []
    while True:
        try:
            line = lines.get(timeout=STARTUP)
        except queue.Empty:
            raise TimeoutError(f"chromium did not start in {STARTUP} s:\n{''.join(seen)}") from None
        if line is None:
            raise RuntimeError(f"chromium exited before listening:\n{''.join(seen)}")
        seen.append(line)
        found = re.search(r"DevTools listening on (ws://\S+)", line)
        if found:
            return found.group(1)


CONSOLE_PROBLEMS = ("error", "warning", "assert")


def _problems(events: list[dict[str, Any]]) -> Iterator[Problem]:
    """What counts against a page: console errors and warnings, uncaught exceptions, browser log
    entries (a failed load is logged there too), responses of 400 and up, and failed loads."""
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in CONSOLE_PROBLEMS:
            args = params["args"]
            text = " ".join(str(arg.get("value", arg.get("description"))) for arg in args)
            yield Problem(f"console.{params['type']}", text)
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            yield Problem("exception", text)
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            entry = params["entry"]
            yield Problem(f"log.{entry['level']}", f"{entry['text']} ({entry.get('url', '')})")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            response = params["response"]
            yield Problem("http", f"{response['status']} {response['url']}")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            yield Problem("load", f"{params['errorText']} (request {params['requestId']})")
