"""Shared test configuration: trio_mode (pyproject) makes every ``async def`` test a trio test."""
