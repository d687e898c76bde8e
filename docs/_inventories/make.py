"""Write the intersphinx inventories that the docs build reads offline.

Run it as ``python docs/_inventories/make.py``. Sphinx reads each project's ``objects.inv`` to
resolve links to its documentation. The build has to pass without network access, so instead
of downloading them we list here the outside names these docs (and the docstrings they include)
refer to, each with the page that documents it, and write them in Sphinx's inventory format.
When the docs start referring to a new outside name, the build fails with "reference target not
found"; add the name here and run this again.

With network access, ``TRIOBG_DOCS_ONLINE=1 sphinx-build ...`` reads the real inventories
first, which checks that every entry below still exists where it says.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (name, domain:role, page): the anchor is the name itself, Sphinx's convention for objects.
PYTHON = [
    *(
        (f"collections.abc.{name}", "py:class", "library/collections.abc.html")
        for name in (
            "AsyncIterable",
            "AsyncIterator",
            "Awaitable",
            "Callable",
            "Iterable",
            "Iterator",
            "Mapping",
            "Sequence",
            "Collection",
        )
    ),
    ("abc.ABC", "py:class", "library/abc.html"),
    ("datetime.datetime", "py:class", "library/datetime.html"),
    ("datetime.timedelta", "py:class", "library/datetime.html"),
    ("enum.Enum", "py:class", "library/enum.html"),
    ("os.PathLike", "py:class", "library/os.html"),
    ("contextlib.AbstractAsyncContextManager", "py:class", "library/contextlib.html"),
    ("contextlib.asynccontextmanager", "py:function", "library/contextlib.html"),
    ("enum.IntEnum", "py:class", "library/enum.html"),
    ("logging.Logger", "py:class", "library/logging.html"),
    ("time.sleep", "py:function", "library/time.html"),
    *(
        (name, "py:exception", "library/exceptions.html")
        for name in (
            "BaseException",
            "Exception",
            "LookupError",
            "ExceptionGroup",
            "ConnectionError",
            "RuntimeError",
            "TimeoutError",
            "TypeError",
            "ValueError",
        )
    ),
]

TRIO = [
    *(
        (f"trio.{name}", "py:class", "reference-core.html")
        for name in ("Nursery", "CancelScope", "Event", "CapacityLimiter", "TaskStatus")
    ),
    *(
        (f"trio.{name}", "py:function", "reference-core.html")
        for name in (
            "open_nursery",
            "run",
            "sleep",
            "current_time",
            "to_thread.run_sync",
            "open_memory_channel",
        )
    ),
    ("trio.WouldBlock", "py:exception", "reference-core.html"),
    ("trio.Cancelled", "py:exception", "reference-core.html"),
    ("trio.TooSlowError", "py:exception", "reference-core.html"),
    ("trio.SocketStream", "py:class", "reference-io.html"),
    ("trio.Path", "py:class", "reference-io.html"),
    ("trio.testing.MockClock", "py:class", "reference-testing.html"),
    ("trio.lowlevel.checkpoint", "py:function", "reference-lowlevel.html"),
]

ATTRS = [
    ("attrs.frozen", "py:function", "api.html"),
    ("attrs.define", "py:function", "api.html"),
]

# hypercorn documents its settings in prose; link the page, not objects.
HYPERCORN_DOCS = [
    ("how_to_guides/configuring", "how_to_guides/configuring.html", "Configuring"),
]


def write(name: str, version: str, lines: list[str]) -> None:
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {name}\n"
        f"# Version: {version}\n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    body = "".join(line + "\n" for line in sorted(lines))
    (HERE / f"{name}.inv").write_bytes(header.encode() + zlib.compress(body.encode()))


def objects(entries: list[tuple[str, str, str]]) -> list[str]:
    # "$" at the end of the URI stands for the name; "-" as display name means the name.
    return [f"{name} {role} 1 {page}#$ -" for name, role, page in entries]


def main() -> None:
    write("python", "3", objects(PYTHON))
    write("trio", "stable", objects(TRIO))
    write("attrs", "stable", objects(ATTRS))
    write(
        "hypercorn",
        "latest",
        [f"{name} std:doc -1 {uri} {title}" for name, uri, title in HYPERCORN_DOCS],
    )


if __name__ == "__main__":
    main()
