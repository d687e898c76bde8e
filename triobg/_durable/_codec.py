# Arguments and results of durable tasks as JSON text, through cattrs.
#
# Where it sits: ``_task.py`` encodes a call's arguments when the task is added (so a value
# that cannot be stored fails in the handler, with a ``TypeError`` naming the task and the
# argument, not later in a worker); ``_worker.py`` decodes them, structured back by the task
# function's type hints (attrs classes, lists and dicts of them, ...), and encodes the return
# value. Arguments are stored by parameter name, so the stored form reads like the call.
from __future__ import annotations

import inspect
import json
import math
import typing
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, Final

import attrs
import cattrs

from .._uploads import UploadFile
from ._files import structure_upload, unstructure_upload

converter: Final = cattrs.Converter()
# An UploadFile argument is stored as a reference to its file in the task file area.
converter.register_unstructure_hook(UploadFile, unstructure_upload)
converter.register_structure_hook(UploadFile, structure_upload)


#: One encoder for every call: ``json.dumps`` with any option builds a new ``JSONEncoder``
#: each time, which cost as much as encoding a task's arguments.
_dumps: Final = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


#: Types cattrs passes through unchanged both ways: a value of exactly one of them (not a
#: subclass, such as an enum) skips the converter, which is most arguments of most tasks.
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})

_BY_NAME: Final = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


