"""``URL`` and ``Address`` (``triobg._url``): the parts of a URL, and the URL of a request scope."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triobg import URL, Address
from triobg._url import split_root


def scope(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "scheme": "http",
        "path": "/items/1",
        "raw_path": b"/items/1",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.org")],
        "server": ("127.0.0.1", 8000),
        "client": ("10.0.0.1", 5555),
    }
    base.update(overrides)
    return base


class TestURLParts:
    def test_parts_of_an_absolute_url(self) -> None:
        """Scheme, netloc, hostname, port, path, query and fragment come from the text."""
        url = URL("https://User@Example.org:8443/a%20b/c?x=1&y=2#top")
        assert url.scheme == "https"
        assert url.netloc == "User@Example.org:8443"
        assert url.hostname == "example.org"
        assert url.port == 8443
        assert url.username == "User"
        assert url.path == "/a b/c"
        assert url.query == "x=1&y=2"
        assert url.fragment == "top"
        assert url.is_secure
        assert str(url) == "https://User@Example.org:8443/a%20b/c?x=1&y=2#top"

    def test_a_bad_port_is_none_not_an_error(self) -> None:
        """``port`` on ``host:99999`` is ``None`` rather than a ValueError at request time."""
        assert URL("http://example.org:99999/").port is None

    def test_equal_to_its_text(self) -> None:
        """A URL equals its own text and hashes like it (as Starlette's does)."""
        assert URL("http://a/b") == "http://a/b"
        assert URL("http://a/b") == URL("http://a/b")
        assert URL("http://a/b") != URL("http://a/c")
        assert len({URL("http://a/b"), URL("http://a/b")}) == 1

    def test_replace_parts(self) -> None:
        """``replace`` changes one part; ``path`` is encoded, ``hostname``/``port`` rebuild it."""
        url = URL("http://example.org/a?x=1")
        assert str(url.replace(scheme="https")) == "https://example.org/a?x=1"
        assert str(url.replace(path="/a b")) == "http://example.org/a%20b?x=1"
        assert str(url.replace(port=8080)) == "http://example.org:8080/a?x=1"
        assert str(url.replace(hostname="::1")) == "http://[::1]/a?x=1"
        with pytest.raises(TypeError, match="unknown part"):
            url.replace(host="x")

    def test_query_param_helpers(self) -> None:
        """``include``/``replace``/``remove_query_params`` edit the query and nothing else."""
        url = URL("http://h/p?a=1&b=2&a=3")
        assert url.query_params == [("a", "1"), ("b", "2"), ("a", "3")]
        assert str(url.include_query_params(a="x y")) == "http://h/p?b=2&a=x+y"
        assert str(url.replace_query_params(c=1)) == "http://h/p?c=1"
        assert str(url.remove_query_params("a")) == "http://h/p?b=2"
        assert str(url.remove_query_params(["a", "b"])) == "http://h/p"


class TestFromScope:
    def test_host_header_wins(self) -> None:
        """The ``Host`` header names the host, with its port, as the client asked."""
        url = URL.from_scope(scope(headers=[(b"host", b"example.org:81")], query_string=b"q=1"))
        assert str(url) == "http://example.org:81/items/1?q=1"
        assert (url.hostname, url.port, url.query) == ("example.org", 81, "q=1")

    def test_server_when_there_is_no_host_header(self) -> None:
        """Without ``Host``, the server's address (its port left out when it is the default)."""
        assert str(URL.from_scope(scope(headers=[]))) == "http://127.0.0.1:8000/items/1"
        https = scope(headers=[], scheme="https", server=("example.org", 443))
        assert str(URL.from_scope(https)) == "https://example.org/items/1"
        ipv6 = scope(headers=[], server=("::1", 80))
        assert str(URL.from_scope(ipv6)) == "http://[::1]/items/1"

    def test_no_host_at_all_gives_a_reference(self) -> None:
        """No ``Host`` and no ``server``: the URL is the path alone, never a crash."""
        url = URL.from_scope(scope(headers=[], server=None))
        assert str(url) == "/items/1"
        assert url.hostname is None

    @pytest.mark.parametrize(
        "host", [b"evil.example/x", b"a@evil.example", b"a b", b"h\\x", b"", b"h?x", b"h#x"]
    )
    def test_a_host_header_that_would_change_the_url_is_ignored(self, host: bytes) -> None:
        """A ``Host`` with ``/``, ``@``, spaces... is not trusted: the server's address is used."""
        url = URL.from_scope(scope(headers=[(b"host", host)]))
        assert str(url) == "http://127.0.0.1:8000/items/1"

    def test_root_path_in_front_whether_or_not_path_holds_it(self) -> None:
        """``root_path`` + the path below it, for both readings of the ASGI spec."""
        stripped = scope(root_path="/api", path="/items/1", raw_path=b"/items/1")
        kept = scope(root_path="/api", path="/api/items/1", raw_path=b"/api/items/1")
        assert str(URL.from_scope(stripped)) == "http://example.org/api/items/1"
        assert str(URL.from_scope(kept)) == "http://example.org/api/items/1"
        assert str(URL.from_scope(kept, base=True)) == "http://example.org/api/"
        assert str(URL.from_scope(scope(), base=True)) == "http://example.org/"

    def test_the_clients_escapes_are_kept(self) -> None:
        """An encoded ``/`` inside a segment stays encoded; ``.path`` is decoded."""
        url = URL.from_scope(scope(path="/files/a/b c", raw_path=b"/files/a%2Fb%20c"))
        assert str(url) == "http://example.org/files/a%2Fb%20c"
        assert url.path == "/files/a/b c"

    def test_a_rewritten_path_is_encoded_from_the_decoded_form(self) -> None:
        """When ``raw_path`` no longer fits ``path`` (a middleware rewrote it), ``path`` wins."""
        url = URL.from_scope(scope(path="/new path", raw_path=b"/old"))
        assert str(url) == "http://example.org/new%20path"


class TestSplitRoot:
    @pytest.mark.parametrize(
        ("root", "path", "raw", "expected"),
        [
            ("", "/a", b"/a", ("/a", b"/a")),
            ("/api", "/api/a", b"/api/a", ("/a", b"/a")),
            ("/api", "/api", b"/api", ("/", b"/")),
            ("/api", "/a", b"/a", ("/a", b"/a")),  # a proxy took the prefix out already
            ("/api", "/apix", b"/apix", ("/apix", b"/apix")),  # not below /api
            ("/a b", "/a b/c%", b"/a%20b/c%25", ("/c%", b"/c%25")),
            ("/api", "/api/x", None, ("/x", None)),
        ],
    )
    def test_the_path_below_the_root(
        self, root: str, path: str, raw: bytes | None, expected: tuple[str, bytes | None]
    ) -> None:
        """The routed path is what lies below ``root_path``, decoded and raw."""
        assert split_root(scope(root_path=root, path=path, raw_path=raw)) == expected


def test_address_is_a_tuple_with_names() -> None:
    """``Address`` unpacks like the ``(host, port)`` tuple it replaces."""
    address = Address("10.0.0.1", 5555)
    host, port = address
    assert (host, port) == (address.host, address.port) == ("10.0.0.1", 5555)
    assert address == ("10.0.0.1", 5555)


@settings(max_examples=200, deadline=None, database=None)
@given(path=st.text(min_size=0, max_size=30).map(lambda text: "/" + text), keep_raw=st.booleans())
def test_the_path_survives_the_round_trip(path: str, keep_raw: bool) -> None:
    """Whatever the decoded path, ``URL.from_scope(...).path`` gives it back, and the URL text
    parses to the same path."""
    try:
        raw = quote(path, safe="/").encode("ascii")
    except UnicodeEncodeError:
        return  # lone surrogates: no server produces them
    url = URL.from_scope(scope(path=path, raw_path=raw if keep_raw else None))
    assert url.path == path
    assert URL(str(url)).path == path
    assert url.hostname == "example.org"
