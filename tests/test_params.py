"""Parameter markers' constraints: ``pattern=`` on every marker, checked where bounds are."""

import re
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triobg import App, Body, Cookie, Header, Path, Query
from triobg._params import ParamInfo
from triobg.testing import TestClient

MISMATCH = "string_pattern_mismatch"


def _app() -> App:
    app = App()

    @app.get("/codes/{code}")
    async def codes(
        code: Annotated[str, Path(pattern=r"^[A-Z]{3}$")],
        tags: Annotated[list[str], Query(pattern=r"^#")] = [],  # noqa: B006 - never mutated
        agent: Annotated[str | None, Header(pattern=r"^curl/")] = None,
        session: Annotated[str | None, Cookie(pattern=r"^[0-9a-f]+$")] = None,
    ) -> dict[str, Any]:
        return {"code": code, "tags": tags, "agent": agent, "session": session}

    @app.post("/names")
    async def names(
        name: Annotated[str, Body(pattern=r"^\w+$")], nick: Annotated[str, Body(pattern="x")]
    ) -> str:
        return name + nick

    return app


class TestPattern:
    async def test_every_source_reports_its_mismatch_located(self) -> None:
        """Path, query (per list item), header and cookie mismatches are all listed, located."""
        async with TestClient(_app()) as client:
            response = await client.get(
                "/codes/abc?tags=%23a&tags=b",
                headers={"agent": "wget/1", "cookie": "session=XYZ"},
            )
        assert response.status_code == 422
        assert [(e["loc"], e["type"]) for e in response.json()["detail"]] == [
            (["path", "code"], MISMATCH),
            (["query", "tags", 1], MISMATCH),
            (["header", "agent"], MISMATCH),
            (["cookie", "session"], MISMATCH),
        ]
        assert response.json()["detail"][0]["msg"] == "must match the pattern '^[A-Z]{3}$'"

    async def test_matching_values_pass(self) -> None:
        """Values that match every pattern reach the handler unchanged."""
        async with TestClient(_app()) as client:
            response = await client.get(
                "/codes/ABC?tags=%23a", headers={"agent": "curl/8", "cookie": "session=beef"}
            )
        assert response.json() == {
            "code": "ABC", "tags": ["#a"], "agent": "curl/8", "session": "beef"
        }  # fmt: skip

    async def test_body_fields_are_checked_with_json_locations(self) -> None:
        """Body fields with a pattern report under ``["body", name]``, all of them."""
        async with TestClient(_app()) as client:
            bad = await client.post("/names", json={"name": "a b", "nick": "y"})
            good = await client.post("/names", json={"name": "ab", "nick": "xy"})
        assert [e["loc"] for e in bad.json()["detail"]] == [["body", "name"], ["body", "nick"]]
        assert (good.status_code, good.json()) == (200, "abxy")

    def test_pattern_is_compiled_once_and_a_bad_one_fails_where_written(self) -> None:
        """The marker holds the compiled expression; an invalid one is a ValueError at once."""
        marker: ParamInfo = Query(pattern="^a+$")
        assert marker.pattern == "^a+$"  # as written: what the OpenAPI document shows
        assert marker.regex is not None and marker.regex.search("aa")
        with pytest.raises(ValueError, match="not a valid regular expression"):
            Query(pattern="(")

    def test_pattern_on_a_non_string_fails_at_declaration(self) -> None:
        """``pattern=`` on an int is a TypeError when the route is declared, not per request."""
        app = App()
        with pytest.raises(TypeError, match="pattern= applies to strings"):

            @app.get("/")
            async def handler(n: Annotated[int, Query(pattern="1")]) -> int:
                return n

    def test_openapi_carries_the_pattern(self) -> None:
        """The schema of each parameter, and of each list item, has the pattern."""
        operation = _app().openapi()["paths"]["/codes/{code}"]["get"]
        schemas = {p["name"]: p["schema"] for p in operation["parameters"]}
        assert schemas["code"]["pattern"] == "^[A-Z]{3}$"
        assert schemas["tags"]["items"]["pattern"] == "^#"
        assert schemas["agent"]["anyOf"][0]["pattern"] == "^curl/"

    def test_dollar_is_the_end_of_the_value(self) -> None:
        """``$`` does not match before a final newline (JSON Schema's and pydantic's meaning)."""
        marker: ParamInfo = Query(pattern=r"^[a-z]+$")
        assert marker.check("abc", ()) == []
        assert marker.check("abc\n", ()) != []
        literal: ParamInfo = Query(pattern=r"^\$[0-9]+[$]?$")  # escaped and in a class: literal
        assert literal.check("$5$", ()) == []

    @settings(max_examples=100, deadline=None, database=None)
    @given(
        pattern=st.sampled_from([r"^[a-z]+$", r"\d", r"^ab|cd$", r"(?i)x", r"b+$"]),
        text=st.text() | st.text().map(lambda t: t + "\n"),
    )
    def test_a_value_passes_exactly_when_the_pattern_is_found(
        self, pattern: str, text: str
    ) -> None:
        """Semantics are a search (pydantic v2's and JSON Schema's): unanchored, ``$`` the end."""
        marker: ParamInfo = Query(pattern=pattern)
        problems = marker.check(text, ("query", "q"))
        expected = re.search(pattern.replace("$", r"\Z"), text) is not None
        assert (problems == []) == expected