@attrs.frozen
class Parameters:
    """A task function's signature, with what binding a call to it needs worked out once.

    ``inspect.Signature.bind`` is general and costs a few microseconds per call; for the usual
    function (parameters that can be passed by position or by name, or by name only; no
    ``*args``, ``**kwargs`` or positional-only ones) ``bind`` does the same mapping directly
    and leaves anything unusual (a missing or unknown argument, ...) to ``Signature.bind``,
    which raises its usual ``TypeError``.
    """

    signature: inspect.Signature
    #: The names that may come by position, in order; ``None`` if the signature is unusual.
    positional: tuple[str, ...] | None
    order: tuple[str, ...]
    required: frozenset[str]

    @classmethod
    def of(cls, func: Callable[..., Any]) -> Parameters:
        signature = inspect.signature(func)
        kinds = [p.kind for p in signature.parameters.values()]
        simple = all(kind in _BY_NAME for kind in kinds)
        positional = tuple(
            n
            for n, p in signature.parameters.items()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        required = frozenset(
            n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty
        )
        return cls(signature, positional if simple else None, tuple(signature.parameters), required)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments given, by parameter name in the signature's order (defaults left out),
        as ``Signature.bind(...).arguments``.

        Raises:
            TypeError: the call does not fit the signature.
        """
        positional = self.positional
        if positional is not None and len(args) <= len(positional):
            bound = dict(zip(positional, args, strict=False))
            if kwargs:
                if any(name in bound or name not in self.order for name in kwargs):
                    return self.signature.bind(*args, **kwargs).arguments  # raises
                bound.update(kwargs)
                bound = {name: bound[name] for name in self.order if name in bound}
            if self.required <= bound.keys():
                return bound
        return self.signature.bind(*args, **kwargs).arguments


def encode_call(
    task_name: str,
    parameters: Parameters,
    hints: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    prepare: Callable[[], object] | None = None,
) -> tuple[str, dict[str, Any] | None]:
    """The call ``(args, kwargs)`` as JSON text (an object of parameter name to value), and
    the keyword arguments the task will get when decoding the text would give back exactly
    the values given: every one plain (``_PLAIN``, immutable) and its parameter's hint
    (``hints``, from ``type_hints``; the text does not depend on them) that very type or
    none. The worker of this process, which runs most tasks a request adds, then skips the
    decode.

    Args:
        prepare: Called before arguments that are not all plain are encoded (``_new`` moves
            uploaded files into the task's file area then: a plain argument is no file).

    Raises:
        TypeError: the arguments do not fit the signature, or one of them is not JSON once
            unstructured by cattrs; the message names the task and the argument.
    """
    try:
        arguments = parameters.bind(args, kwargs)
    except TypeError as error:
        raise TypeError(f"durable task {task_name}: {error}") from None
    try:
        text = _plain_json(arguments)
    except ValueError:  # an int too long for ``str`` (4300 digits): the general way names it
        text = None
    if text is not None:
        same = parameters.positional is not None and all(
            hints.get(name, Any) in (type(value), Any) for name, value in arguments.items()
        )
        return text, arguments if same else None
    if prepare is not None:
        prepare()
    return _encode_general(task_name, arguments), None


def _plain_json(arguments: dict[str, Any]) -> str | None:
    """``_dumps(arguments)`` when every value is of a ``_PLAIN`` type (and finite), written
    directly: a third of the time, and most tasks' arguments are such. ``None`` otherwise.
    The same text as ``_dumps`` (ASCII, no spaces; a test compares them)."""
    parts = []
    for name, value in arguments.items():
        kind = type(value)
        if kind is str:
            text = encode_basestring_ascii(value)
        elif kind is int:
            text = int.__repr__(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif kind is float and math.isfinite(value):
            text = float.__repr__(value)
        else:
            return None
        parts.append(f"{encode_basestring_ascii(name)}:{text}")
    return "{" + ",".join(parts) + "}"


def _encode_general(task_name: str, arguments: dict[str, Any]) -> str:
    try:
        return _dumps(
            {
                name: v if type(v) in _PLAIN else converter.unstructure(v)
                for name, v in arguments.items()
            }
        )
    except (TypeError, ValueError):
        pass
    # Which one? Checked one by one only now, so that the error can name the argument.
    for name, value in arguments.items():
        try:
            _dumps(converter.unstructure(value))
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"durable task {task_name}: argument {name!r} ({type(value).__name__}) cannot "
                f"be stored as JSON: {error}"
            ) from None
    raise TypeError(f"durable task {task_name}: the arguments cannot be stored as JSON")


def decode_arguments(
    hints: dict[str, Any], parameters: Parameters, text: str
) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for a function from ``encode_call``'s JSON text.

    Args:
        hints: The function's type hints (``type_hints(func)``, computed once per function).

    Raises:
        ValueError: the stored arguments no longer fit the function (it changed since).
    """
    data = json.loads(text)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for name, parameter in parameters.signature.parameters.items():
        if name not in data:
            continue
        hint = hints.get(name, Any)
        value = data.pop(name)
        try:
            if type(value) is hint and hint in _PLAIN and parameter.kind in _BY_NAME:
                kwargs[name] = value  # what the converter would return
            elif parameter.kind is parameter.VAR_POSITIONAL:
                args.extend(converter.structure(item, hint) for item in value)
            elif parameter.kind is parameter.VAR_KEYWORD:
                kwargs.update({k: converter.structure(v, hint) for k, v in value.items()})
            elif parameter.kind is parameter.POSITIONAL_ONLY:
                args.append(converter.structure(value, hint))
            else:
                kwargs[name] = converter.structure(value, hint)
        except Exception as error:
            raise ValueError(f"argument {name!r} does not fit {hint!r}: {error}") from error
    if data:
        raise ValueError(f"stored arguments the function no longer takes: {sorted(data)}")
    return args, kwargs


def encode_result(value: Any) -> str:
    """A task's return value as JSON text.

    Raises:
        TypeError: the value is not JSON once unstructured (the attempt then fails).
    """
    if value is None:
        return "null"  # most tasks return nothing
    try:
        return _dumps(value if type(value) in _PLAIN else converter.unstructure(value))
    except ValueError as error:
        raise TypeError(str(error)) from None


def type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """``func``'s resolved type hints, or none if they cannot be resolved."""
    try:
        return typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: keep the JSON values as they are
        return {}
