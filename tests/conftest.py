"""Shared test configuration: trio_mode (pyproject) makes every ``async def`` test a trio test."""

from _postgres import stop_shared_server


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    """The PostgreSQL server some tests start is stopped however the session ends."""
    stop_shared_server()
