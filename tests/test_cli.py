"""``python -m triobg``: loading the app, its options, and signals in a real child process."""

from __future__ import annotations

import gc
import re
import signal
import sys
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from test_e2e_hypercorn import (
    STARTUP,
    ServerProcess,
    free_port,
    get,
    server_process,
    slow_reader,
    spread_over_workers,
    write_app,
)

from triobg import App
from triobg._cli import AppLoadError, build_parser, load_app, main
from triobg._serve import DRAIN_MARGIN, STRAGGLER_MARGIN

PYTHON = sys.executable


@asynccontextmanager
async def two_workers(
    app_dir: Path, drain_timeout: float
) -> AsyncIterator[tuple[ServerProcess, int]]:
    """``python -m triobg clibgapp:app --workers 2`` on a free port, once both workers listen."""
    port = free_port()
    args = [PYTHON, "-m", "triobg", "clibgapp:app", "--workers", "2"]
    args += ["--bind", f"127.0.0.1:{port}", "--drain-timeout", str(drain_timeout)]
    async with server_process(args, app_dir) as child:
        await child.wait_for(r"Running on http://127\.0\.0\.1", count=2, timeout=STARTUP)
        yield child, port


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory holding ``clibgapp.py``, made the current one (as a user's project would be)."""
    write_app(tmp_path, "clibgapp")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


class TestLoadApp:
    def test_loads_an_app_and_a_factory(self, app_dir: Path) -> None:
        """``module:app`` gives the App; ``--factory`` calls ``module:make_app`` for it."""
        app = load_app("clibgapp:app")
        assert isinstance(app, App)
        assert load_app("clibgapp:make_app", factory=True) is app

    @pytest.mark.parametrize(
        ("spec", "factory", "message"),
        [
            ("clibgapp", False, "expected 'module:attribute'"),
            ("no_such_module_here:app", False, "cannot import 'no_such_module_here'"),
            ("clibgapp:missing", False, "has no attribute 'missing'"),
            ("clibgapp:not_an_app", False, "is int, not a triobg.App"),
            ("clibgapp:make_app", False, "add --factory"),
            ("clibgapp:not_an_app", True, "not callable"),
            ("clibgapp:make_number", True, "returned int, not a triobg.App"),
        ],
    )
    def test_bad_specs_say_what_is_wrong(
        self, app_dir: Path, spec: str, factory: bool, message: str
    ) -> None:
        """Every way of pointing at something that is not an app gets its own message."""
        with pytest.raises(AppLoadError, match=re.escape(message)):
            load_app(spec, factory=factory)

    def test_main_exits_2_with_one_line(
        self, app_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad ``module:app`` is a usage error: exit status 2 and a single line on stderr."""
        with pytest.raises(SystemExit) as info:
            main(["clibgapp:missing"])
        assert info.value.code == 2
        err = capsys.readouterr().err
        assert err == "triobg: error: module 'clibgapp' has no attribute 'missing'\n"


class TestOptions:
    def test_help_names_every_option(self, capsys: pytest.CaptureFixture[str]) -> None:
        """``--help`` documents each option and the graceful shutdown."""
        with pytest.raises(SystemExit) as info:
            main(["--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        for option in (
            "--bind",
            "--workers",
            "--reload",
            "--factory",
            "--drain-timeout",
            "--keep-alive",
            "--access-log",
            "--log-level",
            "--graceful-timeout",
            "--read-timeout",
            "SIGTERM",
        ):
            assert option in out

    @pytest.mark.parametrize(
        "argv",
        [["--workers", "0"], ["--drain-timeout", "-1"], ["--keep-alive", "soon"]],
    )
    def test_bad_values_are_refused(self, argv: list[str]) -> None:
        with pytest.raises(SystemExit):
            build_parser().parse_args([*argv, "m:app"])

    def test_read_timeout_defaults_to_a_minute(self) -> None:
        """``--read-timeout`` is 60 s unless given; 0 (passed on as None) turns it off."""
        parser = build_parser()
        assert parser.parse_args(["m:a"]).read_timeout == 60
        assert parser.parse_args(["--read-timeout", "0", "m:a"]).read_timeout == 0

    def test_binds_accumulate(self) -> None:
        args = build_parser().parse_args(["-b", "127.0.0.1:1", "--bind", "unix:/tmp/s", "m:a"])
        assert args.bind == ["127.0.0.1:1", "unix:/tmp/s"]


class TestStartupProblems:
    """What stops the server from starting is one line and a non-zero exit, not a traceback."""

    @pytest.mark.parametrize("server", ["native", "hypercorn"])
    def test_a_port_in_use_is_one_line(
        self, app_dir: Path, capsys: pytest.CaptureFixture[str], server: str
    ) -> None:
        import socket

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            with pytest.raises(SystemExit) as info:
                main(["clibgapp:app", "--bind", f"127.0.0.1:{port}", "--server", server])
        code = info.value.code
        # hypercorn leaves the socket whose bind failed to the garbage collector (the error's
        # traceback holds it); reap it here rather than have its ResourceWarning fail whichever
        # test runs next.
        del info
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        assert code == 1
        err = capsys.readouterr().err
        assert err == (
            f"triobg: error: cannot start the server: address already in use; "
            f"bind: 127.0.0.1:{port}\n"
        )

    def test_a_malformed_bind_is_one_line(
        self, app_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as info:
            main(["clibgapp:app", "--bind", "nonsense"])
        assert info.value.code == 1
        err = capsys.readouterr().err
        assert "triobg: error: cannot start the server: bind must be 'host:port'" in err
        assert "Traceback" not in err

    def test_an_unreadable_certificate_is_named(
        self, app_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as info:
            main(["clibgapp:app", "--certfile", "missing.pem", "--keyfile", "missing.key"])
        assert info.value.code == 2
        assert capsys.readouterr().err == "triobg: error: cannot read --certfile missing.pem\n"


class TestHostAndPort:
    def test_host_and_port_are_aliases_of_bind(self) -> None:
        """uvicorn's ``--host``/``--port`` work, each defaulting as ``--bind`` does."""
        parser = build_parser()
        args = parser.parse_args(["m:a", "--host", "0.0.0.0", "--port", "9000"])
        assert (args.host, args.port) == ("0.0.0.0", 9000)
        with pytest.raises(SystemExit):
            parser.parse_args(["m:a", "--port", "70000"])

    def test_bind_and_host_together_are_refused(
        self, app_dir: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as info:
            main(["clibgapp:app", "--bind", "127.0.0.1:1", "--port", "2"])
        assert info.value.code == 2
        assert "not both" in capsys.readouterr().err

    async def test_a_server_started_with_host_and_port(self, app_dir: Path) -> None:
        """``--host 127.0.0.1 --port N`` serves on exactly that address."""
        port = free_port()
        args = [PYTHON, "-m", "triobg", "clibgapp:app", "--host", "127.0.0.1"]
        args += ["--port", str(port)]
        async with server_process(args, app_dir) as child:
            await child.wait_for(rf"serving on http://127\.0\.0\.1:{port}", timeout=STARTUP)
            assert isinstance(await get("127.0.0.1", port, "/quick/h1"), int)


class TestProcess:
    async def test_bad_app_exits_without_traceback(self, app_dir: Path) -> None:
        """From a shell: non-zero status, one line on stderr, no traceback."""
        async with server_process([PYTHON, "-m", "triobg", "clibgapp:nope"], app_dir) as child:
            assert await child.wait_exit(STARTUP) == 2
            assert child.lines == ["triobg: error: module 'clibgapp' has no attribute 'nope'"]

    async def test_sigterm_drains_and_exits_zero(self, app_dir: Path) -> None:
        """SIGTERM: quick tasks complete, the stuck one is cut at --drain-timeout and named."""
        args = [PYTHON, "-m", "triobg", "clibgapp:make_app", "--factory"]
        args += ["--bind", "127.0.0.1:0", "--drain-timeout", "0.5"]
        async with server_process(args, app_dir, APP_DRAIN="60") as child:
            host, port = await child.url(r"serving on (http://127\.0\.0\.1:\d+)")
            await get(host, port, "/forever/f1")
            await get(host, port, "/quick/q1")
            await child.wait_for("task forever f1 started")
            await child.wait_for("task quick q1 started")
            child.signal(signal.SIGTERM)
            assert await child.wait_exit() == 0
            out = child.output
        assert "SIGTERM received: shutting down gracefully" in out
        assert "background tasks have 0.5 s to finish" in out
        assert "task quick q1 completed" in out
        assert re.search(
            r"clibgapp\.forever of GET /forever/f1 cancelled while running "
            r"\(the shutdown drain deadline passed\)",
            out,
        ), out
        assert "drain finished: 1 completed, 0 failed, 1 cancelled" in out

    async def test_a_slow_reader_cannot_hold_the_shutdown(self, app_dir: Path) -> None:
        """SIGTERM with a client taking 20 MB slowly: exit about a second after the drain."""
        args = [PYTHON, "-m", "triobg", "clibgapp:app", "--bind", "127.0.0.1:0"]
        args += ["--drain-timeout", "0.5"]
        async with server_process(args, app_dir) as child:
            host, port = await child.url(r"serving on (http://127\.0\.0\.1:\d+)")
            async with slow_reader(host, port):
                child.signal(signal.SIGTERM)
                start = trio.current_time()
                assert await child.wait_exit() == 0
                elapsed = trio.current_time() - start
        assert elapsed < 0.5 + DRAIN_MARGIN + STRAGGLER_MARGIN + 2, elapsed

    async def test_second_signal_stops_at_once(self, app_dir: Path) -> None:
        """A second SIGINT does not wait for a long drain: it cancels, naming the task."""
        args = [PYTHON, "-m", "triobg", "clibgapp:app", "--bind", "127.0.0.1:0"]
        async with server_process(args, app_dir, APP_DRAIN="60") as child:
            host, port = await child.url(r"serving on (http://127\.0\.0\.1:\d+)")
            await get(host, port, "/forever/f2")
            await child.wait_for("task forever f2 started")
            child.signal(signal.SIGINT)
            await child.wait_for("SIGINT received: shutting down gracefully")
            child.signal(signal.SIGINT)
            assert await child.wait_exit() == 0
            out = child.output
        assert "SIGINT received again: stopping now" in out
        assert "clibgapp.forever of GET /forever/f2 cancelled while running" in out
        assert "Traceback" not in out

    async def test_two_workers_each_drain_their_own_tasks(self, app_dir: Path) -> None:
        """``--workers 2`` runs hypercorn's runner; each worker names its own cut-off tasks."""
        async with two_workers(app_dir, drain_timeout=0.5) as (child, port):
            owner = await spread_over_workers(child, "127.0.0.1", port, app_dir)
            child.signal(signal.SIGTERM)
            assert await child.wait_exit(timeout=15) == 0
            out = child.output
        for tag, pid in owner.items():
            assert re.search(
                rf"\[{pid}\] WARNING triobg\.background: .*forever of GET /forever/{tag} cancelled",
                out,
            ), (tag, out)
        drained = re.findall(r"\[(\d+)\] INFO triobg\.background: background drain finished", out)
        assert set(map(int, drained)) == set(owner.values()), out

    async def test_a_draining_worker_outlives_the_first_to_exit(self, app_dir: Path) -> None:
        """hypercorn's runner SIGTERMs the other workers once one exits; they finish draining."""
        async with two_workers(app_dir, drain_timeout=5) as (child, port):
            pid = await get("127.0.0.1", port, "/slow/s1")  # 1.5 s; the other worker is idle
            await child.wait_for("task slow s1 started")
            child.signal(signal.SIGTERM)
            assert await child.wait_exit(timeout=15) == 0
            out = child.output
        assert "task slow s1 completed" in out, out
        assert re.search(
            rf"\[{pid}\] INFO triobg\.background: background drain finished: 1 completed", out
        ), out