def _ellipsis_app() -> App:
    app = App()

    @app.post("/items/{item_id}")
    async def defaults(
        item_id: int = Path(...),
        q: str = Query(...),
        x_token: str = Header(...),
        session: str = Cookie(...),
        name: str = Body(..., embed=True),
    ) -> list[Any]:
        return [item_id, q, x_token, session, name]

    @app.post("/annotated/{item_id}")
    async def annotated(
        item_id: Annotated[int, Path(...)],
        q: Annotated[str, Query(...)],
        x_token: Annotated[str, Header()] = ...,  # type: ignore[assignment]
        session: Annotated[str, Cookie(...)] = ...,  # type: ignore[assignment]
        name: Annotated[str, Body(..., embed=True)] = ...,  # type: ignore[assignment]
    ) -> list[Any]:
        return [item_id, q, x_token, session, name]

    return app


class TestEllipsisMeansRequired:
    @pytest.mark.parametrize("path", ["/items/1", "/annotated/1"])
    async def test_missing_values_are_located_422s(self, path: str) -> None:
        """``...`` as a default, or as the marker's default, makes every source required."""
        async with TestClient(_ellipsis_app()) as client:
            missing = await client.post(path, json={})
            given = await client.post(
                path + "?q=a",
                headers={"x-token": "t", "cookie": "session=s"},
                json={"name": "n"},
            )
        assert missing.status_code == 422
        assert sorted(e["loc"] for e in missing.json()["detail"]) == [
            ["body", "name"], ["cookie", "session"], ["header", "x-token"], ["query", "q"]
        ]  # fmt: skip
        assert given.json() == [1, "a", "t", "s", "n"]

    def test_openapi_lists_them_as_required(self) -> None:
        """The OpenAPI document calls ``...`` parameters required and gives them no default."""
        document = _ellipsis_app().openapi()
        for path in ("/items/{item_id}", "/annotated/{item_id}"):
            operation = document["paths"][path]["post"]
            for parameter in operation["parameters"]:
                assert parameter["required"] is True, (path, parameter)
                assert "default" not in parameter["schema"], (path, parameter)
            body = operation["requestBody"]
            assert body["required"] is True
            schema = body["content"]["application/json"]["schema"]
            schema = document["components"]["schemas"].get(
                schema.get("$ref", "").rsplit("/", 1)[-1], schema
            )
            assert schema["required"] == ["name"], schema
