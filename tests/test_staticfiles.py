"""``StaticFiles`` (``triobg._staticfiles``): path safety, conditional requests, ranges, content
types and directories, mounted on an ``App`` and called the way a server calls it."""

from __future__ import annotations

import email.utils
import os
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import trio
import trio.lowlevel
from _support import Answer, LeavingClient, call_asgi
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from triobg import App, StaticFiles
from triobg._staticfiles import parse_range, safe_parts

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"
BIG = bytes(range(256)) * 1024  # 256 KiB: several chunks


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``site/public`` is served; ``site/secret.txt`` and what links point at must never be."""
    base = tmp_path_factory.mktemp("site")
    (base / "secret.txt").write_bytes(SECRET)
    (base / "public-evil").mkdir()
    (base / "public-evil" / "x.txt").write_bytes(SECRET)
    public = base / "public"
    public.mkdir()
    (public / "hello.txt").write_bytes(b"hello, world\n")
    (public / "app.css").write_bytes(b"body { color: red }")
    (public / "app.js").write_bytes(b"console.log(1)")
    (public / "data.json").write_bytes(b"{}")
    (public / "logo.png").write_bytes(b"\x89PNG....")
    (public / "blob.unknownext").write_bytes(b"??")
    (public / "empty.txt").write_bytes(b"")
    (public / "big.bin").write_bytes(BIG)
    (public / "a b%c.txt").write_bytes(b"odd name")
    (public / "docs").mkdir()
    (public / "docs" / "index.html").write_bytes(b"<h1>docs</h1>")
    (public / "nodex").mkdir()
    (public / "nodex" / "page.html").write_bytes(b"<p>page</p>")
    os.symlink(base / "secret.txt", public / "link-out.txt")
    os.symlink(base, public / "link-dir-out")
    os.symlink(public / "hello.txt", public / "link-in.txt")
    os.mkfifo(public / "fifo")
    return public


# The contents of every file inside the root (``site``): what a 200 may carry.
INSIDE = {b"hello, world\n", b"body { color: red }", b"console.log(1)", b"{}", b"\x89PNG....",
          b"??", b"", BIG, b"odd name", b"<h1>docs</h1>", b"<p>page</p>"}  # fmt: skip


def app_for(root: Path, *, html: bool = False) -> App:
    app = App()
    app.mount("/static", StaticFiles(directory=root, html=html))
    return app


async def get(
    app: App, raw: str, headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET"
) -> Answer:
    """``raw`` as a client writes it; the path decoded as hypercorn decodes it."""
    return await call_asgi(app, method, unquote(raw), raw_path=raw.encode(), headers=headers or [])


class TestSafeParts:
    @pytest.mark.parametrize(
        ("path", "raw", "expected"),
        [
            ("/a/b.txt", b"/a/b.txt", ("a", "b.txt")),
            ("/", b"/", ()),
            ("/dir/", b"/dir/", ("dir",)),
            ("/a b", b"/a%20b", ("a b",)),
            ("/../x", b"/../x", None),
            ("/a/../../x", b"/a/%2e%2e/%2E%2E/x", None),
            ("/./x", b"/./x", None),
            ("/a//b", b"/a//b", None),
            ("/a/b", b"/a%2fb", None),
            ("/a/b", b"/a%2Fb", None),
            ("/a\\b", b"/a%5cb", None),
            ("/a\\..\\x", b"/a\\..\\x", None),
            ("/a\x00b", b"/a%00b", None),
            ("/a\nb", b"/a%0ab", None),
            ("a", b"a", None),
        ],
    )
    def test_plain_paths_only(
        self, path: str, raw: bytes, expected: tuple[str, ...] | None
    ) -> None:
        """Dot segments, empty segments, encoded separators and control characters are refused."""
        assert safe_parts(path, raw) == expected


class TestParseRange:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ("bytes=0-9", (0, 9)),
            ("bytes=90-", (90, 99)),
            ("bytes=-10", (90, 99)),
            ("bytes=-1000", (0, 99)),
            ("bytes=50-5000", (50, 99)),
            ("BYTES = 1-2", (1, 2)),
            ("bytes=100-", "unsatisfiable"),
            ("bytes=-0", "unsatisfiable"),
            ("bytes=5-1", None),
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("bytes=x-1", None),
            ("bytes=²-3", None),
            ("bytes=-", None),
            ("bytes=" + "9" * 5000 + "-", None),
            ("bytes", None),
        ],
    )
    def test_one_range(self, header: str, expected: object) -> None:
        """One byte range of a 100-byte file: the pair, a 416, or a header to ignore."""
        assert parse_range(header, 100) == expected


class TestServing:
    async def test_a_file_with_its_headers(self, site: Path) -> None:
        """200 with type, length, ETag, Last-Modified and Accept-Ranges."""
        answer = await get(app_for(site), "/static/hello.txt")
        assert answer.status == 200
        assert answer.body == b"hello, world\n"
        assert answer.header("content-type") == "text/plain; charset=utf-8"
        assert answer.header("content-length") == "13"
        assert answer.header("accept-ranges") == "bytes"
        etag = answer.header("etag")
        assert etag and etag.startswith('"') and etag.endswith('"')
        modified = email.utils.parsedate_to_datetime(answer.header("last-modified") or "")
        assert int(modified.timestamp()) == int((site / "hello.txt").stat().st_mtime)

    @pytest.mark.parametrize(
        ("name", "content_type"),
        [
            ("app.css", "text/css; charset=utf-8"),
            ("data.json", "application/json; charset=utf-8"),
            ("logo.png", "image/png"),
            ("blob.unknownext", "application/octet-stream"),
            ("docs/index.html", "text/html; charset=utf-8"),
        ],
    )
    async def test_content_types(self, site: Path, name: str, content_type: str) -> None:
        """The type comes from the name (``mimetypes``); unknown is ``application/octet-stream``."""
        answer = await get(app_for(site), f"/static/{name}")
        assert answer.status == 200
        assert answer.header("content-type") == content_type

    async def test_javascript_is_javascript(self, site: Path) -> None:
        """``.js`` is served as JavaScript (``text/`` or ``application/``, per Python version)."""
        answer = await get(app_for(site), "/static/app.js")
        assert (answer.header("content-type") or "").split(";")[0].endswith("/javascript")

    async def test_a_large_file_arrives_whole(self, site: Path) -> None:
        """A file of several chunks arrives byte for byte."""
        answer = await get(app_for(site), "/static/big.bin")
        assert answer.status == 200
        assert answer.body == BIG
        assert answer.header("content-length") == str(len(BIG))

    async def test_empty_file(self, site: Path) -> None:
        """An empty file is a 200 with ``Content-Length: 0``."""
        answer = await get(app_for(site), "/static/empty.txt")
        assert (answer.status, answer.body, answer.header("content-length")) == (200, b"", "0")

    async def test_head_has_headers_and_no_body(self, site: Path) -> None:
        """HEAD: the GET's headers, no body."""
        answer = await get(app_for(site), "/static/hello.txt", method="HEAD")
        assert (answer.status, answer.body, answer.header("content-length")) == (200, b"", "13")

    async def test_other_methods_are_405(self, site: Path) -> None:
        """POST and friends: 405 with ``Allow: GET, HEAD``."""
        answer = await get(app_for(site), "/static/hello.txt", method="POST")
        assert answer.status == 405
        assert answer.header("allow") == "GET, HEAD"

    async def test_percent_encoded_names(self, site: Path) -> None:
        """A name with a space and a ``%`` is reached by its encoded form."""
        answer = await get(app_for(site), "/static/" + quote("a b%c.txt"))
        assert (answer.status, answer.body) == (200, b"odd name")

    async def test_a_symlink_inside_the_root_is_followed(self, site: Path) -> None:
        """A link to a file inside the root serves that file."""
        answer = await get(app_for(site), "/static/link-in.txt")
        assert (answer.status, answer.body) == (200, b"hello, world\n")


