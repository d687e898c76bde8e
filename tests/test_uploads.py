"""Uploads and forms in-process: markers, conversion, ``UploadFile``, limits, clean-up, lifetime."""

from __future__ import annotations

import enum
import errno
import os
from pathlib import Path
from typing import Annotated, Any

import pytest
import trio
import trio.testing
from _postgres import shared_server
from _support import call_asgi

from triobg import (
    App,
    BackgroundTasks,
    Body,
    File,
    Form,
    FormData,
    Request,
    SQLiteTaskStore,
    TaskStatus,
    UploadFile,
    UploadLimits,
    WebSocket,
)
from triobg._durable._files import FILES_ENV, sweep
from triobg._durable._postgres import PostgresTaskStore
from triobg._durable._store import TaskStore
from triobg.testing import TestClient
from triobg.testing._forms import encode_multipart

WAIT = 10.0


def upload_dir() -> Path:
    return Path(UploadLimits().upload_dir())


def leftovers() -> list[str]:
    return sorted(os.listdir(upload_dir()))


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def form_app(**app_kwargs: Any) -> App:
    app = App(**app_kwargs)

    @app.post("/profile")
    async def profile(
        username: Annotated[str, Form(min_length=2)],
        age: int = Form(ge=0),
        admin: bool = Form(False),
        color: Color = Form(Color.RED),
        tags: list[int] = Form([]),
        nick: str = Form("", alias="nick-name"),
    ) -> dict[str, Any]:
        return {
            "username": username,
            "age": age,
            "admin": admin,
            "color": color.value,
            "tags": tags,
            "nick": nick,
        }

    @app.post("/files")
    async def files(
        file: UploadFile,
        more: list[UploadFile] = File([]),
        maybe: Annotated[UploadFile | None, File(description="optional")] = None,
        note: str = Form(""),
    ) -> dict[str, Any]:
        data = await file.read()
        return {
            "filename": file.filename,
            "content_type": file.content_type,
            "size": file.size,
            "read": len(data),
            "head": data[:10].decode("latin-1"),
            "more": [(m.filename, m.size) for m in more],
            "maybe": None if maybe is None else maybe.filename,
            "note": note,
            "on_disk": file.path is not None and file.path.exists(),
        }

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        form = await request.form()
        out: dict[str, Any] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                out.setdefault(name, []).append(
                    {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "content": (await value.read()).decode("latin-1"),
                    }
                )
            else:
                out.setdefault(name, []).append(value)
        return out

    return app


