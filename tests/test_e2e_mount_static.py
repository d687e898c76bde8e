"""Mounts and static files over real sockets, on triobg's server and on hypercorn: the mounted
app's lifespan runs inside the server's, paths and escapes arrive as servers decode them, and
no request target reaches a file outside the static root."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from triobg import App, BackgroundTasks, Request, StaticFiles
from triobg.testing import serve_live

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("either_server")]

WAIT = 5  # seconds any single network step may take before the test fails
SECRET = b"E2E-SECRET-OUTSIDE-THE-ROOT"


def make_app(root: Path, events: list[str]) -> App:
    @contextlib.asynccontextmanager
    async def child_lifespan(app: App) -> AsyncIterator[dict[str, str]]:
        events.append("child startup")
        yield {"greeting": "hello from the child"}
        events.append("child shutdown")

    child = App(lifespan=child_lifespan)

    @child.get("/greet/{name}")
    async def greet(name: str, request: Request, tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(events.append, f"child task {name}")
        return {
            "greeting": f"{request.state.greeting}, {name}",
            "url": str(request.url),
            "self": str(request.url_for("greet", name=name)),
        }

    async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                phase = message["type"].split(".")[1]
                events.append(f"bare {phase}")
                await send({"type": f"lifespan.{phase}.complete"})
                if phase == "shutdown":
                    return
        body = repr([scope["root_path"], scope["path"], scope["raw_path"]]).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    app = App()

    @app.get("/")
    async def index() -> str:
        return "parent"

    app.mount("/child", child, name="child")
    app.mount("/bare", bare)
    app.mount("/static", StaticFiles(directory=root, html=True), name="static")
    return app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    public = tmp_path / "public"
    public.mkdir()
    (public / "hello.txt").write_bytes(b"hello, world\n")
    (public / "big.bin").write_bytes(os.urandom(300_000))
    (public / "docs").mkdir()
    (public / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    os.symlink(tmp_path / "secret.txt", public / "out.txt")
    return public


async def raw_request(host: str, port: int, target: bytes) -> bytes:
    """Send ``GET target`` byte for byte (no client-side checks) and read until the close."""
    with trio.fail_after(WAIT):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(
                b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = bytearray()
            for _ in range(1000):  # bounded: the answers here are small
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                data += chunk
            return bytes(data)


class TestMountsLive:
    async def test_mounted_apps_and_their_lifespans(self, root: Path) -> None:
        """The child's lifespan state reaches its requests, its tasks run, the bare app sees
        the spec's scope, and at shutdown the mounts stop before the server returns."""
        events: list[str] = []
        async with serve_live(make_app(root, events)) as server:
            assert events == ["child startup", "bare startup"]
            async with await server.connect() as conn:
                with trio.fail_after(WAIT):
                    greet = await conn.request("GET", "/child/greet/ann")
                    bare = await conn.request("GET", "/bare/a%20b/c")
                    parent = await conn.request("GET", "/")
            base = f"http://{server.host}:{server.port}"
            assert greet.json() == {
                "greeting": "hello from the child, ann",
                "url": f"{base}/child/greet/ann",
                "self": f"{base}/child/greet/ann",
            }
            assert bare.text == repr(["/bare", "/bare/a b/c", b"/bare/a%20b/c"])
            assert parent.json() == "parent"
        assert "child task ann" in events
        assert events[-2:] == ["bare shutdown", "child shutdown"]


class TestStaticLive:
    async def test_files_ranges_and_etags(self, root: Path) -> None:
        """A big file whole and in a range, a 304 on the ETag, HEAD, and ``/docs`` to ``/docs/``
        to its ``index.html``, on one kept-alive connection."""
        big = (root / "big.bin").read_bytes()
        async with serve_live(make_app(root, [])) as server, await server.connect() as conn:
            with trio.fail_after(WAIT):
                whole = await conn.request("GET", "/static/big.bin")
                assert (whole.status, whole.body) == (200, big)
                etag = whole.header("etag")
                assert etag
                cached = await conn.request(
                    "GET", "/static/big.bin", headers={"if-none-match": etag}
                )
                assert (cached.status, cached.body) == (304, b"")
                part = await conn.request(
                    "GET", "/static/big.bin", headers={"range": "bytes=1000-2999"}
                )
                assert part.status == 206
                assert part.body == big[1000:3000]
                assert part.header("content-range") == f"bytes 1000-2999/{len(big)}"
                beyond = await conn.request(
                    "GET", "/static/big.bin", headers={"range": f"bytes={len(big)}-"}
                )
                assert beyond.status == 416
                head = await conn.request("HEAD", "/static/hello.txt")
                assert (head.status, head.header("content-length")) == (200, "13")
                redirect = await conn.request("GET", "/static/docs")
                assert redirect.status == 307
                assert redirect.header("location") == "/static/docs/"
                page = await conn.request("GET", "/static/docs/")
                assert (page.status, page.body) == (200, b"<h1>docs</h1>")
                missing = await conn.request("GET", "/static/nope.txt")
                assert missing.status == 404

    @pytest.mark.parametrize(
        "target",
        [
            b"/static/../secret.txt",
            b"/static/%2e%2e/secret.txt",
            b"/static/..%2fsecret.txt",
            b"/static/..%5csecret.txt",
            b"/static/..\\secret.txt",
            b"/static/hello.txt%00",
            b"/static/out.txt",
            b"/static//../secret.txt",
            b"/static/docs/%2E%2E/%2E%2E/secret.txt",
        ],
    )
    async def test_traversal_over_the_wire(self, root: Path, target: bytes) -> None:
        """Each traversal target, sent byte for byte, gets a 4xx (the server's 400 or our 404)
        and never the secret."""
        async with serve_live(make_app(root, [])) as server:
            answer = await raw_request(server.host, server.port, target)
        status = int(answer.split(b" ", 2)[1])
        assert status in (400, 404), answer[:200]
        assert SECRET not in answer
