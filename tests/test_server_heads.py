"""The native server's response heads: validated by h11 once per distinct head, then reused."""

from __future__ import annotations

import h11
import pytest

from triobg._server import _heads
from triobg._server._heads import MAX_HEADS, response_head


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    _heads._heads.clear()


class TestResponseHead:
    def test_a_repeated_head_is_the_same_event(self) -> None:
        """The second identical head is the event h11 validated the first time."""
        headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
        first = response_head(200, headers)
        assert response_head(200, list(headers)) is first
        assert first.status_code == 200
        assert first.reason == b"OK"
        assert list(first.headers) == headers

    def test_a_different_head_is_a_different_event(self) -> None:
        """Heads differing in status or in one header value are built separately."""
        headers = [(b"content-length", b"2")]
        ok = response_head(200, headers)
        assert response_head(201, headers) is not ok
        assert list(response_head(200, [(b"content-length", b"3")]).headers) == [
            (b"content-length", b"3")
        ]

    @pytest.mark.parametrize(
        "header",
        [(b"x-bad", b"a\r\nset-cookie: evil=1"), (b"bad name", b"x"), (b"content-length", b"x")],
    )
    def test_a_bad_header_is_refused_every_time(self, header: tuple[bytes, bytes]) -> None:
        """h11 refuses a head with a bad header, and such a head is never kept."""
        for _ in range(2):
            with pytest.raises(h11.LocalProtocolError):
                response_head(200, [header])
        assert not _heads._heads

    def test_pairs_given_as_lists_are_validated_uncached(self) -> None:
        """Header pairs that cannot be a key (ASGI allows lists) still get a validated head."""
        head = response_head(200, [[b"content-length", b"2"]])  # type: ignore[list-item]
        assert list(head.headers) == [(b"content-length", b"2")]
        with pytest.raises(h11.LocalProtocolError):
            response_head(200, [[b"x", b"a\nb"]])  # type: ignore[list-item]
        assert not _heads._heads

    def test_the_cache_is_bounded(self) -> None:
        """Heads that differ every time never keep more than MAX_HEADS events."""
        for i in range(MAX_HEADS * 2 + 1):
            response_head(200, [(b"set-cookie", b"id=%d" % i)])
            assert len(_heads._heads) <= MAX_HEADS