class TestNotFound:
    @pytest.mark.parametrize(
        "raw",
        [
            "/static/missing.txt",
            "/static/docs/missing/deeper.txt",
            "/static/hello.txt/more",
            "/static/" + "x" * 5000,
            "/static/fifo",
            "/static/docs",
            "/static/docs/",
            "/static/",
            "/static",
        ],
    )
    async def test_missing_and_non_files_are_404(self, site: Path, raw: str) -> None:
        """Missing files, paths through files, over-long names, FIFOs and directories
        (without ``html=True``) are 404, never a 500 (and a FIFO never hangs)."""
        answer = await get(app_for(site), raw)
        assert answer.status == 404, answer

    async def test_missing_directory_at_declaration(self, tmp_path: Path) -> None:
        """A root that does not exist fails at declaration, unless ``check_dir=False`` (then
        every request is a 404)."""
        with pytest.raises(RuntimeError, match="does not exist"):
            StaticFiles(directory=tmp_path / "nope")
        app = App()
        app.mount("/s", StaticFiles(directory=tmp_path / "nope", check_dir=False))
        assert (await get(app, "/s/x")).status == 404


TRAVERSALS = [
    "/static/../secret.txt",
    "/static/%2e%2e/secret.txt",
    "/static/%2E%2E/secret.txt",
    "/static/.%2e/secret.txt",
    "/static/docs/../../secret.txt",
    "/static/docs/%2e%2e/%2e%2e/secret.txt",
    "/static/..%2fsecret.txt",
    "/static/..%2Fsecret.txt",
    "/static/%2e%2e%2fsecret.txt",
    "/static/..%5csecret.txt",
    "/static/..\\secret.txt",
    "/static/%5c..%5csecret.txt",
    "/static/hello.txt%00.png",
    "/static/%00",
    "/static/link-out.txt",
    "/static/link-dir-out/secret.txt",
    "/static/link-dir-out/public-evil/x.txt",
    "/static/../public-evil/x.txt",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/./hello.txt",
    "/static/%252e%252e/secret.txt",
]


