# The benchmark apps: one module per framework, all serving the seed endpoint with the same work.
#
# Each module exports ``create_app(kind, *, log_dir=None, extra_routes=0)`` and a module-level
# ``app`` configured from the environment (for hypercorn). ``load`` imports a module on demand and
# turns a missing framework -- triobg itself while it is being written -- into a skip reason.
from __future__ import annotations

import importlib

import attrs

from benchmarks._types import AppFactory

#: Every app, in report order; ``bare`` is the baseline that ratios are taken against.
APP_NAMES = ("bare", "triobg", "starlette", "fastapi", "quart")
BASELINE = "bare"
_MODULES = {
    "bare": "benchmarks.apps.bare",
    "triobg": "benchmarks.apps.triobg_app",
    "starlette": "benchmarks.apps.starlette_app",
    "fastapi": "benchmarks.apps.fastapi_app",
    "quart": "benchmarks.apps.quart_app",
}


@attrs.frozen
class LoadedApps:
    """The apps that imported, and why the others did not.

    Attributes:
        factories: App name to ``create_app``, in ``APP_NAMES`` order.
        modules: App name to the importable module path, for ``hypercorn module:app``.
        skipped: App name to the reason it is unavailable.
    """

    factories: dict[str, AppFactory]
    modules: dict[str, str]
    skipped: dict[str, str]


def load(names: tuple[str, ...] = APP_NAMES) -> LoadedApps:
    """Import the app modules named, recording instead of raising when a framework is missing."""
    factories: dict[str, AppFactory] = {}
    modules: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            module = importlib.import_module(_MODULES[name])
        except Exception as exc:  # any import failure means "skip this app"
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        factories[name] = module.create_app
        modules[name] = _MODULES[name]
    return LoadedApps(factories, modules, skipped)
