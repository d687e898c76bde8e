# The OpenAPI 3.1 document of an app: a pure function of its routes.
#
# Nothing here runs per request. ``openapi_document`` walks the routes once, reading what each
# route already compiled at declaration (its dependency ``Plan``: every path, query, header and
# cookie value it reads, with types, defaults and bounds, and its JSON body) rather than
# inspecting signatures again, so the document describes exactly what the solver enforces.
# Types become JSON Schema in ``_jsonschema.py``. ``OpenAPICache`` keeps the result (and its
# JSON bytes) until the router's or the dependency overrides' version changes; ``_docs.py``
# serves it at ``openapi_url``.
from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from ._dependencies import DependencyOverrides, Plan
from ._encode import dump_json
from ._forms import FORM_SOURCES, MULTIPART, URLENCODED
from ._jsonschema import Schema, SchemaRegistry, bounds, clean_doc, has_json_value, json_value
from ._response_model import UNSET, effective_model, return_annotation
from ._responses import JSONResponse, Response, StreamingResponse, no_body_status
from ._routing import compile_path

if TYPE_CHECKING:
    from ._routes import Route

OPENAPI_VERSION = "3.1.0"


@attrs.frozen(kw_only=True)
class OpenAPIInfo:
    """The document's ``info`` and ``servers``: what the API is called and where it lives."""

    title: str = "triobg"
    version: str = "0.1.0"
    description: str | None = None
    servers: tuple[Mapping[str, Any], ...] = ()


class _ValidationErrorShape:
    """Stands for the 422 item schema in the registry (a key, never instantiated)."""


class _HTTPValidationErrorShape:
    """Stands for the 422 body schema in the registry (a key, never instantiated)."""


# The 422 body triobg really sends (``_errors.validation_error_handler``): a list of located
# problems; ``loc`` mixes names and list indexes (``["body", "items", 2, "price"]``).
_VALIDATION_ERROR: Schema = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
        "msg": {"type": "string"},
        "type": {"type": "string"},
    },
    "required": ["loc", "msg", "type"],
}