class TestTraversal:
    @pytest.mark.parametrize("raw", TRAVERSALS)
    @pytest.mark.parametrize("html", [False, True])
    async def test_never_outside_the_root(self, site: Path, raw: str, html: bool) -> None:
        """Each classic traversal (``..``, ``%2e%2e``, ``%2f``, backslashes, NUL, symlinks out,
        absolute paths) is a 404 that serves nothing from outside the root."""
        answer = await get(app_for(site, html=html), raw)
        assert answer.status == 404, (raw, answer)
        assert SECRET not in answer.body


PATH_CHARS = st.sampled_from(
    ["/", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "\\", "%00", "%25", "%", "//",
     "hello.txt", "docs", "index.html", "secret.txt", "link-out.txt", "link-dir-out",
     "link-in.txt", "public-evil", "x.txt", "public", "etc", "a", "~", ":", "%20"]
)  # fmt: skip


class TestTraversalProperty:
    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        database=None,
    )
    @given(pieces=st.lists(PATH_CHARS, max_size=12), html=st.booleans())
    @example(pieces=["..", "/", "secret.txt"], html=False)
    @example(pieces=["link-dir-out", "/", "secret.txt"], html=True)
    async def test_no_generated_path_serves_a_file_outside_the_root(
        self, site: Path, pieces: list[str], html: bool
    ) -> None:
        """Whatever path is asked for, the answer is a 404/405/307 or the bytes of a file that
        really lies inside the root, never what lies outside it."""
        raw = "/static/" + "".join(pieces)
        try:
            raw.encode("ascii")
        except UnicodeEncodeError:
            return
        answer = await get(app_for(site, html=html), raw)
        assert SECRET not in answer.body
        assert answer.status in (200, 307, 404), (raw, answer)
        if answer.status == 200:
            assert answer.body in INSIDE, raw


class TestConditional:
    async def test_if_none_match_is_304(self, site: Path) -> None:
        """The ETag back in ``If-None-Match`` (also weak, in a list, or ``*``) is a 304."""
        app = app_for(site)
        etag = (await get(app, "/static/hello.txt")).header("etag")
        assert etag
        for value in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
            answer = await get(app, "/static/hello.txt", [(b"if-none-match", value.encode())])
            assert (answer.status, answer.body) == (304, b""), value
            assert answer.header("etag") == etag
            assert answer.header("content-length") is None
        other = await get(app, "/static/hello.txt", [(b"if-none-match", b'"other"')])
        assert other.status == 200

    async def test_if_modified_since(self, site: Path) -> None:
        """``If-Modified-Since`` at or after the file's time is a 304; before it, or a bad date,
        is a 200; ``If-None-Match`` wins when both are sent."""
        app = app_for(site)
        modified = (await get(app, "/static/hello.txt")).header("last-modified") or ""
        answer = await get(app, "/static/hello.txt", [(b"if-modified-since", modified.encode())])
        assert answer.status == 304
        old = b"Mon, 01 Jan 1990 00:00:00 GMT"
        assert (await get(app, "/static/hello.txt", [(b"if-modified-since", old)])).status == 200
        bad = b"yesterday-ish"
        assert (await get(app, "/static/hello.txt", [(b"if-modified-since", bad)])).status == 200
        both = [(b"if-none-match", b'"other"'), (b"if-modified-since", modified.encode())]
        assert (await get(app, "/static/hello.txt", both)).status == 200


