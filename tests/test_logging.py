"""The logging fallback: triobg's lines reach stderr when, and only when, nothing shows them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from triobg._logging import ensure_visible


@pytest.fixture
def unconfigure(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], logging.Logger]]:
    """Call it to make the process look as if nothing had configured logging.

    It must be called in the test itself: pytest adds its capturing handlers to the root logger
    when each test phase begins. The ``triobg`` logger's level is restored afterwards.
    """
    logger = logging.getLogger("triobg")
    level = logger.level

    def clear() -> logging.Logger:
        monkeypatch.setattr(logging.getLogger(), "handlers", [])
        monkeypatch.setattr(logger, "handlers", [])
        return logger

    yield clear
    logger.setLevel(level)


class TestEnsureVisible:
    def test_info_lines_reach_stderr_with_time_and_pid(
        self, unconfigure: Callable[[], logging.Logger], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With nothing configured, INFO lines of triobg's loggers are printed, formatted."""
        unconfigure()
        assert ensure_visible()
        logging.getLogger("triobg.background").info("background drain finished: 1 completed")
        err = capsys.readouterr().err
        assert "INFO triobg.background: background drain finished: 1 completed" in err
        assert "[" in err  # the process id, as several workers share one output

    def test_added_once(self, unconfigure: Callable[[], logging.Logger]) -> None:
        """A second startup in the same process (a restarted server) adds no second handler."""
        logger = unconfigure()
        assert ensure_visible()
        assert not ensure_visible()
        assert len(logger.handlers) == 1

    def test_silent_once_the_program_configures_logging(
        self, unconfigure: Callable[[], logging.Logger], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Logging configured after startup gets each line once: the fallback steps aside."""
        unconfigure()
        ensure_visible()
        seen: list[str] = []

        class Collect(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())

        logging.getLogger().addHandler(Collect())
        logging.getLogger("triobg.background").warning("task lost")
        assert seen == ["task lost"]
        assert capsys.readouterr().err == ""

    def test_left_alone_when_configured(self, caplog: pytest.LogCaptureFixture) -> None:
        """A program (or pytest) that configured logging keeps exactly its own set-up."""
        before = list(logging.getLogger("triobg").handlers)
        assert not ensure_visible()
        assert logging.getLogger("triobg").handlers == before
