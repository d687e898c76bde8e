"""Multipart parsing, fed as bytes: edge cases of the format, and random bodies (hypothesis)
that must never give a 5xx, a hang or a leftover file."""

from __future__ import annotations

import os
from typing import Any

import pytest
from _support import Answer, call_asgi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triobg import App, File, Form, Request, UploadFile, UploadLimits
from triobg._forms import parse_content_type
from triobg.testing._forms import encode_multipart


def make_app() -> App:
    app = App(upload_limits=UploadLimits(max_file_size=64 * 1024, max_body_size=256 * 1024))

    @app.post("/echo")
    async def echo(request: Request) -> list[Any]:
        form = await request.form()
        out: list[Any] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                out.append([name, value.filename, value.content_type, data.decode("latin-1")])
            else:
                out.append([name, value])
        return out

    @app.post("/typed")
    async def typed(
        count: int = Form(), file: UploadFile | None = File(None), tags: list[str] = Form([])
    ) -> int:
        return count

    return app


APP = make_app()


async def post(body: bytes | list[bytes], content_type: str, path: str = "/echo") -> Answer:
    raw = body if isinstance(body, bytes) else b"".join(body)
    headers = [(b"content-type", content_type.encode("latin-1"))]
    headers.append((b"content-length", str(len(raw)).encode()))
    return await call_asgi(APP, "POST", path, headers=headers, body=body)


def part(name: str, value: bytes, *extra: str, filename: str | None = None) -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = "\r\n".join([disposition, *extra])
    return head.encode("utf-8") + b"\r\n\r\n" + value