class TestRange:
    async def test_a_range_is_206(self, site: Path) -> None:
        """``bytes=a-b`` is a 206 with ``Content-Range`` and exactly those bytes."""
        app = app_for(site)
        for header, first, last in [
            (b"bytes=0-4", 0, 4),
            (b"bytes=7-", 7, 12),
            (b"bytes=-6", 7, 12),
            (b"bytes=100000-200000", 100000, 200000),
        ]:
            name = "big.bin" if first >= 100000 else "hello.txt"
            data = (site / name).read_bytes()
            answer = await get(app, f"/static/{name}", [(b"range", header)])
            assert answer.status == 206, header
            assert answer.body == data[first : last + 1]
            assert answer.header("content-range") == f"bytes {first}-{last}/{len(data)}"
            assert answer.header("content-length") == str(last - first + 1)

    async def test_unsatisfiable_is_416(self, site: Path) -> None:
        """A range that starts past the end is a 416 that gives the size."""
        answer = await get(app_for(site), "/static/hello.txt", [(b"range", b"bytes=13-")])
        assert answer.status == 416
        assert answer.header("content-range") == "bytes */13"
        empty = await get(app_for(site), "/static/empty.txt", [(b"range", b"bytes=0-")])
        assert empty.status == 416

    async def test_ignored_ranges_serve_the_whole_file(self, site: Path) -> None:
        """Several ranges, another unit, nonsense, HEAD, or a stale ``If-Range``: a 200."""
        app = app_for(site)
        for headers, method in [
            ([(b"range", b"bytes=0-1,3-4")], "GET"),
            ([(b"range", b"lines=1-2")], "GET"),
            ([(b"range", b"bytes=oops")], "GET"),
            ([(b"range", b"bytes=0-1")], "HEAD"),
            ([(b"range", b"bytes=0-1"), (b"if-range", b'"stale"')], "GET"),
        ]:
            answer = await get(app, "/static/hello.txt", headers, method)
            assert answer.status == 200, headers
            assert answer.header("content-length") == "13"

    async def test_if_range_with_the_current_etag(self, site: Path) -> None:
        """``If-Range`` naming the current ETag (or date) lets the range through."""
        app = app_for(site)
        first = await get(app, "/static/hello.txt")
        for condition in (first.header("etag"), first.header("last-modified")):
            assert condition
            headers = [(b"range", b"bytes=0-4"), (b"if-range", condition.encode())]
            answer = await get(app, "/static/hello.txt", headers)
            assert (answer.status, answer.body) == (206, b"hello")


class TestHtml:
    async def test_directory_index_and_redirect(self, site: Path) -> None:
        """``html=True``: ``/docs/`` serves ``index.html``; ``/docs`` redirects there first."""
        app = app_for(site, html=True)
        answer = await get(app, "/static/docs/")
        assert (answer.status, answer.body) == (200, b"<h1>docs</h1>")
        redirect = await get(app, "/static/docs")
        assert redirect.status == 307
        assert redirect.header("location") == "/static/docs/"

    async def test_directory_without_index_is_404(self, site: Path) -> None:
        """A directory with no ``index.html`` is a 404 (no listing), even with ``html=True``."""
        app = app_for(site, html=True)
        assert (await get(app, "/static/nodex/")).status == 404
        assert (await get(app, "/static/nodex")).status == 404

    async def test_not_found_page(self, tmp_path: Path) -> None:
        """With ``html=True`` a ``404.html`` is the body of every 404."""
        (tmp_path / "404.html").write_bytes(b"<p>lost</p>")
        answer = await get(app_for(tmp_path, html=True), "/static/nope")
        assert (answer.status, answer.body) == (404, b"<p>lost</p>")
        assert answer.header("content-type") == "text/html; charset=utf-8"


class TestClientLeaves:
    async def test_reading_stops_when_the_client_disconnects(self, tmp_path: Path) -> None:
        """A client that leaves after the first chunk stops the reads: the call returns with
        far fewer body messages than the file has chunks."""
        (tmp_path / "huge.bin").write_bytes(b"x" * (64 * 1024 * 50))
        static = StaticFiles(directory=tmp_path, chunk_size=64 * 1024)
        client = LeavingClient()

        scope = {
            "type": "http", "method": "GET", "path": "/huge.bin", "raw_path": b"/huge.bin",
            "root_path": "", "headers": [], "query_string": b"",
        }  # fmt: skip
        with trio.fail_after(5):
            await client.receive()  # the server's first message: the (empty) request body
            await static(scope, client.receive, client.send)
        assert 1 <= len(client.bodies) < 50
