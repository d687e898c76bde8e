"""Uploads end to end: a large multipart file, sent chunked over a real socket to hypercorn and
to triobg's native server, while another connection's ``/ping`` keeps being answered.

20 MB by default (CI); ``TRIOBG_E2E_UPLOAD_MB=200`` for the size the issue names. The upload is
``examples/upload.py``'s: the report its background task writes proves the server got every
byte, and the suite's upload-directory check proves the temporary file was deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trio

from examples import upload
from triobg import App, UploadFile, UploadLimits
from triobg.testing import serve_live

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("either_server")]

MEGABYTES = int(os.environ.get("TRIOBG_E2E_UPLOAD_MB", "20"))
CHUNK = 64 * 1024
BOUNDARY = "e2e-b0undary"


async def multipart_stream(
    size: int, digest: hashlib._Hash, halfway: Callable[[], Awaitable[None]] | None = None
) -> AsyncIterator[bytes]:
    """A multipart body with one ``size``-byte file, produced as it is sent; ``halfway`` is
    awaited when half the file has been sent."""
    yield (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="note"\r\n\r\nbig\r\n'
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    block = bytes(range(256)) * (CHUNK // 256)
    sent = 0
    while sent < size:
        piece = block[: min(CHUNK, size - sent)]
        digest.update(piece)
        sent += len(piece)
        yield piece
        if halfway is not None and sent >= size // 2:
            await halfway()
            halfway = None
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_large_chunked_upload_while_ping_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole file arrives and is processed after the 202; /ping answers all along."""
    monkeypatch.chdir(tmp_path)  # the example writes its report to the working directory
    size = MEGABYTES * 1024 * 1024
    digest = hashlib.sha256()
    pings: list[float] = []
    uploaded = trio.Event()
    half_sent = trio.Event()  # half the file is out: the server is mid-upload
    answered_meanwhile = trio.Event()  # a /ping was answered after that

    async def at_half() -> None:
        half_sent.set()
        await answered_meanwhile.wait()  # the upload resumes once the other client got its pong

    with trio.fail_after(60 + MEGABYTES):
        async with serve_live(upload.app) as server:

            async def ping_meanwhile() -> None:
                # Paced (a ping every 10 ms), and a new connection every 200 pings, as
                # hypercorn closes a connection after ``keep_alive_max_requests`` (1000).
                while not uploaded.is_set():
                    async with await server.connect() as conn:
                        for _ in range(200):
                            if uploaded.is_set():
                                break
                            start = trio.current_time()
                            answer = await conn.request("GET", "/ping")
                            assert answer.status == 200
                            pings.append(trio.current_time() - start)
                            if half_sent.is_set():
                                answered_meanwhile.set()
                            await trio.sleep(0.01)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ping_meanwhile)
                async with await server.connect(timeout=30) as conn:
                    response = await conn.request(
                        "POST",
                        "/uploads",
                        headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                        body=multipart_stream(size, digest, at_half),
                    )
                uploaded.set()
            assert response.status == 202, response
            upload_id = response.json()["id"]
        # Leaving ``serve_live`` waited for the background task: the report is written.
    report = json.loads((tmp_path / f"upload-{upload_id}.json").read_text())
    assert report["bytes"] == size
    assert report["sha256"] == digest.hexdigest()
    assert report["note"] == "big"
    assert answered_meanwhile.is_set()  # answered while the upload was half way through


async def test_upload_over_the_limit_is_413_and_leaves_no_file() -> None:
    """A chunked upload past ``max_file_size`` is a 413 mid-stream, and its file is deleted."""
    app = App(upload_limits=UploadLimits(max_file_size=1024 * 1024))

    @app.post("/up")
    async def up(file: UploadFile) -> int:
        return file.size

    digest = hashlib.sha256()
    with trio.fail_after(30):
        async with serve_live(app) as server, await server.connect() as conn:
            response = await conn.request(
                "POST",
                "/up",
                headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                body=multipart_stream(4 * 1024 * 1024, digest),
            )
    assert response.status == 413
    assert "too large" in response.json()["detail"]
