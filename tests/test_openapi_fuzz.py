"""The schema, checked against the server: schemathesis drives each example app (and the larger
test app) over real HTTP and compares every response with the app's own OpenAPI document.

No 5xx, no response whose status, content type or body contradicts the document, no valid
request refused and no invalid one accepted. Bounded: a fixed number of examples per operation,
generated deterministically (``derandomize``), so a failure reproduces and a pass is not luck.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks
from schemathesis.core.failures import FailureGroup

import examples
from triobg import App
from triobg.testing import serve_live

pytestmark = pytest.mark.e2e

# A dozen per operation and mode keeps the whole file near 20 s; set TRIOBG_FUZZ_EXAMPLES for a
# deeper hunt (e.g. 500) when changing the schema generation or the converters.
EXAMPLES_PER_OPERATION = int(os.environ.get("TRIOBG_FUZZ_EXAMPLES", "12"))
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
)


def _example_app(name: str) -> Callable[[], App]:
    def build() -> App:
        # A private copy of the module, so its ``app`` is new: the fuzzer's requests leave
        # statistics and tasks on an app, and other tests use the shared ``examples.<name>``.
        path = Path(examples.__file__).with_name(f"{name}.py")
        spec = importlib.util.spec_from_file_location(f"_fuzzed_examples_{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        app = module.app
        assert isinstance(app, App)
        return app

    return build


def _sink_app() -> App:
    from _openapi_app import build_app

    return build_app()


APPS: dict[str, Callable[[], App]] = {
    name: _example_app(name)
    for name in (
        "accepted_file",
        "dependency_tasks",
        "graceful_shutdown",
        "items",
        "process",
        "send_notification",
        "sync_and_async",
        "task_failures",
        "upload",
        "yield_dependency",
    )
}
APPS["kitchen_sink"] = _sink_app


def _models_app() -> App:
    from _openapi_models_app import build_app

    return build_app()


APPS["models"] = _models_app


def _fuzz(document: dict[str, Any], base_url: str) -> list[str]:
    """Run in a worker thread (schemathesis' client is blocking) while trio serves the app."""
    load_all_checks()
    checks = [REGISTRY.get_one(name) for name in CHECKS]
    schema = schemathesis.openapi.from_dict(document)
    problems: list[str] = []
    session = requests.Session()  # one keep-alive connection, closed at the end
    try:
        _fuzz_operations(schema, base_url, checks, session, problems)
    finally:
        session.close()
    return problems


def _fuzz_operations(
    schema: Any, base_url: str, checks: list[Any], session: requests.Session, problems: list[str]
) -> None:
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(strategy)
            def run(case: Any) -> None:
                response = case.call(base_url=base_url, session=session, timeout=10)
                case.validate_response(response, checks=checks)

            try:
                run()
            except Unsatisfiable:
                continue  # nothing to get wrong (a negative case for an operation with no inputs)
            except (FailureGroup, AssertionError) as error:
                problems.append(f"{operation.label} ({mode.value}): {error}")


@pytest.mark.parametrize("name", sorted(APPS))
async def test_responses_agree_with_the_schema(
    name: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every generated request, valid or not, gets an answer the document allows."""
    monkeypatch.chdir(tmp_path)  # the example apps write their files where they run
    app = APPS[name]()
    document = app.openapi()
    with trio.fail_after(60 + 2 * EXAMPLES_PER_OPERATION):  # ~20x what a run takes here
        async with serve_live(app) as server:
            problems = await trio.to_thread.run_sync(_fuzz, document, server.url)
    assert not problems, "\n\n".join(problems)
