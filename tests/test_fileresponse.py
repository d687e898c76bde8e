"""``FileResponse`` (``triobg._fileresponse``): a file from disk with its length, type, dates and
download name, streamed after the handler returns, a missing file a logged 404, over the test
client and over both real servers."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import trio
from _support import LeavingClient

from triobg import App, BackgroundTasks, FileResponse
from triobg.testing import TestClient, serve_live

BIG = bytes(range(256)) * 4096  # 1 MiB: many chunks
WAIT = 20


def make_app(root: Path, events: list[str]) -> App:
    app = App()

    @app.get("/report")
    async def report(tasks: BackgroundTasks) -> FileResponse:
        tasks.add_task(events.append, "after report")
        return FileResponse(root / "report.csv", filename="report.csv")

    @app.get("/big")
    async def big() -> FileResponse:
        return FileResponse(root / "big.bin")

    @app.get("/named")
    async def named(name: str) -> FileResponse:
        return FileResponse(root / "report.csv", filename=name, content_disposition_type="inline")

    @app.get("/typed")
    async def typed() -> FileResponse:
        return FileResponse(root / "report.csv", media_type="text/plain", headers={"x-a": "1"})

    @app.get("/gone")
    async def gone(tasks: BackgroundTasks) -> FileResponse:
        tasks.add_task(events.append, "after gone")
        return FileResponse(root / "deleted.txt")

    @app.get("/dir")
    async def directory() -> FileResponse:
        return FileResponse(root)

    @app.get("/empty")
    async def empty() -> FileResponse:
        return FileResponse(root / "empty.txt")

    return app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "report.csv").write_bytes(b"a,b\n1,2\n")
    (tmp_path / "big.bin").write_bytes(BIG)
    (tmp_path / "empty.txt").write_bytes(b"")
    return tmp_path


class TestFileResponse:
    async def test_headers_body_and_tasks_after(self, root: Path) -> None:
        """The file's bytes, its length, a guessed type, ETag and Last-Modified, the download
        name; the request's task runs after the file has been sent."""
        events: list[str] = []
        async with TestClient(make_app(root, events)) as client:
            response = await client.get("/report")
            await client.wait_background()
        assert response.status_code == 200
        assert response.content == b"a,b\n1,2\n"
        assert response.headers["content-length"] == "8"
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="report.csv"'
        stat = os.stat(root / "report.csv")
        assert response.headers["etag"] == f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        assert response.headers["last-modified"].endswith("GMT")
        assert events == ["after report"]

    async def test_big_file_whole(self, root: Path) -> None:
        """A file of many chunks arrives whole, typed as bytes when its name says nothing."""
        async with TestClient(make_app(root, [])) as client:
            response = await client.get("/big")
        assert response.content == BIG
        assert response.headers["content-type"] == "application/octet-stream"
        assert "content-disposition" not in response.headers

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("plain.csv", 'inline; filename="plain.csv"'),
            ("résumé.csv", "inline; filename*=utf-8''r%C3%A9sum%C3%A9.csv"),
            ('say "hi".csv', "inline; filename*=utf-8''say%20%22hi%22.csv"),
        ],
    )
    async def test_disposition(self, root: Path, name: str, expected: str) -> None:
        """ASCII names are quoted as they are; others (and quotes) use RFC 5987's encoding."""
        async with TestClient(make_app(root, [])) as client:
            response = await client.get("/named", params={"name": name})
        assert response.headers["content-disposition"] == expected

    async def test_media_type_and_extra_headers(self, root: Path) -> None:
        """``media_type`` wins over the guess; extra headers go out as given."""
        async with TestClient(make_app(root, [])) as client:
            response = await client.get("/typed")
        assert response.headers["content-type"] == "text/plain"
        assert response.headers["x-a"] == "1"

    async def test_head_sends_length_without_body(self, root: Path) -> None:
        """HEAD states the file's length and sends no body."""
        async with TestClient(make_app(root, [])) as client:
            response = await client.request("HEAD", "/big")
        assert response.headers["content-length"] == str(len(BIG))
        assert response.content == b""

    async def test_empty_file(self, root: Path) -> None:
        """An empty file is a 200 with ``Content-Length: 0``."""
        async with TestClient(make_app(root, [])) as client:
            response = await client.get("/empty")
        assert (response.status_code, response.content) == (200, b"")
        assert response.headers["content-length"] == "0"

    @pytest.mark.parametrize("path", ["/gone", "/dir"])
    async def test_unopenable_is_a_logged_404(
        self, root: Path, path: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A missing file or a directory is a 404 that names nothing to the client and the
        path to the log; the request's tasks still run."""
        events: list[str] = []
        with caplog.at_level(logging.ERROR, logger="triobg.error"):
            async with TestClient(make_app(root, events)) as client:
                response = await client.get(path)
                await client.wait_background()
        assert (response.status_code, response.content) == (404, b"Not Found")
        assert any("FileResponse cannot send" in r.getMessage() for r in caplog.records)
        assert str(root) in caplog.text
        assert events == (["after gone"] if path == "/gone" else [])

    async def test_client_leaving_mid_file_discards_the_tasks(
        self, root: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client gone after the first chunk stops the reads, and the request's tasks are
        discarded (and named), as for a streaming response: the client never had the file."""
        (root / "huge.bin").write_bytes(b"x" * (64 * 1024 * 50))
        events: list[str] = []
        app = App()

        @app.get("/huge")
        async def huge(tasks: BackgroundTasks) -> FileResponse:
            tasks.add_task(events.append, "after huge")
            return FileResponse(root / "huge.bin")

        client = LeavingClient()

        scope = {
            "type": "http", "method": "GET", "path": "/huge", "raw_path": b"/huge",
            "root_path": "", "headers": [], "query_string": b"", "http_version": "1.1",
            "scheme": "http",
        }  # fmt: skip
        with caplog.at_level(logging.INFO, logger="triobg"), trio.fail_after(WAIT):
            await app(scope, client.receive, client.send)
        assert 1 <= len(client.bodies) < 50
        assert events == []
        assert "list.append of GET /huge discarded" in caplog.text

    def test_bad_disposition_type(self, root: Path) -> None:
        """Only ``attachment`` and ``inline`` are dispositions."""
        with pytest.raises(ValueError, match="attachment"):
            FileResponse(root / "report.csv", filename="a", content_disposition_type="download")


@pytest.mark.e2e
@pytest.mark.usefixtures("either_server")
class TestFileResponseLive:
    async def test_over_the_wire(self, root: Path) -> None:
        """A 1 MiB file, a small one and a missing one on one kept-alive connection."""
        events: list[str] = []
        async with serve_live(make_app(root, events)) as server, await server.connect() as conn:
            with trio.fail_after(WAIT):
                big = await conn.request("GET", "/big")
                assert (big.status, big.body) == (200, BIG)
                report = await conn.request("GET", "/report")
                assert (report.status, report.body) == (200, b"a,b\n1,2\n")
                gone = await conn.request("GET", "/gone")
                assert gone.status == 404
