"""``python -m triobg --reload``: what it watches, how it reports an app that does not load,
and a real reloader process surviving a syntax error."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from test_e2e_hypercorn import STARTUP, WAIT, server_process

from triobg._cli import main
from triobg._reload import LOAD_FAILED, RELOAD_CHILD_ENV, changed_files, snapshot
from triobg.testing import HTTP11Connection

PYTHON = sys.executable

APP = """\
from triobg import App

app = App()


@app.get("/")
async def root() -> dict[str, str]:
    return {{"version": {version!r}}}
"""

BROKEN = """\
from triobg import App

app = App(


@app.get("/")
"""


def write(path: Path, text: str) -> None:
    """Replace the file in one step, as editors do, so the reloader never sees half of it."""
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    os.replace(partial, path)


class TestWatching:
    def test_sees_python_files_added_changed_and_removed(self, tmp_path: Path) -> None:
        """Each kind of change names the file; other files and skipped directories do not count."""
        (tmp_path / "a.py").write_text("a = 1\n")
        (tmp_path / "b.py").write_text("b = 1\n")
        for skipped in (".git", "__pycache__", "node_modules", "venv"):
            (tmp_path / skipped).mkdir()
            (tmp_path / skipped / "x.py").write_text("")
        (tmp_path / "venv" / "pyvenv.cfg").write_text("")
        (tmp_path / "notes.txt").write_text("")
        before = snapshot([tmp_path])
        assert sorted(before) == [str(tmp_path / "a.py"), str(tmp_path / "b.py")]
        write(tmp_path / "a.py", "a = 22\n")
        (tmp_path / "b.py").unlink()
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "c.py").write_text("")
        (tmp_path / "notes.txt").write_text("ignored")
        assert changed_files(before, snapshot([tmp_path])) == [
            str(tmp_path / "a.py"),
            str(tmp_path / "b.py"),
            str(tmp_path / "pkg" / "c.py"),
        ]


class TestTheChildReportsALoadError:
    @pytest.fixture(autouse=True)
    def as_the_reloaders_child(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(RELOAD_CHILD_ENV, "1")
        monkeypatch.chdir(tmp_path)
        monkeypatch.syspath_prepend(str(tmp_path))

    def test_a_syntax_error_is_one_block_with_file_line_and_caret(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """No traceback through the import machinery: where, the code, the error."""
        (tmp_path / "brokenapp1.py").write_text("app = (\n")
        assert main(["brokenapp1:app", "--reload"]) == LOAD_FAILED
        err = capsys.readouterr().err
        assert err.startswith("triobg: error: cannot load the app 'brokenapp1:app':\n")
        assert f'File "{tmp_path / "brokenapp1.py"}", line 1' in err
        assert "SyntaxError" in err
        assert "importlib" not in err and "Traceback" not in err

    def test_an_exception_while_importing_shows_only_the_users_frames(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The frames of the user's modules, then the exception; none of triobg's or importlib's."""
        (tmp_path / "brokenapp2.py").write_text("import brokenhelper2\n")
        (tmp_path / "brokenhelper2.py").write_text("limit = 1 / 0\n")
        assert main(["brokenapp2:app", "--reload"]) == LOAD_FAILED
        err = capsys.readouterr().err
        assert 'brokenapp2.py", line 1' in err and 'brokenhelper2.py", line 1' in err
        assert err.rstrip().endswith("ZeroDivisionError: division by zero")
        assert "importlib" not in err and "_cli.py" not in err

    def test_a_missing_attribute_is_one_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        """What ``load_app`` already says in one line stays one line."""
        (Path.cwd() / "emptyapp3.py").write_text("")
        assert main(["emptyapp3:app", "--reload"]) == LOAD_FAILED
        assert capsys.readouterr().err == (
            "triobg: error: module 'emptyapp3' has no attribute 'app'\n"
        )

    def test_reload_dir_needs_reload_and_a_directory(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Never silently ignored: a stray ``--reload-dir`` or a missing directory is refused."""
        monkeypatch.delenv(RELOAD_CHILD_ENV)
        for argv in (["x:app", "--reload-dir", "."], ["x:app", "--reload", "--reload-dir", "nope"]):
            with pytest.raises(SystemExit) as info:
                main(argv)
            assert info.value.code == 2
        err = capsys.readouterr().err
        assert "--reload-dir goes with --reload" in err
        assert "is not a directory" in err


@pytest.mark.e2e
class TestReloaderProcess:
    async def test_survives_a_syntax_error_and_serves_the_fixed_app(self, tmp_path: Path) -> None:
        """Serve, break the file (the error is shown), fix it (served again), stop with SIGTERM."""
        source = tmp_path / "reloadapp.py"
        write(source, APP.format(version="first"))
        args = [PYTHON, "-m", "triobg", "reloadapp:app", "--reload", "--bind", "127.0.0.1:0"]
        async with server_process(args, tmp_path) as child:
            url = r"serving on http://127\.0\.0\.1:(\d+)"
            await child.wait_for(url, timeout=STARTUP)
            assert await version(child.lines, 1) == "first"

            write(source, BROKEN)
            await child.wait_for(r"^SyntaxError: ", timeout=STARTUP)
            await child.wait_for("the server stopped \\(the app did not load\\); waiting")

            write(source, APP.format(version="second, fixed"))
            await child.wait_for(url, count=2, timeout=STARTUP)
            assert await version(child.lines, 2) == "second, fixed"

            child.signal(signal.SIGTERM)
            assert await child.wait_exit() == 0
        out = child.output
        block = out[out.index("triobg: error: cannot load the app 'reloadapp:app':") :]
        assert f'File "{source}", line 3' in block.splitlines()[1]
        assert "Traceback" not in out, out
        assert out.count("reloadapp.py changed: reloading") == 2, out
        # The first server was stopped gracefully before the reload, its drain included.
        first_reload = out.index("reloadapp.py changed: reloading")
        assert "background drain finished" in out[:first_reload], out

    async def test_starts_watching_even_if_the_app_is_broken_from_the_start(
        self, tmp_path: Path
    ) -> None:
        """The reloader never imports the app itself, so a first start on a broken file waits."""
        source = tmp_path / "reloadapp.py"
        write(source, BROKEN)
        args = [PYTHON, "-m", "triobg", "reloadapp:app", "--reload", "--bind", "127.0.0.1:0"]
        async with server_process(args, tmp_path) as child:
            await child.wait_for("the app did not load\\); waiting", timeout=STARTUP)
            write(source, APP.format(version="fixed"))
            await child.wait_for(r"serving on http://127\.0\.0\.1:\d+", timeout=STARTUP)
            assert await version(child.lines, 1) == "fixed"


async def version(lines: list[str], nth: int) -> str:
    """GET / from the server that printed the ``nth`` "serving on" line."""
    serving = [line for line in lines if "serving on http://127.0.0.1:" in line]
    port = int(serving[nth - 1].rsplit(":", 1)[1].split()[0])
    async with await HTTP11Connection.connect("127.0.0.1", port, timeout=WAIT) as conn:
        response = await conn.request("GET", "/")
    assert response.status == 200, response.body
    value: str = response.json()["version"]
    return value


@pytest.mark.e2e
async def test_ctrl_c_stops_the_server_gracefully_once(tmp_path: Path) -> None:
    """SIGINT to the terminal's process group: the child drains once; the reloader then exits 0."""
    write(tmp_path / "reloadapp.py", APP.format(version="first"))
    args = [PYTHON, "-m", "triobg", "reloadapp:app", "--reload", "--bind", "127.0.0.1:0"]
    async with server_process(args, tmp_path) as child:
        await child.wait_for(r"serving on http://127\.0\.0\.1:\d+", timeout=STARTUP)
        os.killpg(child.process.pid, signal.SIGINT)
        assert await child.wait_exit() == 0
    assert "SIGINT received: shutting down gracefully" in child.output
    assert "received again" not in child.output
