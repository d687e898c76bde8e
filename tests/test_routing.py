"""Path compilation and lookup (pure): shapes, priorities, encoding, scale."""

from __future__ import annotations

import pytest

from triobg._routing import PathTable, compile_path


class TestCompile:
    @pytest.mark.parametrize(
        ("path", "message"),
        [
            ("items", "must start with '/'"),
            ("/files/{name}.txt", "whole segment"),
            ("/a/{x}/{x}", "appears twice"),
            ("/a/{rest:path}/b", "last segment"),
            ("/a/{x:int}", "unknown converter"),
            ("/a/{1x}", "not a valid parameter name"),
        ],
    )
    def test_malformed_paths_are_rejected_at_declaration(self, path: str, message: str) -> None:
        """Mistakes in a route path fail when the route is declared, with the reason."""
        with pytest.raises(ValueError, match=message):
            compile_path(path)

    def test_param_names_in_order(self) -> None:
        """Parameter names come out in path order; a static path has none."""
        assert compile_path("/u/{uid}/f/{rest:path}").param_names == ("uid", "rest")
        assert compile_path("/about").is_static


class TestMatch:
    def make(self) -> PathTable[str]:
        table: PathTable[str] = PathTable()
        table.add("/", frozenset({"GET"}), "root")
        table.add("/users/me", frozenset({"GET"}), "me")
        table.add("/users/{uid}", frozenset({"GET", "DELETE"}), "user")
        table.add("/users/{uid}/posts/{pid}", frozenset({"GET"}), "post")
        table.add("/files/{rest:path}", frozenset({"GET"}), "file")
        table.add("/items/", frozenset({"POST"}), "items-slash")
        return table

    def test_static_paths_win_over_parameters(self) -> None:
        """``/users/me`` is not read as ``uid="me"``."""
        found = self.make().match("/users/me")
        assert found is not None
        endpoints, _, _ = found
        assert endpoints["GET"] == "me"

    def test_parameters_are_captured(self) -> None:
        """Values come back as strings, named by the template."""
        found = self.make().match("/users/7/posts/99")
        assert found is not None
        _, params, template = found
        assert dict(params) == {"uid": "7", "pid": "99"}
        assert template == "/users/{uid}/posts/{pid}"

    def test_backtracking_from_a_static_branch(self) -> None:
        """``/users/me/posts/1`` falls back from the static ``me`` to the ``{uid}`` branch."""
        found = self.make().match("/users/me/posts/1")
        assert found is not None and dict(found[1]) == {"uid": "me", "pid": "1"}

    def test_catch_all_takes_the_rest_including_slashes(self) -> None:
        """``{rest:path}`` swallows every remaining segment."""
        found = self.make().match("/files/a/b/c.txt")
        assert found is not None and dict(found[1]) == {"rest": "a/b/c.txt"}

    def test_encoded_slash_stays_inside_its_segment(self) -> None:
        """``%2F`` in the raw path is part of the parameter, not a separator."""
        found = self.make().match("/users/a/b", raw_path=b"/users/a%2Fb")
        assert found is not None and dict(found[1]) == {"uid": "a/b"}

    @pytest.mark.parametrize("path", ["/nope", "/users", "/users/1/posts", "/users//posts/1"])
    def test_unknown_paths_do_not_match(self, path: str) -> None:
        """Missing segments, extra segments and empty parameters are misses."""
        assert self.make().match(path) is None

    def test_methods_are_kept_per_shape(self) -> None:
        """One shape can hold several methods; the same method twice is an error."""
        table = self.make()
        found = table.match("/users/1")
        assert found is not None and set(found[0]) == {"GET", "DELETE"}
        with pytest.raises(ValueError, match="already registered"):
            table.add("/users/{uid}", frozenset({"GET"}), "again")

    def test_same_shape_with_other_names_is_rejected(self) -> None:
        """``/users/{id}`` beside ``/users/{uid}`` would be ambiguous about names."""
        with pytest.raises(ValueError, match="different parameter names"):
            self.make().add("/users/{id}", frozenset({"PUT"}), "x")

    def test_iteration_lists_everything(self) -> None:
        """The table can be listed (for docs, debugging)."""
        assert ("/users/{uid}", "DELETE", "user") in set(self.make())

    def test_a_thousand_routes_still_match_by_walking_the_path(self) -> None:
        """Lookup follows the path's segments, so many routes do not slow each other down."""
        table: PathTable[int] = PathTable()
        for i in range(1000):
            table.add(f"/r{i}/{{x}}/leaf", frozenset({"GET"}), i)
            table.add(f"/static/{i}", frozenset({"GET"}), i)
        found = table.match("/r999/abc/leaf")
        assert found is not None and found[0]["GET"] == 999
        assert table.match("/static/500") is not None
        assert len(table._root.static) == 1000  # one branch per first segment, no list scan
