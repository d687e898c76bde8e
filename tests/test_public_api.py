"""The public surface: everything in ``__all__`` is importable and presented as public."""

from __future__ import annotations

import importlib

import pytest

import triobg
import triobg.testing


@pytest.mark.parametrize("module", [triobg, triobg.testing])
def test_every_public_name_is_exported(module: object) -> None:
    """``__all__`` lists real attributes, and nothing public is missing from it."""
    names = set(module.__all__)  # type: ignore[attr-defined]
    for name in names:
        assert hasattr(module, name), name
    public = {n for n in vars(module) if not n.startswith("_")} - {"annotations"}
    submodules = {"testing"}
    assert public - names - submodules == set()


def test_public_objects_say_triobg_not_a_private_module() -> None:
    """Tracebacks and reprs show ``triobg.App``, not ``triobg._app.App``."""
    for name in triobg.__all__:
        obj = getattr(triobg, name)
        module = getattr(obj, "__module__", "triobg")
        assert module == "triobg", f"{name} claims module {module}"


def test_the_seed_imports_work_by_changing_only_the_package() -> None:
    """``from fastapi import BackgroundTasks, FastAPI, Depends`` becomes a triobg import."""
    module = importlib.import_module("triobg")
    for name in ("App", "BackgroundTasks", "Depends", "Query", "HTTPException", "Request"):
        assert getattr(module, name)
