"""The native server's pure parts: request targets, the ASGI scope, the response head's
constants, and the configuration's validation."""

from __future__ import annotations

import re

import pytest

from triobg._server._config import ServerConfig
from triobg._server._scope import (
    UNREAD_BODY_EXTENSION,
    BadTarget,
    build_scope,
    date_header,
    decode_path,
    reason,
    split_target,
)


class TestTargets:
    @pytest.mark.parametrize(
        ("target", "expected"),
        [
            (b"/items/1?q=2", (b"/items/1", b"q=2")),
            (b"/", (b"/", b"")),
            (b"http://example.com/ping?x=1", (b"/ping", b"x=1")),
            (b"https://example.com:8443/a/b", (b"/a/b", b"")),
            (b"http://example.com", (b"/", b"")),
            (b"http://example.com?x=1", (b"/", b"x=1")),
            (b"*", (b"*", b"")),
        ],
    )
    def test_origin_absolute_and_asterisk_forms(
        self, target: bytes, expected: tuple[bytes, bytes]
    ) -> None:
        """Absolute-form targets are routed by their path; the query stays the query."""
        assert split_target(target) == expected

    @pytest.mark.parametrize("target", [b"ping", b"example.com:80", b"://x/y", b"1a://x/"])
    def test_other_targets_are_refused(self, target: bytes) -> None:
        """Anything else is a bad target (the server answers 400)."""
        with pytest.raises(BadTarget):
            split_target(target)

    def test_path_is_percent_decoded_as_utf8(self) -> None:
        """``path`` is decoded, ``raw_path`` keeps the bytes as sent."""
        assert decode_path(b"/caf%C3%A9/a%2Fb") == "/café/a/b"
        assert decode_path(b"/plain") == "/plain"
        assert decode_path(b"/bad%FF") == "/bad\ufffd"


class TestScope:
    def test_scope_is_complete(self) -> None:
        """Every key of the ASGI http scope is there, headers as bytes pairs."""
        headers = [(b"host", b"example.com"), (b"x-a", b"1")]
        scope = build_scope(
            b"POST",
            b"/p%20q?x=1",
            b"1.1",
            headers,
            scheme="https",
            client=("10.0.0.1", 5555),
            server=("127.0.0.1", 443),
            root_path="/api",
            state={"db": 1},
        )
        assert scope == {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "https",
            "path": "/p q",
            "raw_path": b"/p%20q",
            "query_string": b"x=1",
            "root_path": "/api",
            "headers": headers,
            "client": ("10.0.0.1", 5555),
            "server": ("127.0.0.1", 443),
            "state": {"db": 1},
            "extensions": {UNREAD_BODY_EXTENSION: {}},
        }

    def test_state_is_a_copy_per_request(self) -> None:
        """A request writing to its state does not change the lifespan's."""
        state = {"a": 1}
        scope = build_scope(
            b"GET",
            b"/",
            b"1.0",
            [],
            scheme="http",
            client=None,
            server=None,
            root_path="",
            state=state,
        )
        scope["state"]["b"] = 2
        assert state == {"a": 1}
        assert scope["http_version"] == "1.0"


class TestHead:
    def test_reason_phrases(self) -> None:
        """Known codes have their phrase; unknown ones none."""
        assert reason(200) == b"OK"
        assert reason(431) == b"Request Header Fields Too Large"
        assert reason(599) == b""

    def test_date_header_is_an_http_date(self) -> None:
        """IMF-fixdate, as RFC 9110 asks."""
        value = date_header().decode()
        assert re.fullmatch(r"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT", value)


class TestConfig:
    def test_defaults_are_bounded(self) -> None:
        """Every timeout has a finite default."""
        config = ServerConfig()
        assert config.header_timeout == 10.0
        assert config.read_timeout == 30.0
        assert config.keep_alive_timeout == 5.0
        assert config.send_timeout == 60.0

    @pytest.mark.parametrize("field", ["header_timeout", "read_timeout", "send_timeout"])
    @pytest.mark.parametrize("value", [0, -1, float("nan")])
    def test_timeouts_must_be_positive(self, field: str, value: float) -> None:
        """A zero, negative or NaN timeout is refused when the config is built."""
        with pytest.raises(ValueError, match=field):
            ServerConfig(**{field: value})  # type: ignore[arg-type]

    def test_keep_alive_may_be_zero(self) -> None:
        """``--keep-alive 0`` (no keep-alive) is valid; a negative one is not."""
        assert ServerConfig(keep_alive_timeout=0).keep_alive_timeout == 0
        with pytest.raises(ValueError, match="keep_alive_timeout"):
            ServerConfig(keep_alive_timeout=-1)

    def test_limits_must_be_at_least_one(self) -> None:
        """A limit of 0 would refuse everything."""
        with pytest.raises(ValueError, match="max_requests_in_flight"):
            ServerConfig(max_requests_in_flight=0)