def body_of(boundary: bytes, *parts: bytes, preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = preamble
    for item in parts:
        out += b"--" + boundary + b"\r\n" + item + b"\r\n"
    return out + b"--" + boundary + b"--\r\n" + epilogue


class TestFormat:
    async def test_quoted_boundary_with_spaces(self) -> None:
        """A quoted boundary (with a space and a colon in it) is unquoted and used."""
        boundary = b"a b:c"
        body = body_of(boundary, part("x", b"1"))
        answer = await post(body, 'multipart/form-data; charset=utf-8; boundary="a b:c"')
        assert (answer.status, answer.json()) == (200, [["x", "1"]])

    async def test_boundary_split_across_every_byte(self) -> None:
        """Fed one byte per message, the body parses the same (no boundary is missed)."""
        body = body_of(b"xyz", part("a", b"12\r\n--xy"), part("f", b"data", filename="f.txt"))
        answer = await post([body[i : i + 1] for i in range(len(body))], "multipart/form-data;"
                            " boundary=xyz")  # fmt: skip
        assert answer.json() == [["a", "12\r\n--xy"], ["f", "f.txt", None, "data"]]

    async def test_preamble_and_epilogue_are_ignored(self) -> None:
        """Text before the first boundary and after the last one is not a part."""
        body = body_of(
            b"B", part("a", b"1"), preamble=b"This is a preamble\r\n", epilogue=b"trailing junk"
        )
        answer = await post(body, "multipart/form-data; boundary=B")
        assert answer.json() == [["a", "1"]]

    async def test_empty_parts(self) -> None:
        """An empty field and an empty file are kept as empty values."""
        body = body_of(b"B", part("a", b""), part("f", b"", filename="empty.txt"))
        answer = await post(body, "multipart/form-data; boundary=B")
        assert answer.json() == [["a", ""], ["f", "empty.txt", None, ""]]

    async def test_no_parts_at_all(self) -> None:
        """A body that is only the closing boundary is an empty form."""
        answer = await post(b"--B--\r\n", "multipart/form-data; boundary=B")
        assert (answer.status, answer.json()) == (200, [])

    async def test_escaped_crlf_and_quote_in_filename(self) -> None:
        """A browser's ``%0D%0A`` and ``%22`` in a file name decode to CR LF and a quote."""
        body = body_of(b"B", part("f", b"x", filename="a%0D%0Ab%22c.txt"))
        answer = await post(body, "multipart/form-data; boundary=B")
        assert answer.json() == [["f", 'a\r\nb"c.txt', None, "x"]]

    async def test_raw_crlf_in_filename_is_a_400(self) -> None:
        """A raw line break inside a header ends it: the rest is a malformed header, 400."""
        raw = b'Content-Disposition: form-data; name="f"; filename="a\r\nb.txt"\r\n\r\nx'
        answer = await post(body_of(b"B", raw), "multipart/form-data; boundary=B")
        assert answer.status == 400
        assert "malformed multipart body" in answer.json()["detail"]

    @pytest.mark.parametrize(
        "filename", ["café.txt".encode(), "café.txt".encode("latin-1")], ids=["utf8", "latin1"]
    )
    async def test_non_ascii_filenames(self, filename: bytes) -> None:
        """A UTF-8 file name is read as UTF-8; a Latin-1 one (old clients) still arrives."""
        raw = b'Content-Disposition: form-data; name="f"; filename="' + filename + b'"\r\n\r\nx'
        answer = await post(body_of(b"B", raw), "multipart/form-data; boundary=B")
        assert answer.status == 200
        assert answer.json() == [["f", "café.txt", None, "x"]]

    async def test_windows_path_in_filename_keeps_the_name(self) -> None:
        """An old browser's full ``C:\\...`` path is cut to the file's name."""
        body = body_of(b"B", part("f", b"x", filename="C:\\\\Users\\\\me\\\\a.txt"))
        answer = await post(body, "multipart/form-data; boundary=B")
        assert answer.json()[0][1] == "a.txt"

    async def test_part_content_type_and_charset(self) -> None:
        """A part's ``Content-Type`` is the file's ``content_type``, options dropped."""
        body = body_of(b"B", part("f", b"x", "Content-Type: Text/Plain; charset=utf-8",
                                  filename="t"))  # fmt: skip
        answer = await post(body, "multipart/form-data; boundary=B")
        assert answer.json() == [["f", "t", "text/plain", "x"]]

    @pytest.mark.parametrize(
        ("content_type", "body", "words"),
        [
            ("multipart/form-data", b"--B--\r\n", "without a boundary"),
            ('multipart/form-data; boundary=""', b"--B--\r\n", "without a boundary"),
            ("multipart/form-data; boundary=" + "x" * 300, b"--B--\r\n", "invalid multipart"),
            ("multipart/form-data; boundary=OTHER", body_of(b"B", part("a", b"1")), "malformed"),
            ("multipart/form-data; boundary=B", b"--B\r\n" + part("a", b"1"), "malformed"),
            ("multipart/form-data; boundary=B", b"--B\r\nno colon\r\n\r\nx\r\n--B--", "malformed"),
            ("multipart/form-data; boundary=B", b"--B\r\nX-A: 1\r\n\r\nx\r\n--B--", "malformed"),
            ("multipart/form-data; boundary=B", b"junk--B\r\n", "malformed"),
        ],
        ids=[
            "no-boundary",
            "empty-boundary",
            "long-boundary",
            "wrong-boundary",
            "truncated",
            "header-without-colon",
            "no-content-disposition",
            "junk-before-boundary",
        ],
    )
    async def test_broken_bodies_are_400s(self, content_type: str, body: bytes, words: str) -> None:
        """Each malformed body is a 400 that says what is wrong."""
        answer = await post(body, content_type)
        assert answer.status == 400, answer
        assert words in answer.json()["detail"]

    async def test_typed_route_on_a_random_looking_form(self) -> None:
        """Typed parameters on a multipart body: a bad value is a located 422."""
        body = encode_multipart({"count": "many"}, None, "B")
        answer = await post(body, "multipart/form-data; boundary=B", "/typed")
        assert answer.status == 422
        assert answer.json()["detail"][0]["loc"] == ["body", "count"]

    def test_parse_content_type(self) -> None:
        """Options are case-insensitive names with quoted or bare values."""
        assert parse_content_type('Multipart/Form-Data; BOUNDARY="a\\"b"; x') == (
            "multipart/form-data",
            {"boundary": 'a"b'},
        )


# --- random bodies ------------------------------------------------------------------------------

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

_pieces = st.sampled_from(
    [
        b"--B",
        b"--B--",
        b"\r\n",
        b"\r\n\r\n",
        b"Content-Disposition: form-data; name=",
        b'"f"',
        b'; filename="x.bin"',
        b"Content-Type: text/plain",
        b"Content-Length: 3",
        b"count",
        b"tags",
        b"file",
        b"\n",
        b":",
        b"\x00\xff",
        b"%0D",
        b" ",
    ]
)
_bodies = st.lists(st.one_of(_pieces, st.binary(max_size=20)), max_size=40).map(b"".join)
_content_types = st.one_of(
    st.just("multipart/form-data; boundary=B"),
    st.sampled_from(
        [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            'multipart/form-data; boundary="B"',
            "application/x-www-form-urlencoded",
            "text/plain",
            "",
        ]
    ),
    st.text(max_size=40).map(lambda t: "multipart/form-data; " + t),
)


# Names as a browser would send them; ``%`` and ``\\`` are left out because a received ``%0D``
# or ``C:\\x`` cannot be told apart from an escaped line break or an old browser's full path.
_names = st.text(st.characters(exclude_characters="%\\", exclude_categories=["Cs"]), max_size=8)


def _valid_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class TestRandomBodies:
    @PROPERTY
    @given(
        body=_bodies,
        content_type=_content_types.filter(_valid_latin1),
        split=st.integers(1, 64),
        path=st.sampled_from(["/echo", "/typed"]),
    )
    async def test_random_bodies_never_500_hang_or_leak(
        self, body: bytes, content_type: str, split: int, path: str
    ) -> None:
        """Any body, any content type, any chunking: a 2xx/4xx in time, and no file left."""
        chunks = [body[i : i + split] for i in range(0, len(body), split)] or [b""]
        answer = await post(chunks, content_type, path)  # bounded by call_asgi's fail_after
        assert answer.status < 500, (answer, body)
        assert os.listdir(UploadLimits().upload_dir()) == []

    @PROPERTY
    @given(
        fields=st.lists(st.tuples(_names, st.text(max_size=30)), max_size=5),
        files=st.lists(st.tuples(_names, _names, st.binary(max_size=300)), max_size=4),
    )
    async def test_well_formed_bodies_round_trip(
        self, fields: list[tuple[str, str]], files: list[tuple[str, str, bytes]]
    ) -> None:
        """Whatever fields and files a browser-like client encodes come back as sent."""
        data: dict[str, Any] = {}
        for name, value in fields:
            data.setdefault(name, []).append(value)
        file_specs = [(name, (filename, content)) for name, filename, content in files]
        body = encode_multipart(data, file_specs, "b0und4ry")
        answer = await post(body, "multipart/form-data; boundary=b0und4ry")
        assert answer.status == 200, answer
        expected: list[Any] = [[n, v] for n, values in data.items() for v in values]
        expected += [[n, f, "application/octet-stream", c.decode("latin-1")] for n, f, c in files]
        assert answer.json() == expected