class TestFormFields:
    async def test_fields_are_converted_like_query_parameters(self) -> None:
        """Form fields take ints, bools, enums, lists and aliases as query parameters do."""
        async with TestClient(form_app()) as client:
            data: dict[str, Any] = {
                "username": "ann",
                "age": "42",
                "admin": "true",
                "color": "blue",
            }
            data |= {"tags": ["1", "2"], "nick-name": "a"}
            response = await client.post("/profile", data=data)
        assert response.status_code == 200
        assert response.json() == {
            "username": "ann",
            "age": 42,
            "admin": True,
            "color": "blue",
            "tags": [1, 2],
            "nick": "a",
        }

    async def test_multipart_fields_are_read_the_same(self) -> None:
        """The same fields sent as multipart give the same values."""
        async with TestClient(form_app()) as client:
            response = await client.post(
                "/profile", data={"username": "ann", "age": "1"}, files={"x": ("x", b"")}
            )
        assert response.json()["age"] == 1

    async def test_every_error_is_listed_with_its_location(self) -> None:
        """Missing, unconvertible and out-of-bounds fields are all reported at ["body", name]."""
        async with TestClient(form_app()) as client:
            response = await client.post(
                "/profile", data={"username": "a", "age": "-1", "color": "green", "tags": "x"}
            )
        assert response.status_code == 422
        locations = [tuple(error["loc"]) for error in response.json()["detail"]]
        assert locations == [
            ("body", "username"),
            ("body", "age"),
            ("body", "color"),
            ("body", "tags"),
        ]

    async def test_form_constraints_report_as_query_ones_do(self) -> None:
        """``Form(pattern=...)`` is checked like a query parameter's: the same error type,
        every failing item of a list located by its index, the pattern in the schema."""
        app = App()

        @app.post("/codes")
        async def codes(
            code: str = Form(pattern="^[A-Z]{3}$"),
            more: list[str] = Form([], pattern="^[a-z]+$"),
        ) -> str:
            return code

        async with TestClient(app) as client:
            bad = await client.post("/codes", data={"code": "abcd", "more": ["ok", "NO", "x1"]})
            good = await client.post("/codes", data={"code": "ABC", "more": ["fine"]})
        assert good.json() == "ABC"
        assert bad.status_code == 422
        errors = [(tuple(e["loc"]), e["type"]) for e in bad.json()["detail"]]
        assert errors == [
            (("body", "code"), "string_pattern_mismatch"),
            (("body", "more", 1), "string_pattern_mismatch"),
            (("body", "more", 2), "string_pattern_mismatch"),
        ]
        body = app.openapi()["paths"]["/codes"]["post"]["requestBody"]["content"]
        properties = body["application/x-www-form-urlencoded"]["schema"]["properties"]
        assert properties["code"]["pattern"] == "^[A-Z]{3}$"

    async def test_empty_value_counts_as_absent(self) -> None:
        """An empty input (what browsers send) is a missing field, or its default."""
        async with TestClient(form_app()) as client:
            response = await client.post("/profile", data={"username": "ann", "age": ""})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "age"]

    async def test_a_repeated_scalar_field_is_a_422(self) -> None:
        """A name sent twice for a non-list parameter is refused, not "last one wins"."""
        async with TestClient(form_app()) as client:
            response = await client.post("/profile", data={"username": ["ann", "bob"], "age": 1})
        assert response.status_code == 422
        assert response.json()["detail"] == [
            {
                "loc": ["body", "username"],
                "msg": "expected one value, got 2 values",
                "type": "too_many_values",
            }
        ]

    async def test_no_body_lists_the_required_fields(self) -> None:
        """A request without a body gets a 422 naming each required field."""
        async with TestClient(form_app()) as client:
            response = await client.post("/profile")
        assert response.status_code == 422
        assert [e["loc"][1] for e in response.json()["detail"]] == ["username", "age"]

    async def test_json_body_is_refused_with_415(self) -> None:
        """A JSON body sent to a form route is a 415 that names both form encodings."""
        async with TestClient(form_app()) as client:
            response = await client.post("/profile", json={"username": "ann"})
        assert response.status_code == 415
        assert "multipart/form-data" in response.json()["detail"]

    async def test_request_form_is_a_multi_dict(self) -> None:
        """``await request.form()`` keeps every value in order."""
        async with TestClient(form_app()) as client:
            response = await client.post("/echo", data={"a": ["1", "2"], "b": "é ü"})
        assert response.json() == {"a": ["1", "2"], "b": ["é ü"]}

    def test_form_and_json_body_together_are_refused_at_declaration(self) -> None:
        """A handler that reads a JSON body and form fields is a declaration error."""
        app = App()
        with pytest.raises(TypeError, match="one body"):

            @app.post("/mixed")
            async def mixed(name: str = Form(), item: dict[str, Any] = Body()) -> None:
                pass

    def test_file_marker_needs_an_upload_annotation(self) -> None:
        """``File()`` on an ``int`` is a declaration error that says what it needs."""
        app = App()
        with pytest.raises(TypeError, match="UploadFile"):

            @app.post("/bad")
            async def bad(count: int = File()) -> None:
                pass

    async def test_bytes_file_parameters(self) -> None:
        """``file: bytes = File()`` (and ``list[bytes]``, optional) is the whole content, as in
        FastAPI; a missing required one is a located 422; the schema says binary."""
        app = App()

        @app.post("/digest")
        async def digest(
            file: bytes = File(),
            more: Annotated[list[bytes], File()] = [],  # noqa: B006
            maybe: bytes | None = File(None),
            upload: UploadFile | None = None,
        ) -> dict[str, Any]:
            return {
                "file": file.decode(),
                "more": [m.decode() for m in more],
                "maybe": maybe,
                "upload": None if upload is None else (await upload.read()).decode(),
            }

        async with TestClient(app) as client:
            response = await client.post(
                "/digest",
                files=[
                    ("file", ("a.txt", b"first")),
                    ("more", ("b.txt", b"second")),
                    ("more", ("c.txt", b"third")),
                    ("upload", ("d.txt", b"streamed")),
                ],
            )
            missing = await client.post("/digest", files={"more": ("b.txt", b"x")})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "file": "first", "more": ["second", "third"], "maybe": None, "upload": "streamed"
        }  # fmt: skip
        assert missing.status_code == 422
        assert missing.json()["detail"][0]["loc"] == ["body", "file"]
        schema = app.openapi()["paths"]["/digest"]["post"]["requestBody"]["content"]
        properties = schema["multipart/form-data"]["schema"]["properties"]
        assert properties["file"] == {"type": "string", "format": "binary"}
        assert properties["more"]["items"] == {"type": "string", "format": "binary"}

    async def test_bytes_file_is_bounded_by_the_file_limit(self) -> None:
        """A ``bytes`` file over ``max_file_size`` is a 413 before anything is held in memory."""
        app = App(upload_limits=UploadLimits(max_file_size=10))

        @app.post("/small")
        async def small(file: bytes = File()) -> int:
            return len(file)

        async with TestClient(app) as client:
            fits = await client.post("/small", files={"file": ("a", b"0123456789")})
            over = await client.post("/small", files={"file": ("a", b"0123456789X")})
        assert (fits.status_code, fits.json()) == (200, 10)
        assert over.status_code == 413

    def test_websocket_route_refuses_form_and_file_parameters(self) -> None:
        """A WebSocket handshake has no body: ``Form``/``File`` there fail at declaration."""
        app = App()
        with pytest.raises(TypeError, match="name, photo would be read from a request body"):

            @app.websocket("/ws")
            async def ws(
                websocket: WebSocket, name: str = Form(), photo: UploadFile = File()
            ) -> None:
                pass


