"""Hostile input, property-based: whatever a client sends, the answer is below 500, quick, says
what was wrong, and gives nothing away.

Every example is one direct ASGI call (``_support.call_asgi``) into a representative app with
typed path, query, header, cookie and body parameters, bounded by ``trio.fail_after``. The
request limits (body size, JSON depth, query parameter count) are checked at their defaults, at
custom values, and at random values, boundary included.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import uuid
from typing import Annotated, Any
from urllib.parse import unquote

import attrs
import pytest
from _support import (
    Answer,
    assert_books_balance,
    assert_no_leak,
    assert_says_what_was_wrong,
    call_asgi,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from triobg import (
    App,
    BackgroundTasks,
    Body,
    Cookie,
    Header,
    Path,
    Query,
    Request,
)
from triobg._encode import dump_json
from triobg._responses import is_same_site_reference

FUZZ = settings(
    max_examples=120,
    deadline=None,  # trio runs and thread hops make per-example timing irregular
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@attrs.frozen
class Line:
    sku: str
    quantity: int
    tags: list[str] = attrs.Factory(list)


@attrs.frozen
class Named:
    name: str
    price: int


@attrs.frozen
class Order:
    id: uuid.UUID
    placed: dt.datetime
    color: Color
    lines: list[Line]
    matrix: list[list[float]] = attrs.Factory(list)
    note: str | None = None


ran: list[str] = []


async def record(what: str) -> None:
    ran.append(what)


def record_sync(what: str) -> None:
    ran.append(what)


def make_app(**limits: Any) -> App:
    app = App(**limits)

    @app.get("/items/{item_id}")
    async def read_item(
        item_id: Annotated[int, Path(ge=0)],
        tasks: BackgroundTasks,
        *,
        q: Annotated[str | None, Query(max_length=50)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        tags: list[str] = Query([]),
        color: Color = Color.RED,
        since: dt.datetime | None = None,
        ratio: Annotated[float, Query(gt=0, lt=1)] = 0.5,
        flag: bool = False,
        uid: uuid.UUID | None = None,
        x_token: Annotated[str | None, Header(max_length=64)] = None,
        session: Annotated[str | None, Cookie(min_length=3)] = None,
    ) -> dict[str, Any]:
        tasks.add_task(record, "item")
        return {"item_id": item_id, "q": q, "tags": tags, "color": color, "since": since}

    @app.post("/orders/{owner}")
    async def create_order(
        owner: uuid.UUID,
        order: Order,
        tasks: BackgroundTasks,
        priority: Annotated[int, Query(ge=0, le=9)] = 5,
    ) -> dict[str, Any]:
        tasks.add_task(record_sync, "order")
        tasks.add_task(record, "order")
        return {"owner": owner, "id": order.id, "lines": len(order.lines), "color": order.color}

    @app.put("/things/{name:path}")
    def put_thing(name: str, values: Annotated[list[int], Body(max_length=100)]) -> dict[str, Any]:
        return {"name": name, "count": len(values)}

    @app.post("/multi")
    async def multi(line: Line, count: Annotated[int, Body(ge=0)]) -> int:
        return count

    @app.post("/raw")
    async def raw(request: Request) -> int:
        return len(await request.body())

    @app.post("/json")
    async def any_json(request: Request) -> str:
        return type(await request.json()).__name__

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        return await request.json()

    @app.post("/echo/named")
    async def echo_named(named: Named) -> Named:
        return named

    @app.get("/u/{name}")
    async def user(name: str) -> str:
        return name

    @app.get("/slash/")
    async def slash() -> str:
        return "slash"

    return app


APP = make_app()
ROUTES = ["/items/", "/orders/", "/things/", "/multi", "/raw", "/json", "/u/", "/slash", "/"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"]


def check(answer: Answer, method: str, *, sent: str) -> None:
    """The properties every answer has, whatever was sent."""
    assert answer.status < 500, (answer, sent)
    assert_no_leak(answer.body, sent=sent)
    if 400 <= answer.status < 500 and method != "HEAD":
        assert_says_what_was_wrong(answer)
    if 300 <= answer.status < 400:
        location = answer.header("location")
        assert location is not None and is_same_site_reference(location), answer
    assert_books_balance(APP)
    stats = APP.background.statistics()
    assert stats.failed == stats.cancelled == 0, stats


# --- strategies --------------------------------------------------------------------------------

# What may appear in a request target on the wire (h11 refuses the rest), plus escapes.
_TARGET_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="?#%")
_ESCAPE = st.one_of(
    st.integers(0, 255).map(lambda b: f"%{b:02X}"),
    st.sampled_from(
        [
            "%",
            "%G1",
            "%e2%82",
            "%2F",
            "%2e%2e",
            "%00",
            "%0d%0a",
            "%C0%AF",
            "%FF",
            "%E6%97%A5",
            "%5C",
        ]
    ),
)
_SEGMENT = st.lists(st.one_of(_TARGET_CHARS, _ESCAPE), max_size=12).map("".join)
RAW_PATHS = st.builds(
    lambda prefix, segments, slash: prefix + "/".join(segments) + ("/" if slash else ""),
    st.sampled_from(ROUTES),
    st.lists(_SEGMENT, max_size=4),
    st.booleans(),
)
_QUERY_NAMES = st.sampled_from(
    ["q", "limit", "tags", "color", "since", "ratio", "flag", "uid", "priority", ""]
)
_QUERY_VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["1", "0", "-1", "1e999", "nan", "inf", "10" * 600, "true", "red", "GREEN"]),
    st.sampled_from(["2024-05-01T12:30:00Z", "2024-13-01", "0000-00-00", str(uuid.UUID(int=7))]),
)
QUERIES = st.one_of(
    st.lists(st.tuples(_QUERY_NAMES, _QUERY_VALUES), max_size=8).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    ),
    st.binary(max_size=200),
)
_HEADER_NAMES = st.one_of(
    st.sampled_from(
        [b"x-token", b"cookie", b"content-type", b"content-length", b"accept", b"x-forwarded-for"]
    ),
    st.text("abcdefghijklmnopqrstuvwxyz-_!#$%&'*+.^`|~0123456789", min_size=1, max_size=20).map(
        str.encode
    ),
)
# Header values as servers pass them on: any byte but CR, LF and NUL.
_HEADER_VALUES = st.binary(max_size=120).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").replace(b"\0", b"")
)
COOKIES = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.tuples(st.sampled_from(["session", "a", "", " ", "$Path"]), st.text(max_size=20)),
        max_size=4,
    ).map(lambda pairs: "; ".join(f"{k}={v}" for k, v in pairs)),
    st.sampled_from(['session="\\"', 'session="abc', "session=\\\\\\\\", "=;=;=", ";;;"]),
)
JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def _order_fields() -> st.SearchStrategy[dict[str, Any]]:
    good = {
        "id": st.just(str(uuid.UUID(int=1))),
        "placed": st.just("2024-05-01T12:30:00+00:00"),
        "color": st.sampled_from(["red", "green"]),
        "lines": st.just([{"sku": "a", "quantity": 1}]),
    }
    # Each field is either right or any JSON value at all (wrong types, nulls, nesting).
    return st.fixed_dictionaries(
        {name: st.one_of(value, JSON_VALUES) for name, value in good.items()},
        optional={"matrix": JSON_VALUES, "note": JSON_VALUES, "extra": JSON_VALUES},
    )


def _nested(depth: int, kind: str) -> str:
    """``depth`` levels of arrays (``kind="["``) or objects (``kind="{"``)."""
    if kind == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    _order_fields().map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100),
    st.integers(1, 20_000).map(lambda n: _nested(n, "[").encode()),
    st.integers(1, 20_000).map(lambda n: _nested(n, "{").encode()),
    st.integers(1, 10_000).map(lambda n: ("9" * n).encode()),
    st.integers(1, 1000).map(lambda n: f"1e{n}".encode()),
    st.sampled_from(
        [b"NaN", b"-Infinity", b"\xef\xbb\xbf{}", b'"\xff"', b"\xc0\xaf", b'{"a":1,"a":2}', b""]
    ),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=utf-8",
            b"application/problem+json",
            b"APPLICATION/JSON",
            b"text/plain",
            b"multipart/form-data; boundary=x",
            b"application/x-www-form-urlencoded",
            b"",
        ]
    ),
    _HEADER_VALUES,
)


# --- properties ----------------------------------------------------------------------------------


class TestRequestLine:
    @FUZZ
    @given(method=st.sampled_from(METHODS), raw=RAW_PATHS, query=QUERIES)
    @example(method="GET", raw="/u/%FF/", query=b"")  # found by this test: 500 on the redirect
    @example(method="GET", raw="/u/%E6%97%A5/", query=b"a=%0d%0a")
    async def test_any_method_path_and_query_is_answered_below_500(
        self, method: str, raw: str, query: bytes
    ) -> None:
        """Random methods, percent-encoded paths and query strings never get a 5xx or leak."""
        path = unquote(raw)  # as hypercorn decodes the target
        answer = await call_asgi(APP, method, path, raw_path=raw.encode(), query=query)
        check(answer, method, sent=raw + query.decode("latin-1"))

    @FUZZ
    @given(
        item_id=st.one_of(st.text(max_size=20), st.integers().map(str)),
        pairs=st.lists(st.tuples(_QUERY_NAMES, _QUERY_VALUES), max_size=10),
    )
    async def test_typed_path_and_query_values_are_validated(
        self, item_id: str, pairs: list[tuple[str, str]]
    ) -> None:
        """Every typed path/query value is either accepted or named in a 422, never a 500."""
        from urllib.parse import quote, urlencode

        raw = "/items/" + quote(item_id, safe="")
        query = urlencode(pairs).encode()
        answer = await call_asgi(APP, "GET", unquote(raw), raw_path=raw.encode(), query=query)
        check(answer, "GET", sent=item_id + str(pairs))
        assert answer.status in (200, 404, 422), answer
        if answer.status == 422:
            locations = {e["loc"][0] for e in answer.json()["detail"]}
            assert locations <= {"path", "query"}, answer


class TestHeadersAndCookies:
    @FUZZ
    @given(
        headers=st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8),
        cookie=COOKIES,
    )
    async def test_any_headers_and_cookies_are_answered_below_500(
        self, headers: list[tuple[bytes, bytes]], cookie: str
    ) -> None:
        """Arbitrary header bytes and cookie strings reach typed parameters without a 5xx."""
        sent = [*headers, (b"cookie", cookie.encode("utf-8", "surrogatepass"))]
        answer = await call_asgi(APP, "GET", "/items/1", headers=sent)
        check(answer, "GET", sent=repr(sent))
        assert answer.status in (200, 422), answer


class TestBodies:
    @FUZZ
    @given(
        target=st.sampled_from(
            ["/orders/" + str(uuid.UUID(int=2)), "/things/a/b", "/multi", "/raw", "/json"]
        ),
        body=BODIES,
        content_type=CONTENT_TYPES,
        chunked=st.booleans(),
    )
    async def test_any_body_and_content_type_is_answered_below_500(
        self, target: str, body: bytes, content_type: bytes, chunked: bool
    ) -> None:
        """Deep nesting, huge numbers, wrong types, bad UTF-8 and odd content types: no 5xx."""
        method = "PUT" if target.startswith("/things") else "POST"
        headers = [(b"content-type", content_type)] if content_type else []
        if chunked:
            headers.append((b"transfer-encoding", b"chunked"))
            chunks: list[bytes] = [body[i : i + 700] for i in range(0, len(body), 700)] or [b""]
            answer = await call_asgi(APP, method, target, headers=headers, body=chunks)
        else:
            headers.append((b"content-length", str(len(body)).encode()))
            answer = await call_asgi(APP, method, target, headers=headers, body=body)
        check(answer, method, sent=body.decode("latin-1"))

    @FUZZ
    @given(order=_order_fields())
    async def test_typed_body_errors_are_located(self, order: dict[str, Any]) -> None:
        """A body that does not fit the model is a 422 whose items point into the body."""
        answer = await call_asgi(
            APP,
            "POST",
            "/orders/" + str(uuid.UUID(int=3)),
            headers=[(b"content-type", b"application/json")],
            body=json.dumps(order).encode(),
        )
        check(answer, "POST", sent=json.dumps(order))
        assert answer.status in (200, 422), answer
        if answer.status == 422:
            for item in answer.json()["detail"]:
                assert item["loc"][0] == "body", answer


# --- limits --------------------------------------------------------------------------------------


def _post(app: App, target: str, body: bytes | list[bytes]) -> Any:
    headers = [(b"content-type", b"application/json")]
    if isinstance(body, bytes):
        headers.append((b"content-length", str(len(body)).encode()))
    else:
        headers.append((b"transfer-encoding", b"chunked"))
    return call_asgi(app, "POST", target, headers=headers, body=body)


class TestLimits:
    @pytest.mark.parametrize(
        ("limits", "body_size", "depth", "params"),
        [({}, 1024 * 1024, 64, 1000), ({"max_body_size": 100, "max_json_depth": 3}, 100, 3, 1000)],
        ids=["defaults", "custom"],
    )
    async def test_each_limit_is_exact(
        self, limits: dict[str, int], body_size: int, depth: int, params: int
    ) -> None:
        """At the limit a request is served; one past it is a 413, 422 or 400 saying so."""
        if limits:
            limits["max_query_params"] = params = 5
        app = make_app(**limits)
        assert app.limits.max_body_size == body_size
        # Body size, announced by Content-Length and streamed without one.
        for body in (
            b"x" * body_size,
            [b"x" * (body_size // 2), b"x" * (body_size - body_size // 2)],
        ):
            assert (await _post(app, "/raw", body)).json() == body_size
        for body in (b"x" * (body_size + 1), [b"x" * body_size, b"x"]):
            answer = await _post(app, "/raw", body)
            assert answer.status == 413, answer
            assert "too large" in answer.json()["detail"]
        # JSON depth.
        assert (await _post(app, "/json", _nested(depth, "[").encode())).json() == "list"
        answer = await _post(app, "/json", _nested(depth + 1, "[").encode())
        assert answer.status == 422, answer
        assert f"nested deeper than {depth} levels" in answer.json()["detail"][0]["msg"]
        # Query parameters.
        query = "&".join(["tags=t"] * params).encode()
        assert (await call_asgi(app, "GET", "/items/1", query=query)).json()["tags"] == [
            "t"
        ] * params
        answer = await call_asgi(app, "GET", "/items/1", query=query + b"&tags=t")
        assert answer.status == 400, answer
        assert f"too many query parameters: {params + 1}" in answer.json()["detail"]
        assert_books_balance(app)

    async def test_enormous_inputs_are_refused_quickly(self) -> None:
        """Nesting far past the limit, a number of 10,000 digits: a 422 each, at once."""
        for body in (b"[" * 500_000, _nested(100_000, "{").encode(), b"1" * 10_000):
            answer = await _post(APP, "/json", body)
            assert answer.status == 422, answer
            assert_says_what_was_wrong(answer)
            assert_no_leak(answer.body)

    @FUZZ
    @given(
        limit=st.integers(0, 3000),
        size=st.integers(0, 3500),
        depth_limit=st.integers(1, 40),
        depth=st.integers(1, 50),
        params_limit=st.integers(1, 40),
        params=st.integers(1, 50),
    )
    async def test_random_limits_hold_exactly(
        self, limit: int, size: int, depth_limit: int, depth: int, params_limit: int, params: int
    ) -> None:
        """For any configured limits, a request is refused exactly when it exceeds one."""
        app = make_app(
            max_body_size=limit, max_json_depth=depth_limit, max_query_params=params_limit
        )
        answer = await _post(app, "/raw", b"x" * size)
        assert answer.status == (413 if size > limit else 200), answer
        body = _nested(depth, "[").encode()
        answer = await _post(app, "/json", body)
        expected = 413 if len(body) > limit else 422 if depth > depth_limit else 200
        assert answer.status == expected, answer
        query = "&".join(["tags=t"] * params).encode()
        answer = await call_asgi(app, "GET", "/items/1", query=query)
        assert answer.status == (400 if params > params_limit else 200), answer


# --- lone surrogates (#13) -----------------------------------------------------------------------

# Text that often holds surrogates (lone, or a high one next to a low one, which JSON pairs up).
_SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"])
_TEXT = st.lists(st.one_of(_SURROGATES, st.characters()), min_size=1, max_size=6).map("".join)
_JSON_VALUES = st.recursive(
    st.one_of(_TEXT, st.sampled_from([None, True, 0, -1.5, ""])),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=12,
)


def _is_text(value: Any) -> bool:
    """Whether ``value`` (as the server parses it) holds only encodable text."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class TestLoneSurrogates:
    async def test_lone_surrogate_in_a_model_field_is_a_located_422(self) -> None:
        """The issue's reproduction: ``{"name":"\\ud800","price":1}`` is a 422 at ``body.name``."""
        answer = await _post(APP, "/echo/named", b'{"name":"\\ud800","price":1}')
        assert answer.status == 422, answer
        (item,) = answer.json()["detail"]
        assert item["loc"] == ["body", "name"]
        assert "lone surrogate" in item["msg"]

    async def test_a_surrogate_pair_is_one_character_and_accepted(self) -> None:
        """``\\ud83d\\ude00`` is one emoji, not two lone halves."""
        answer = await _post(APP, "/echo/named", b'{"name":"\\ud83d\\ude00","price":1}')
        assert answer.status == 200, answer
        assert answer.json()["name"] == "\U0001f600"

    @FUZZ
    @given(value=_JSON_VALUES)
    async def test_any_json_with_surrogates_is_echoed_or_refused_located(self, value: Any) -> None:
        """Whatever escapes a body holds, the echo is a 200 with the same value or a 422 that
        points into the body; never a 500."""
        sent = json.dumps(value)  # ASCII: every surrogate travels as a \\uXXXX escape
        answer = await _post(APP, "/echo", sent.encode("ascii"))
        check(answer, "POST", sent=sent)
        if _is_text(json.loads(sent)):
            assert answer.status == 200, answer
            assert answer.json() == json.loads(sent)
        else:
            assert answer.status == 422, answer
            (item,) = answer.json()["detail"]
            assert item["loc"][0] == "body" and "lone surrogate" in item["msg"], answer

    @FUZZ
    @given(value=_JSON_VALUES)
    def test_responses_encode_any_string_as_valid_json(self, value: Any) -> None:
        """A handler's own lone surrogates are sent as JSON escapes, never a failure."""
        encoded = dump_json(value)
        assert json.loads(encoded.decode("utf-8")) == json.loads(json.dumps(value))


class TestDeclaredLength:
    @pytest.mark.parametrize("value", [b"\xb2", b"\xb2\xb3", b" 1\xb9 ", b"-1", b"1e3", b"0x10"])
    async def test_a_content_length_that_is_no_plain_number_is_never_a_500(
        self, value: bytes
    ) -> None:
        """``isdigit`` accepts ``"²"``; a Content-Length like that must not reach ``int``."""
        for target in ("/items/1", "/raw"):
            method = "GET" if target == "/items/1" else "POST"
            headers = [(b"content-length", value)]
            answer = await call_asgi(APP, method, target, headers=headers, body=b"x")
            check(answer, method, sent=repr(value))
