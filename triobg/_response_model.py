# ``response_model``: what a route promises to send, enforced on what the handler returns.
#
# Sits at the end of the pipeline's "call handler -> build response" step: ``Route.make_response``
# passes the handler's return value through the route's filter (worked out here once, when the
# route is declared) before encoding it. The filter goes through the same cattrs converter that
# reads request bodies: unstructure what the handler returned, structure it as the model (fields
# the model does not declare are dropped, wrong types fail), unstructure again as the model. So a
# handler that returns a user record with its password hash, under ``response_model=UserOut``,
# sends only ``UserOut``'s fields. Routes without a model get no filter and pay nothing.
from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any

from ._convert import ErrorDetail, errors_from_structuring, json_type_problem, model_class
from ._encode import converter
from ._responses import Response
from ._scope import MODULE_SCOPE, Scope, resolve_models, type_hints


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


#: ``response_model`` not given: the return annotation decides.
UNSET: Any = _Unset()

ResponseFilter = Callable[[Any], Any]


class ResponseValidationError(Exception):
    """A handler returned a value that does not fit its route's ``response_model``.

    This is a bug on the server side, so it is answered with a 500 (and logged with the problems
    listed) rather than sent: the client must never get a body that contradicts the schema.

    Attributes:
        errors: Every problem, located under ``"response"``.
        route: ``"GET /users/{id}"``-style name of the route.
    """

    def __init__(self, errors: list[ErrorDetail], route: str) -> None:
        details = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors)
        super().__init__(
            f"{route} returned a value that does not match its response_model: {details}"
        )
        self.errors = errors
        self.route = route


def return_annotation(endpoint: Callable[..., Any], scope: Scope = MODULE_SCOPE) -> Any:
    """The handler's resolved return annotation, or ``UNSET`` when it has none (or it cannot
    be resolved: the dependency compiler then refuses the route with the missing name)."""
    target: Any = endpoint
    if not callable(target):
        return UNSET
    try:
        hints = type_hints(target, scope)
    except TypeError:
        return UNSET
    return hints.get("return", UNSET)


def _mentions_model(annotation: Any) -> bool:
    if model_class(annotation):
        return True
    return any(_mentions_model(arg) for arg in typing.get_args(annotation))


def is_response_class(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Response)


def effective_model(
    endpoint: Callable[..., Any], response_model: Any, scope: Scope = MODULE_SCOPE
) -> Any:
    """The type the route's success body is documented (and, for models, filtered) as.

    ``UNSET`` means "not known": an explicit ``response_model=None``, no return annotation, or a
    ``Response`` class (those are documented by their media type only).
    """
    model = return_annotation(endpoint, scope) if response_model is UNSET else response_model
    if typing.get_origin(model) in (typing.Union, types.UnionType):
        # ``-> Item | JSONResponse``: a returned ``Response`` is sent as it is, so only the
        # other members describe (and filter) the body.
        kept = [a for a in typing.get_args(model) if not is_response_class(a)]
        if len(kept) < len(typing.get_args(model)):
            model = typing.Union[tuple(kept)] if kept else None  # noqa: UP007 - built at run time
    if model is None or model is type(None) or is_response_class(model):
        return UNSET
    return model


def response_filter(
    endpoint: Callable[..., Any], response_model: Any, path: str, scope: Scope = MODULE_SCOPE
) -> ResponseFilter | None:
    """The validate-and-filter step for a route, or ``None`` when it has none.

    An explicit ``response_model`` always filters. A return annotation filters only when it
    names a model (an attrs class, a dataclass or a pydantic model: ``-> UserOut``,
    ``-> list[UserOut]``, ``-> UserOut | None``): that is where fields can leak;
    ``-> dict[str, Any]`` stays a plain, free, ``json.dumps``.

    Raises:
        TypeError: the model (explicit, or the return annotation) has a part triobg cannot write
            as JSON; as FastAPI, ``response_model=None`` opts out of the check.
    """
    model = effective_model(endpoint, response_model, scope)
    if model is UNSET:
        return None
    resolve_models(model, scope)
    problem = json_type_problem(model, reading=False)
    if problem is not None:
        source = "response_model" if response_model is not UNSET else "return annotation"
        raise TypeError(
            f"route {path!r}: cannot use {model!r} as a {source}: triobg cannot write "
            f"{problem} as JSON (return a supported type, or pass response_model=None to send "
            "the value unchecked)"
        )
    if response_model is UNSET and not _mentions_model(model):
        return None
    try:
        converter.get_structure_hook(model)
    except Exception as error:
        raise TypeError(
            f"route {path!r}: cannot use {model!r} as a response_model: {error}"
        ) from None
    return _make_filter(model, path)


def _make_filter(model: Any, path: str) -> ResponseFilter:
    exact = model if model_class(model) else None
    unstructure = converter.unstructure
    structure = converter.structure

    def filter_response(result: Any) -> Any:
        if exact is not None and type(result) is exact:
            # Already the model: nothing to validate, and the model's own fields are all there
            # is to send (unstructured as declared, so a nested subclass leaks nothing either).
            return unstructure(result, unstructure_as=exact)
        try:
            value = structure(unstructure(result), model)
        except Exception as error:
            raise ResponseValidationError(
                errors_from_structuring(error, ("response",)), path
            ) from None
        return unstructure(value, unstructure_as=model)

    return filter_response
