"""Security basics: what a 500 says, header injection, cookie defaults, open redirects, and path
parameters that try to reach the filesystem.

triobg serves no files itself; the last class attacks the one example that reads files
(``examples/accepted_file.py``) with traversal attempts and checks that it cannot be tricked.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

import pytest
from _support import assert_books_balance, assert_no_leak, call_asgi, recording
from hypothesis import example, given, settings
from hypothesis import strategies as st

from examples import accepted_file
from triobg import (
    App,
    BackgroundTasks,
    HTTPException,
    JSONResponse,
    RedirectResponse,
    Request,
    Response,
    same_site_path,
)
from triobg._headers import MutableHeaders, encode_header
from triobg._responses import is_same_site_reference
from triobg.testing import TestClient

SECRET = "s3cr3t-password-for-db"


class Boom(Exception):
    pass


def failing_app() -> App:
    app = App()

    async def never() -> None:
        raise AssertionError("a task of a failed request ran")

    @app.get("/raise")
    async def raise_(tasks: BackgroundTasks) -> None:
        tasks.add_task(never)
        raise Boom(f"connecting with {SECRET} failed at /srv/app/db.py line 12")

    @app.get("/unencodable")
    async def unencodable() -> Any:
        return {"value": object()}

    @app.get("/bad-handler")
    async def bad_handler() -> None:
        raise KeyError(SECRET)

    @app.exception_handler(KeyError)
    async def broken_handler(request: Any, error: KeyError) -> Response:
        raise RuntimeError(f"the handler itself broke: {SECRET}")

    @app.get("/inject")
    async def inject() -> Response:
        return Response("x", headers={"x-note": "a\r\nSet-Cookie: admin=1"})

    @app.get("/inject-exception")
    async def inject_exception() -> None:
        raise HTTPException(401, "login", headers={"www-authenticate": "Basic\r\nX-Evil: 1"})

    return app


class TestServerErrors:
    @pytest.mark.parametrize(
        "path", ["/raise", "/unencodable", "/bad-handler", "/inject", "/inject-exception"]
    )
    async def test_500_body_says_nothing_about_internals(self, path: str) -> None:
        """Whatever broke, the client gets the same fixed body; the details go to the log."""
        app = failing_app()
        with recording("triobg.error", logging.ERROR) as log:
            answer = await call_asgi(app, "GET", path)
        assert answer.status == 500
        assert answer.body == b'{"detail":"Internal Server Error"}'
        assert SECRET not in answer.body.decode()
        assert_no_leak(answer.body)
        assert log.records, "the failure must be logged for the operator"
        assert all(k not in (b"set-cookie", b"x-evil") for k, _ in answer.headers), answer
        assert_books_balance(app)
        assert app.background.statistics().completed == 0

    async def test_the_failure_is_logged_with_its_traceback(self) -> None:
        """The operator gets what the client does not: the exception and where it came from."""
        with recording("triobg.error", logging.ERROR) as log:
            await call_asgi(failing_app(), "GET", "/raise")
        (record,) = log.records
        assert record.exc_info is not None and record.exc_info[0] is Boom
        assert "unhandled Boom in GET /raise" in record.getMessage()


class TestHeaderInjection:
    @pytest.mark.parametrize(
        "value", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\0b", "\r\n\r\n<html>"]
    )
    def test_cr_lf_nul_in_a_value_are_refused(self, value: str) -> None:
        """Every way to set a header refuses a value that would split the response."""
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            encode_header("x-test", value)
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            Response(headers={"x-test": value})
        headers = MutableHeaders([])
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            headers["x-test"] = value
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            headers.append("x-test", value)

    @pytest.mark.parametrize("name", ["x test", "x:y", "x\r\ny", "", "é", "x\0"])
    def test_names_must_be_tokens(self, name: str) -> None:
        """A header name that is not an HTTP token is refused."""
        with pytest.raises(ValueError, match="invalid header name"):
            encode_header(name, "v")

    @settings(max_examples=200, deadline=None, database=None)
    @given(name=st.text(max_size=12), value=st.text(max_size=40))
    def test_what_is_accepted_cannot_split_a_response(self, name: str, value: str) -> None:
        """Any header that ``encode_header`` accepts is a single, well-formed header line."""
        try:
            raw_name, raw_value = encode_header(name, value)
        except ValueError:
            return
        assert raw_name and b":" not in raw_name
        assert not set(raw_name + raw_value) & {0x0D, 0x0A, 0x00}

    def test_cookie_values_and_redirect_targets_cannot_inject(self) -> None:
        """A CR/LF smuggled into a cookie value is escaped; into a redirect target, refused."""
        response = Response()
        response.set_cookie("session", "a\r\nSet-Cookie: admin=1")
        ((_, value),) = [(k, v) for k, v in response.raw_headers if k == b"set-cookie"]
        assert b"\r" not in value and b"\n" not in value
        with pytest.raises(ValueError, match="refusing to redirect"):
            RedirectResponse("/next\r\nSet-Cookie: admin=1")
        with pytest.raises(ValueError, match="invalid cookie name"):
            response.set_cookie("bad name;", "x")


class TestCookies:
    def test_set_cookie_is_httponly_and_samesite_lax_by_default(self) -> None:
        """``set_cookie`` without options: HttpOnly, SameSite=Lax, Path=/."""
        response = Response()
        response.set_cookie("session", "abc")
        header = response.headers["set-cookie"]
        parts = [p.strip() for p in header.split(";")]
        assert parts[0] == "session=abc"
        assert "HttpOnly" in parts
        assert "SameSite=Lax" in parts
        assert "Path=/" in parts

    def test_delete_cookie_keeps_the_safe_attributes(self) -> None:
        """Deleting a cookie sends Max-Age=0 with the same safe attributes."""
        response = Response()
        response.delete_cookie("session")
        header = response.headers["set-cookie"]
        assert "Max-Age=0" in header and "HttpOnly" in header and "SameSite=Lax" in header

    def test_samesite_none_needs_secure(self) -> None:
        """Browsers drop ``SameSite=None`` without ``Secure``; triobg refuses to write it."""
        with pytest.raises(ValueError, match="not secure"):
            Response().set_cookie("session", "abc", samesite="none")
        response = Response()
        response.set_cookie("session", "abc", samesite="none", secure=True)
        assert "Secure" in response.headers["set-cookie"]

    async def test_injected_response_cookie_keeps_the_defaults(self) -> None:
        """A cookie set through the injected ``Response`` reaches the client with the defaults."""
        app = App()

        @app.post("/login")
        async def login(response: Response) -> dict[str, bool]:
            response.set_cookie("session", "abc")
            return {"ok": True}

        async with TestClient(app) as client:
            answer = await client.post("/login")
        header = answer.headers["set-cookie"]
        assert "HttpOnly" in header and "SameSite=Lax" in header


OPEN_REDIRECTS = [
    "//evil.com/",
    "//evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "/\t/evil.com",
    "/\n/evil.com",
    "https://evil.com",
    "http:evil.com",
    "javascript:alert(1)",
    " //evil.com",
    "evil.com",
    "",
]


def browser_target(url: str) -> str:
    """Where a browser on https://site.example/a/b would go (WHATWG parser quirks included:
    tabs and newlines are dropped, ``\\`` is a ``/``, leading spaces and controls are ignored)."""
    cleaned = url.replace("\t", "").replace("\n", "").replace("\r", "")
    cleaned = cleaned.lstrip("".join(map(chr, range(0x21)))).replace("\\", "/")
    return urljoin("https://site.example/a/b", cleaned)


class TestOpenRedirects:
    @pytest.mark.parametrize("url", OPEN_REDIRECTS)
    async def test_a_target_from_the_request_never_leads_off_site(self, url: str) -> None:
        """``RedirectResponse(request's ?next=)`` to anything a browser would take to another
        host is a 400 (never a 307 there, never a 500); with ``same_site_path`` it is ``/``."""
        app = App()

        @app.get("/login")
        async def login(next: str) -> RedirectResponse:
            return RedirectResponse(next)

        @app.get("/safe")
        async def safe(next: str) -> RedirectResponse:
            return RedirectResponse(same_site_path(next, default="/home"))

        async with TestClient(app) as client:
            answer = await client.get("/login", params={"next": url})
            safe_answer = await client.get("/safe", params={"next": url})
        assert answer.status_code == 400, (url, answer.status_code)
        assert "location" not in answer.headers
        assert (safe_answer.status_code, safe_answer.headers["location"]) == (307, "/home")

    @pytest.mark.parametrize(
        "url", ["https://accounts.example/login?x=1", "http://example.org", "//cdn.example/x"]
    )
    async def test_a_target_the_application_writes_is_followed(self, url: str) -> None:
        """An off-site target the application itself wrote is a 307 to it, as in FastAPI
        (#18): only a target the client supplied is refused."""
        app = App()

        @app.get("/go")
        async def go(next: str = "/") -> RedirectResponse:
            return RedirectResponse(url)

        async with TestClient(app) as client:
            answer = await client.get("/go", params={"next": "/somewhere"})
        assert (answer.status_code, answer.headers["location"]) == (307, url)

    async def test_the_body_and_path_count_as_the_request(self) -> None:
        """A target taken from a path parameter, a JSON body or a form body is refused too;
        ``allow_external=True`` vouches for it."""
        app = App()

        @app.get("/to/{target:path}")
        async def by_path(target: str) -> RedirectResponse:
            return RedirectResponse(target)

        @app.post("/json")
        async def by_json(request: Request) -> RedirectResponse:
            return RedirectResponse((await request.json())["next"])

        @app.post("/form")
        async def by_form(request: Request) -> RedirectResponse:
            body = (await request.body()).decode()
            return RedirectResponse(unquote(body.partition("next=")[2].replace("+", " ")))

        @app.get("/trusted")
        async def trusted(next: str) -> RedirectResponse:
            return RedirectResponse(next, allow_external=True)

        async with TestClient(app) as client:
            assert (await client.get("/to/https://evil.example/x")).status_code == 400
            assert (
                await client.post("/json", json={"next": "https://evil.example"})
            ).status_code == 400
            form = await client.post(
                "/form",
                content=b"next=https%3A%2F%2Fevil.example",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert form.status_code == 400
            trusted_answer = await client.get(
                "/trusted", params={"next": "https://partner.example"}
            )
            assert trusted_answer.headers["location"] == "https://partner.example"

    async def test_a_control_character_from_the_request_is_a_400(self) -> None:
        """A CR/LF in a target the client sent is a 400 (never a 500, never a split header)."""
        app = App()

        @app.get("/login")
        async def login(next: str) -> RedirectResponse:
            return RedirectResponse(next)

        async with TestClient(app) as client:
            answer = await client.get("/login", params={"next": "/a\r\nSet-Cookie: x=1"})
        assert answer.status_code == 400
        assert "set-cookie" not in answer.headers

    def test_same_site_path(self) -> None:
        """``same_site_path`` passes same-site paths and replaces the rest (and ``None``)."""
        assert same_site_path("/a?b=1") == "/a?b=1"
        assert same_site_path(None) == "/"
        assert same_site_path("//evil.example", "/x") == "/x"
        assert same_site_path("https://evil.example") == "/"

    @pytest.mark.parametrize("url", ["/", "/a/b?next=//evil.com", "/%2F%2Fevil.com", "/a//b"])
    def test_redirect_response_accepts_same_site_paths(self, url: str) -> None:
        """Paths on this site are accepted, encoded slashes included (they stay a path)."""
        assert RedirectResponse(url).headers["location"] == url
        assert urlsplit(browser_target(url)).netloc == "site.example"

    @settings(max_examples=300, deadline=None, database=None)
    @given(url=st.text(st.sampled_from("/\\:.@%2Fevil\t\n ?#"), max_size=14))
    @example(url="/\\evil")
    @example(url="/\t/evil")
    def test_accepted_references_stay_on_the_site(self, url: str) -> None:
        """Anything ``is_same_site_reference`` accepts stays on the site in a browser."""
        if is_same_site_reference(url):
            assert urlsplit(browser_target(url)).netloc == "site.example", url

    @pytest.mark.parametrize(
        ("raw_path", "location"),
        [
            ("/%2F%2Fevil.com/", None),
            ("//evil.com/", None),
            ("/\\evil.com/", None),
            ("/%5Cevil.com/", None),
            ("/%E6%97%A5/", "/%E6%97%A5"),
            ("/a%2Fb/", "/a%2Fb"),
            ("/%0d%0aSet-Cookie:x=1/", None),
            ("/evil.com/", "/evil.com"),
        ],
    )
    async def test_trailing_slash_redirect_stays_on_the_site(
        self, raw_path: str, location: str | None
    ) -> None:
        """The automatic slash redirect never names another host and never breaks a header."""
        app = App()

        @app.get("/{name}")
        async def by_name(name: str) -> str:
            return name

        answer = await call_asgi(app, "GET", unquote(raw_path), raw_path=raw_path.encode())
        if location is None:
            assert answer.status == 404, answer
        else:
            assert answer.status == 307, answer
            assert answer.header("location") == location
            assert urlsplit(browser_target(location)).netloc == "site.example"
            # Following it reaches the route with the same parameter.
            follow = await call_asgi(app, "GET", unquote(location), raw_path=location.encode())
            assert follow.json() == unquote(raw_path)[1:-1]

    async def test_redirect_keeps_the_query_without_breaking_the_header(self) -> None:
        """The query string is carried over, escaped where it would break the Location."""
        app = App()

        @app.get("/items")
        async def items() -> str:
            return "items"

        answer = await call_asgi(app, "GET", "/items/", query=b"next=//evil.com&x=\r\n\xff")
        assert answer.status == 307
        assert answer.header("location") == "/items?next=//evil.com&x=%0D%0A%FF"


TRAVERSALS = [
    "..",
    "../secret",
    "..%2F..%2Fsecret",
    "%2e%2e%2fsecret",
    "....//secret",
    "..\\secret",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "secret",
    "0123456789abcdef/../../secret",
    "0123456789abcde\0",
    "%00",
]


def plant_secrets(top: Path) -> Path:
    """``top/reports`` for the reports, with secrets beside it and one named like a report."""
    reports = top / "reports"
    reports.mkdir()
    for name in ("secret.json", "upload-secret.json", "reports/upload-.json"):
        (top / name).write_text(json.dumps({"secret": SECRET}))
    return reports


class TestFilesystemExample:
    @pytest.fixture
    def reports(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """Reports live in ``tmp_path/reports``, the working directory; a secret sits next to
        them, one level up."""
        directory = tmp_path / "reports"
        directory.mkdir()
        (tmp_path / "secret.json").write_text(json.dumps({"secret": SECRET}))
        (tmp_path / "upload-secret.json").write_text(json.dumps({"secret": SECRET}))
        monkeypatch.chdir(directory)
        return directory

    @pytest.mark.parametrize("upload_id", TRAVERSALS)
    async def test_path_parameter_cannot_reach_other_files(
        self, reports: Path, upload_id: str
    ) -> None:
        """``GET /files/{upload_id}`` answers 404 for anything but a report id it made itself."""
        raw = "/files/" + upload_id
        answer = await call_asgi(accepted_file.app, "GET", unquote(raw), raw_path=raw.encode())
        assert answer.status == 404, answer
        assert SECRET not in answer.body.decode()

    @settings(max_examples=150, deadline=None, database=None)
    @given(upload_id=st.text(max_size=30))
    async def test_any_upload_id_is_a_report_or_404(self, upload_id: str) -> None:
        """For any id at all, the answer is a report of ours, "processing", or 404; never
        another file's content."""
        raw = "/files/" + quote(upload_id, safe="")
        with tempfile.TemporaryDirectory() as top:
            reports = plant_secrets(Path(top))
            # Hypothesis runs many examples per test, so function-scoped fixtures such as
            # ``monkeypatch.chdir`` cannot be used; change the working directory by hand.
            old = os.getcwd()
            os.chdir(reports)
            try:
                answer = await call_asgi(
                    accepted_file.app, "GET", unquote(raw), raw_path=raw.encode()
                )
            finally:
                os.chdir(old)
        assert answer.status in (202, 307, 404), answer
        assert SECRET not in answer.body.decode()
        if answer.status == 307:  # "/files/" -> "/files", the upload route
            assert answer.header("location") == "/files"

    async def test_the_upload_name_never_comes_from_the_client(self, reports: Path) -> None:
        """``POST /files`` picks the report name from the content's hash: whatever the client
        says, only ``upload-<16 hex>.json`` files appear, inside the reports directory."""
        async with TestClient(accepted_file.app, wait_for_tasks=True) as client:
            answer = await client.post(
                "/files?name=../../secret.json",
                content=b"hello",
                headers={"content-disposition": 'attachment; filename="../secret.json"'},
            )
            assert answer.status_code == 202
            upload_id = answer.json()["id"]
            report = await client.get(f"/files/{upload_id}")
        assert report.json()["bytes"] == 5
        written = sorted(os.listdir(reports))
        assert written == [f"upload-{upload_id}.json"]
        assert json.loads((reports.parent / "secret.json").read_text()) == {"secret": SECRET}


class TestErrorBodies:
    async def test_custom_handler_errors_are_json_without_internals(self) -> None:
        """A JSONResponse from a user handler is sent as given; triobg adds nothing to it."""
        app = App()

        @app.exception_handler(Boom)
        async def on_boom(request: Any, error: Boom) -> Response:
            return JSONResponse({"detail": "try later"}, 503)

        @app.get("/")
        async def root() -> None:
            raise Boom(SECRET)

        answer = await call_asgi(app, "GET", "/")
        assert (answer.status, answer.json()) == (503, {"detail": "try later"})
