"""Developer sessions: ``nox -s tests lint typecheck docs bench``."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "docs"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite (CI runs it through ``./run tests``)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the examples."""
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the documentation with warnings as errors, then open the key pages in headless
    Chromium (skipped, with the reason, when Debian's ``chromium`` is not installed)."""
    session.install("-e", ".[docs,test]")
    session.run(
        "sphinx-build", "-n", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"
    )
    session.run("pytest", "tests/test_docs_browser.py", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against bare ASGI, Starlette, FastAPI and Quart-Trio (not part of CI).

    Then the durable-task stores: SQLite end to end, PostgreSQL with 1, 2 and 4 worker
    processes and the takeover after ``kill -9``, and durable against in-process tasks over
    HTTP on each store (these need PostgreSQL's server and ``wrk`` installed). Arguments go to
    ``benchmarks.run``; ``-- --only inprocess`` skips the rest by running just that section.
    """
    session.install("-e", ".[postgres]", "-r", "benchmarks/requirements.txt")
    session.run("python", "-m", "benchmarks.run", *session.posargs)
    if session.posargs:
        return
    session.run("python", "-m", "benchmarks.durable_store")
    session.run("python", "-m", "benchmarks.postgres_store")
    for store in ("sqlite", "postgres"):
        session.run("python", "-m", "benchmarks.durable_http", "--store", store)
    session.run("python", "-m", "benchmarks.uploads")