def openapi_document(
    routes: Iterable[Route], overrides: DependencyOverrides, info: OpenAPIInfo
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes`` (those with ``include_in_schema``).

    Raises:
        ValueError: two operations were given the same explicit ``operation_id``.
    """
    registry = SchemaRegistry()
    paths: dict[str, dict[str, Any]] = {}
    ids = _OperationIds()
    for route in routes:
        if not route.include_in_schema:
            continue
        plan = route.solver(overrides).plan
        template = _openapi_path(route.path)
        methods = sorted(route.methods, key=_METHOD_ORDER.index)
        for method in methods:
            operation = _operation(route, plan, method, registry, ids, len(methods) > 1)
            if plan.readers:  # reads request values, so it can answer 422
                operation["responses"].setdefault(
                    "422",
                    {
                        "description": "Validation Error",
                        "content": {"application/json": {"schema": _validation_error(registry)}},
                    },
                )
            if plan.form_params:  # a form's body is parsed, and limited, before validation
                for status, description in _FORM_ERRORS:
                    operation["responses"].setdefault(status, _detail_response(description))
            paths.setdefault(template, {})[method.lower()] = operation
    document_info: dict[str, Any] = {"title": info.title, "version": info.version}
    if info.description:
        document_info["description"] = info.description
    document: dict[str, Any] = {"openapi": OPENAPI_VERSION, "info": document_info}
    if info.servers:
        document["servers"] = [dict(server) for server in info.servers]
    document["paths"] = paths
    schemas = registry.finish()  # names are fixed only now, every $ref rewritten
    if schemas:
        document["components"] = {"schemas": schemas}
    return document


_METHOD_ORDER = ["GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"]


def _openapi_path(path: str) -> str:
    """``/files/{rest:path}`` -> ``/files/{rest}``: OpenAPI templates have no converters."""
    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):[a-z]+\}", r"{\1}", path)


def _validation_error(registry: SchemaRegistry) -> Schema:
    """A ``$ref`` to the 422 body's schema, registering it (and its item) the first time."""
    if not registry.has(_HTTPValidationErrorShape):
        registry.add_raw(_ValidationErrorShape, copy.deepcopy(_VALIDATION_ERROR))
        registry.add_raw(
            _HTTPValidationErrorShape,
            {
                "title": "HTTPValidationError",
                "type": "object",
                "properties": {
                    "detail": {"type": "array", "items": registry.ref(_ValidationErrorShape)}
                },
                "required": ["detail"],
            },
        )
    return registry.ref(_HTTPValidationErrorShape)


class _OperationIds:
    """Hands out operation ids, unique across the document."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def explicit(self, wanted: str, route: Route, method: str, several: bool) -> str:
        found = f"{wanted}_{method.lower()}" if several else wanted
        if found in self.used:
            raise ValueError(
                f"operation_id {found!r} of {method} {route.path} is used by another operation; "
                "operation ids must be unique"
            )
        self.used.add(found)
        return found

    def generated(self, route: Route, method: str, several: bool) -> str:
        base = _identifier(route.name)
        candidates = [
            f"{base}_{method.lower()}" if several else base,
            f"{base}{_identifier(route.path)}_{method.lower()}",
        ]
        for candidate in candidates:
            if candidate not in self.used:
                self.used.add(candidate)
                return candidate
        number = 2
        while f"{candidates[-1]}_{number}" in self.used:
            number += 1
        found = f"{candidates[-1]}_{number}"
        self.used.add(found)
        return found


def _identifier(text: str) -> str:
    return re.sub(r"\W", "_", text)


def _operation(
    route: Route,
    plan: Plan,
    method: str,
    registry: SchemaRegistry,
    ids: _OperationIds,
    several: bool,
) -> dict[str, Any]:
    operation: dict[str, Any] = {}
    if route.tags:
        operation["tags"] = list(route.tags)
    operation["summary"] = route.summary or route.name.replace("_", " ").strip().capitalize()
    description = route.description
    if description is None:
        description = clean_doc(getattr(route.endpoint, "__doc__", None))
    if description:
        operation["description"] = description
    if route.operation_id:
        operation["operationId"] = ids.explicit(route.operation_id, route, method, several)
    else:
        operation["operationId"] = ids.generated(route, method, several)
    parameters = _parameters(route, plan, registry)
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(plan, registry)
    if body is not None:
        operation["requestBody"] = body
    operation["responses"] = _responses(route, registry)
    if route.deprecated:
        operation["deprecated"] = True
    if route.openapi_extra:
        _merge(operation, copy.deepcopy(dict(route.openapi_extra)))
    return operation


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _parameters(route: Route, plan: Plan, registry: SchemaRegistry) -> list[dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for reader in plan.readers:
        for spec in reader.params:
            key = (spec.source, spec.wire)
            if key in found or spec.source in FORM_SOURCES:  # read twice, or a body field
                continue
            annotation = spec.annotation
            schema = bounds(registry.schema(annotation), spec.marker, annotation)
            if not spec.required and has_json_value(spec.default) and spec.default is not None:
                schema["default"] = json_value(spec.default)
            parameter: dict[str, Any] = {
                "name": spec.wire,
                "in": spec.source,
                "required": spec.required,
                "schema": schema,
            }
            if spec.marker.description:
                parameter["description"] = spec.marker.description
            found[key] = parameter
    # A ``{name}`` in the path that no callable reads is still part of the URL.
    for name in compile_path(route.path).param_names:
        if ("path", name) not in found:
            found["path", name] = {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
            }
    return list(found.values())


#: What a form route may answer before its values are validated (``_multipart.py``,
#: ``_forms.py``): a body that is not a well-formed form, and one over the upload limits.
_FORM_ERRORS = (
    ("400", "Malformed form body (a bad multipart boundary, part or header)"),
    ("413", "Body, file, field or part count over the upload limits"),
)


def _detail_response(description: str) -> dict[str, Any]:
    """An error answered as ``{"detail": "..."}`` (``HTTPException``'s body)."""
    schema = {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    }
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _form_body(plan: Plan, registry: SchemaRegistry) -> dict[str, Any] | None:
    """A form's fields and files as one object schema, under its media type.

    Files are strings of ``format: binary`` (what Swagger UI turns into a file picker), in an
    array for ``list[UploadFile]``. A form with a file is ``multipart/form-data``, one without
    is documented as ``application/x-www-form-urlencoded`` (both are accepted either way).
    """
    properties: dict[str, Schema] = {}
    needed: list[str] = []
    has_file = False
    for spec in plan.form_params:
        if spec.wire in properties:
            continue
        if spec.source == "file":
            has_file = True
            prop: Schema = {"type": "string", "format": "binary"}
            if spec.many:
                prop = bounds({"type": "array", "items": prop}, spec.marker, list)
        else:
            prop = bounds(registry.schema(spec.annotation), spec.marker, spec.annotation)
            default = spec.default
            if not spec.required and has_json_value(default) and default is not None:
                prop["default"] = json_value(default)
        if spec.marker.description:
            prop["description"] = spec.marker.description
        if spec.required:
            needed.append(spec.wire)
        properties[spec.wire] = prop
    if not properties:
        return None
    schema: Schema = {"type": "object", "properties": properties}
    if needed:
        schema["required"] = needed
    media = MULTIPART if has_file else URLENCODED
    return {"content": {media: {"schema": schema}}, "required": bool(needed)}


def _request_body(plan: Plan, registry: SchemaRegistry) -> dict[str, Any] | None:
    if not plan.body:
        return _form_body(plan, registry)
    if not plan.embed_body:
        spec = plan.body[0]
        schema = bounds(registry.schema(spec.annotation), spec.marker, spec.annotation)
        if spec.marker.description:
            schema["description"] = spec.marker.description
        required = spec.required
    else:
        properties: dict[str, Schema] = {}
        needed: list[str] = []
        for spec in plan.body:
            prop = bounds(registry.schema(spec.annotation), spec.marker, spec.annotation)
            if spec.marker.description:
                prop["description"] = spec.marker.description
            if spec.required:
                needed.append(spec.wire)
            elif has_json_value(spec.default) and spec.default is not None:
                prop["default"] = json_value(spec.default)
            properties[spec.wire] = prop
        schema = {"type": "object", "properties": properties}
        if needed:
            schema["required"] = needed
        required = bool(needed)
    return {"content": {"application/json": {"schema": schema}}, "required": required}


def _responses(route: Route, registry: SchemaRegistry) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    status = str(route.status_code)
    success: dict[str, Any] = {"description": route.response_description}
    if not no_body_status(route.status_code):
        model = effective_model(route.endpoint, route.response_model, route.scope)
        annotation = return_annotation(route.endpoint, route.scope)
        response_class = route.response_class
        if isinstance(annotation, type) and issubclass(annotation, Response):
            response_class = annotation
        media = response_class.media_type
        if issubclass(response_class, StreamingResponse) and media is None:
            media = "application/octet-stream"
        if media is not None:
            schema: Schema = {}
            if model is not UNSET and issubclass(route.response_class, JSONResponse):
                schema = registry.schema(model)
            elif media.startswith("text/"):
                schema = {"type": "string"}
            elif media == "application/octet-stream":
                schema = {"type": "string", "format": "binary"}
            success["content"] = {media: {"schema": schema}}
    responses[status] = success
    for code, extra in route.responses.items():
        responses[str(code)] = _extra_response(extra, registry, responses.get(str(code)))
    return responses


def _extra_response(
    extra: Mapping[str, Any], registry: SchemaRegistry, existing: Mapping[str, Any] | None
) -> dict[str, Any]:
    result: dict[str, Any] = dict(existing or {})
    for key, value in extra.items():
        if key == "model":
            content = dict(result.get("content") or {})
            content["application/json"] = {"schema": registry.schema(value)}
            result["content"] = content
        else:
            result[key] = value
    result.setdefault("description", "Additional Response")
    return result


@attrs.define
class OpenAPICache:
    """The app's document and its JSON, built on first use and kept until the routes change.

    ``key`` is the router's ``version`` (bumped by every ``add_route``) with the dependency
    overrides' ``version`` (an override can change what a route reads).
    """

    _key: tuple[int, int] | None = None
    _document: dict[str, Any] | None = None
    _encoded_for: dict[str, Any] | None = None
    _json: bytes = b""

    def document(self, key: tuple[int, int], build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached document, or ``build()``'s when ``key`` has changed."""
        if self._document is None or self._key != key:
            self._document = build()
            self._key = key
        return self._document

    def json(self, document: dict[str, Any]) -> bytes:
        """``document`` as JSON bytes, encoded again only when it is a different object (an
        ``openapi()`` override that returns the same dict each time is encoded once too)."""
        if document is not self._encoded_for:
            self._json = dump_json(document)
            self._encoded_for = document
        return self._json