class TestFiles:
    async def test_file_with_fields_and_several_files(self) -> None:
        """A file, a list of files and a field arrive with their names, types and sizes."""
        big = os.urandom(700_000)  # several flushes of 256 KiB
        files = [
            ("file", ("photo.jpg", big, "image/jpeg")),
            ("more", ("a.txt", b"aaa", "text/plain")),
            ("more", ("b.txt", b"", "text/plain")),
        ]
        async with TestClient(form_app()) as client:
            response = await client.post("/files", data={"note": "hi"}, files=files)
        assert response.status_code == 200
        assert response.json() == {
            "filename": "photo.jpg",
            "content_type": "image/jpeg",
            "size": len(big),
            "read": len(big),
            "head": big[:10].decode("latin-1"),
            "more": [["a.txt", 3], ["b.txt", 0]],
            "maybe": None,
            "note": "hi",
            "on_disk": True,
        }
        assert leftovers() == []

    async def test_missing_file_is_a_located_422(self) -> None:
        """A required file that was not sent is reported at ["body", "file"]."""
        async with TestClient(form_app()) as client:
            response = await client.post("/files", data={"note": "x"}, files={})
        assert response.status_code == 422
        assert response.json()["detail"] == [
            {"loc": ["body", "file"], "msg": "field required", "type": "missing"}
        ]

    async def test_plain_field_where_a_file_is_expected(self) -> None:
        """A plain field under a file's name is a 422, not a crash."""
        async with TestClient(form_app()) as client:
            response = await client.post("/files", data={"file": "text"}, files={})
        assert response.status_code == 422
        assert response.json()["detail"][0]["msg"] == "expected a file, got a plain field"

    async def test_empty_file_input_is_no_file(self) -> None:
        """A file input left empty (no name, no bytes) leaves an optional file at None."""
        files = [("file", ("f", b"x")), ("maybe", ("", b"", "application/octet-stream"))]
        async with TestClient(form_app()) as client:
            response = await client.post("/files", files=files)
        assert response.json()["maybe"] is None

    async def test_upload_file_api(self) -> None:
        """read, seek, write, close and the attributes behave like a file's."""
        seen: dict[str, Any] = {}
        app = App()

        @app.post("/api")
        async def api(file: UploadFile) -> None:
            seen["first"] = await file.read(3)
            seen["rest"] = await file.read()
            assert await file.seek(0) == 0
            seen["again"] = await file.read()
            await file.seek(0, os.SEEK_END)
            await file.write(b"!")
            seen["size"] = file.size
            seen["headers"] = dict(file.headers.items())
            seen["repr"] = repr(file)
            path = file.path
            await file.close()
            seen["deleted"] = path is not None and not path.exists()
            with pytest.raises(ValueError, match="closed"):
                await file.read()

        async with TestClient(app) as client:
            await client.post("/api", files={"file": ("n.bin", b"abcdef", "x/y", {"X-Extra": "1"})})
        assert seen["first"] == b"abc"
        assert seen["rest"] == b"def"
        assert seen["again"] == b"abcdef"
        assert seen["size"] == 7
        assert seen["headers"]["x-extra"] == "1"
        assert seen["headers"]["content-type"] == "x/y"
        assert "n.bin" in seen["repr"]
        assert seen["deleted"]

    async def test_move_to_keeps_the_file(self, tmp_path: Path) -> None:
        """``move_to`` renames the file out of the upload directory; the request keeps it."""
        app = App()

        @app.post("/keep")
        async def keep(file: UploadFile) -> str:
            target = await file.move_to(tmp_path / "kept.bin")
            assert await file.read() == b"payload"  # still open, at its new place
            return str(target)

        async with TestClient(app) as client:
            response = await client.post("/keep", files={"file": ("k", b"payload")})
        assert (tmp_path / "kept.bin").read_bytes() == b"payload"
        assert response.json() == str(tmp_path / "kept.bin")

    async def test_move_to_copies_across_file_systems(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When a rename cannot cross file systems (EXDEV), the bytes are copied instead."""

        def no_rename(source: Any, target: Any) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "replace", no_rename)
        app = App()

        @app.post("/keep")
        async def keep(file: UploadFile) -> None:
            await file.read(2)
            await file.move_to(tmp_path / "copied.bin")
            assert await file.read() == b"yload"  # same position, in the copy

        async with TestClient(app) as client:
            response = await client.post("/keep", files={"file": ("k", b"payload")})
        assert response.status_code == 200
        assert (tmp_path / "copied.bin").read_bytes() == b"payload"
        assert leftovers() == []

    async def test_form_data_close_deletes_now(self) -> None:
        """``FormData.close()`` deletes the files before the request ends."""
        app = App()

        @app.post("/close")
        async def close(request: Request) -> bool:
            form: FormData = await request.form()
            path = form["f"].path  # type: ignore[union-attr]
            await form.close()
            return path is not None and not path.exists()

        async with TestClient(app) as client:
            response = await client.post("/close", files={"f": ("a", b"1")})
        assert response.json() is True


class TestLifetime:
    async def test_background_task_reads_the_upload_after_the_response(self) -> None:
        """A task started after the response reads the whole file; then it is deleted."""
        app = App()
        release = trio.Event()
        got: dict[str, Any] = {}

        async def process(file: UploadFile) -> None:
            await release.wait()  # the response is out and the handler long gone
            got["data"] = await file.read()
            got["path"] = file.path

        @app.post("/process")
        async def start(file: UploadFile, tasks: BackgroundTasks) -> dict[str, str]:
            tasks.add_task(process, file)
            return {"status": "accepted"}

        payload = os.urandom(300_000)
        async with TestClient(app) as client:
            with trio.fail_after(WAIT):
                response = await client.post("/process", files={"file": ("p", payload)})
                assert response.status_code == 200
                assert len(leftovers()) == 1  # still on disk for the task
                release.set()
                await client.wait_background()
        assert got["data"] == payload
        assert not got["path"].exists()
        assert leftovers() == []

    async def test_sync_task_reads_through_file(self) -> None:
        """A ``def`` task (in a thread) reads the upload with plain blocking calls."""
        app = App()
        got: list[bytes] = []

        def process(file: UploadFile) -> None:
            got.append(file.file.read())

        @app.post("/process")
        async def start(file: UploadFile, tasks: BackgroundTasks) -> None:
            tasks.add_task(process, file)

        async with TestClient(app) as client:
            await client.post("/process", files={"file": ("p", b"sync bytes")})
            await client.wait_background()
        assert got == [b"sync bytes"]

    async def test_failed_request_deletes_its_files(self) -> None:
        """A handler that raises leaves no file behind."""
        app = App()

        @app.post("/fail")
        async def fail(file: UploadFile) -> None:
            raise RuntimeError("boom")

        async with TestClient(app) as client:
            response = await client.post("/fail", files={"file": ("p", b"x" * 1000)})
        assert response.status_code == 500
        assert leftovers() == []


def multipart_body(boundary: str = "b0undary") -> bytes:
    return encode_multipart({"note": "n"}, {"file": ("f.bin", b"z" * 5000)}, boundary)


def headers_for(body: bytes, boundary: str = "b0undary") -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]


class TestLimits:
    @pytest.mark.parametrize(
        ("limits", "status", "words"),
        [
            (UploadLimits(max_file_size=4000), 413, "file 'f.bin' (field 'file') too large"),
            (UploadLimits(max_files=0), 413, "too many files"),
            (UploadLimits(max_fields=0), 413, "too many form fields"),
            (UploadLimits(max_field_size=0), 413, "form field 'note' too large"),
            (UploadLimits(max_part_headers=1), 413, "header count"),
            (UploadLimits(max_part_header_size=20), 413, "header length"),
            (UploadLimits(max_body_size=1000), 413, "request body too large"),
        ],
    )
    async def test_each_limit_is_a_clear_error_and_leaves_no_file(
        self, limits: UploadLimits, status: int, words: str
    ) -> None:
        """Each breached limit answers its status and says which limit; no file remains."""
        app = form_app(upload_limits=limits)
        body = multipart_body()
        chunks = [body[i : i + 700] for i in range(0, len(body), 700)]
        answer = await call_asgi(app, "POST", "/echo", headers=headers_for(body), body=chunks)
        assert answer.status == status
        assert words in answer.json()["detail"]
        assert leftovers() == []

    async def test_route_limits_override_the_apps(self) -> None:
        """``upload_limits=`` on a route replaces the app's for that route only."""
        app = App(upload_limits=UploadLimits(max_file_size=10))

        @app.post("/big", upload_limits=UploadLimits(max_file_size=10_000))
        async def big(file: UploadFile) -> int:
            return file.size

        @app.post("/small")
        async def small(file: UploadFile) -> int:
            return file.size

        async with TestClient(app) as client:
            assert (await client.post("/big", files={"file": ("a", b"x" * 5000)})).json() == 5000
            small_answer = await client.post("/small", files={"file": ("a", b"x" * 5000)})
        assert small_answer.status_code == 413

    async def test_declared_length_over_the_limit_is_refused_unread(self) -> None:
        """A Content-Length over ``max_body_size`` is a 413 before any body is read."""
        app = form_app(upload_limits=UploadLimits(max_body_size=100))
        asked = 0

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if sent:  # the response has started: the server's own reads (ignored here)
                return {"type": "http.disconnect"}
            asked += 1
            return {"type": "http.request", "body": b"", "more_body": True}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "path": "/echo",
            "raw_path": b"/echo",
            "query_string": b"",
            "headers": [
                (b"content-type", b"multipart/form-data; boundary=x"),
                (b"content-length", b"1000000"),
            ],
        }
        with trio.fail_after(WAIT):
            await app(scope, receive, send)
        assert sent[0]["status"] == 413
        assert asked == 0

    async def test_urlencoded_limits(self) -> None:
        """urlencoded forms have field count and field size limits too, the size in bytes as
        for multipart fields."""
        app = form_app(upload_limits=UploadLimits(max_fields=2, max_field_size=5))
        async with TestClient(app) as client:
            many = await client.post("/echo", data={"a": "1", "b": "2", "c": "3"})
            long = await client.post("/echo", data={"a": "123456"})
            wide = await client.post("/echo", data={"a": "ééé"})  # 3 characters, 6 bytes
            fits = await client.post("/echo", data={"a": "éé"})  # 4 bytes
        assert (many.status_code, long.status_code, wide.status_code) == (413, 413, 413)
        assert fits.status_code == 200
        assert "too many form fields" in many.json()["detail"]
        assert "'a' too large" in long.json()["detail"]

    async def test_slow_body_is_408_and_its_file_deleted(self) -> None:
        """A body trickling in under ``min_body_rate`` is a 408; its partial file is deleted.

        Real time (0.4 s), not a MockClock: the file is made in a worker thread, and an
        autojump clock jumps past every deadline while the thread runs.
        """
        app = form_app(min_body_rate=1000, body_grace=0.1)
        body = multipart_body()
        chunks = [body[:300]]  # the field and the start of the file

        async def receive() -> dict[str, Any]:
            if chunks:
                return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
            await trio.sleep_forever()
            raise AssertionError

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "path": "/echo",
            "raw_path": b"/echo",
            "query_string": b"",
            "headers": headers_for(body),
        }
        with trio.fail_after(WAIT):
            await app(scope, receive, send)
        assert sent[0]["status"] == 408
        assert leftovers() == []


class TestCleanUp:
    def scope(self, body: bytes) -> dict[str, Any]:
        return {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "path": "/files",
            "raw_path": b"/files",
            "query_string": b"",
            "headers": headers_for(body),
        }

    async def test_client_disconnect_mid_upload_deletes_the_partial_file(self) -> None:
        """The client leaving halfway through a file: no response, no task, no file."""
        app = form_app()
        body = encode_multipart(None, {"file": ("f", b"q" * 600_000)}, "b0undary")
        chunks = [body[:400_000]]

        async def receive() -> dict[str, Any]:
            if chunks:
                return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
            assert len(leftovers()) == 1  # the partial file exists at this point
            return {"type": "http.disconnect"}

        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        with trio.fail_after(WAIT):
            await app(self.scope(body), receive, send)
        assert sent == []
        assert leftovers() == []

    async def test_cancelled_request_deletes_the_partial_file(self) -> None:
        """A request cancelled while its upload streams in leaves no file behind."""
        app = form_app()
        body = encode_multipart(None, {"file": ("f", b"q" * 600_000)}, "b0undary")
        chunks = [body[:400_000]]
        waiting = trio.Event()

        async def receive() -> dict[str, Any]:
            if chunks:
                return {"type": "http.request", "body": chunks.pop(0), "more_body": True}
            waiting.set()
            await trio.sleep_forever()
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            raise AssertionError("no response expected")

        with trio.fail_after(WAIT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(app, self.scope(body), receive, send)
                await waiting.wait()
                assert len(leftovers()) == 1
                nursery.cancel_scope.cancel()
        assert leftovers() == []


class TestOpenAPI:
    def test_forms_and_files_are_documented_as_request_bodies(self) -> None:
        """Fields alone are an urlencoded body; with files, multipart with binary strings."""
        document = form_app().openapi()
        profile = document["paths"]["/profile"]["post"]
        files = document["paths"]["/files"]["post"]
        assert "parameters" not in profile and "parameters" not in files
        form = profile["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
        assert form["required"] == ["username", "age"]
        assert form["properties"]["age"] == {"type": "integer", "minimum": 0}
        assert form["properties"]["tags"]["type"] == "array"
        assert "nick-name" in form["properties"]
        upload = files["requestBody"]["content"]["multipart/form-data"]["schema"]
        binary = {"type": "string", "format": "binary"}
        assert upload["properties"]["file"] == binary
        assert upload["properties"]["more"] == {"type": "array", "items": binary}
        assert upload["properties"]["maybe"] == {**binary, "description": "optional"}
        assert upload["required"] == ["file"]

    def test_form_routes_document_their_400_and_413(self) -> None:
        """A malformed form (400) and one over the limits (413) are answers the document
        allows, with the ``detail`` body they carry; routes without a form do not list them."""
        document = form_app().openapi()
        for path in ("/profile", "/files"):
            responses = document["paths"][path]["post"]["responses"]
            for status in ("400", "413"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema["required"] == ["detail"]
        plain = App()

        @plain.post("/items")
        async def items(count: int) -> int:
            return count

        assert set(plain.openapi()["paths"]["/items"]["post"]["responses"]) == {"200", "422"}


class TestDurableHandover:
    """An ``UploadFile`` passed to a durable task lives in the store's file area with its task."""

    def durable_app(self, store: Path | TaskStore, got: list[Any], *, fail: bool = False) -> App:
        app = App(task_store=SQLiteTaskStore(store) if isinstance(store, Path) else store)

        @app.task(retries=1)
        async def ingest(file: UploadFile, label: str) -> int:
            got.append((label, file.filename, file.content_type, await file.read(), file.path))
            if fail:
                raise RuntimeError("always fails")
            return file.size

        @app.post("/ingest")
        async def start(file: UploadFile, tasks: BackgroundTasks) -> dict[str, Any]:
            result = tasks.add_task(ingest, file, label="x")
            assert result is not None  # a durable task's add_task returns its TaskResult
            return {"id": result.id}

        return app

    async def wait_for(self, app: App, task_id: str, status: TaskStatus) -> None:
        """Poll the store (bounded) until the task has ``status``: a state, not an event."""
        with trio.fail_after(WAIT):
            while (await app.tasks.get(task_id)).status is not status:  # noqa: ASYNC110
                await trio.sleep(0.005)

    async def test_moved_before_commit_read_by_the_task_then_deleted(self, tmp_path: Path) -> None:
        """The file is in the area (not the upload dir) once stored; the task reads it; gone."""
        got: list[Any] = []
        app = self.durable_app(tmp_path / "t.sqlite3", got)
        area = tmp_path / "t.sqlite3.files"
        async with TestClient(app) as client:
            response = await client.post("/ingest", files={"file": ("a.csv", b"1,2\n", "text/csv")})
            task_id = response.json()["id"]
            await self.wait_for(app, task_id, TaskStatus.SUCCEEDED)
            assert (await app.tasks.get(task_id)).return_value == 4
        assert got == [("x", "a.csv", "text/csv", b"1,2\n", area / f"{task_id}-0")]
        assert list(area.iterdir()) == []
        assert leftovers() == []

    @pytest.mark.parametrize("kind", ["sqlite", "postgres"])
    async def test_survives_a_crash_with_its_task(
        self, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Stored by one app whose worker never ran; a new app on the same store runs it."""
        got: list[Any] = []
        if kind == "sqlite":
            area = tmp_path / "t.sqlite3.files"  # next to the database file

            def store() -> Path | TaskStore:
                return tmp_path / "t.sqlite3"
        else:
            area = tmp_path / "shared-area"  # workers on several machines share it
            monkeypatch.setenv(FILES_ENV, str(area))
            url = shared_server().new_database()

            def store() -> Path | TaskStore:
                return PostgresTaskStore(url)

        first = self.durable_app(store(), got)
        first.tasks.run_worker = False  # the process "dies" before any worker takes the task
        async with TestClient(first) as client:
            response = await client.post("/ingest", files={"file": ("b.bin", b"payload")})
            task_id = response.json()["id"]
        assert leftovers() == []  # the request's own copy is gone: the area holds the file
        assert [p.name for p in area.iterdir()] == [f"{task_id}-0"]
        second = self.durable_app(store(), got)
        async with TestClient(second):
            await self.wait_for(second, task_id, TaskStatus.SUCCEEDED)
        assert got[0][:4] == ("x", "b.bin", "application/octet-stream", b"payload")
        assert list(area.iterdir()) == []

    async def test_kept_for_the_retry_then_deleted_when_it_fails_for_good(
        self, tmp_path: Path
    ) -> None:
        """A retry reads the same file again; after the last attempt fails, it is deleted."""
        got: list[Any] = []
        app = self.durable_app(tmp_path / "t.sqlite3", got, fail=True)
        app.tasks.run_worker = False  # our own worker below, with a retry delay of 1 ms
        async with TestClient(app, raise_task_errors=False) as client:
            response = await client.post("/ingest", files={"file": ("c", b"again")})
            task_id = response.json()["id"]
            worker = app.tasks.make_worker(backoff_base=0.001, backoff_cap=0.001)
            async with trio.open_nursery() as nursery:
                await nursery.start(worker.run)
                await self.wait_for(app, task_id, TaskStatus.FAILED)
                await worker.stop()
        assert [entry[3] for entry in got] == [b"again", b"again"]
        assert list((tmp_path / "t.sqlite3.files").iterdir()) == []

    async def test_orphans_are_swept_when_their_task_is_not_stored(self, tmp_path: Path) -> None:
        """A file whose task never reached the store (the request failed) is swept."""
        area = tmp_path / "area"
        area.mkdir()
        (area / "deadbeef-0").write_bytes(b"orphan")
        (area / "cafe-0").write_bytes(b"kept")

        async def exists(task_id: str) -> bool:
            return task_id == "cafe"

        assert await sweep(area, exists, min_age=0) == 1
        assert [p.name for p in area.iterdir()] == ["cafe-0"]

    async def test_an_upload_inside_a_list_is_refused_naming_it(self, tmp_path: Path) -> None:
        """Only direct arguments are handed over; one nested in a list is a clear TypeError."""
        app = App(task_store=SQLiteTaskStore(tmp_path / "t.sqlite3"))
        app.tasks.run_worker = False
        failures: list[str] = []

        @app.task()
        async def many(files: list[UploadFile]) -> None:
            pass

        @app.post("/many")
        async def start(files: list[UploadFile], tasks: BackgroundTasks) -> None:
            try:
                tasks.add_task(many, files)
            except TypeError as error:
                failures.append(str(error))

        async with TestClient(app) as client:
            await client.post("/many", files={"files": ("a", b"1")})
        assert len(failures) == 1
        assert "argument 'files'" in failures[0]
        assert "only as a direct argument" in failures[0]
