# Serve any ASGI app (not only a triobg ``App``, which is all the CLI takes) on triobg's native
# server, for the benchmarks that separate the server's cost from the app's
# (``benchmarks/callgrind_servers.py``). Run ``python -m benchmarks.apps.native_asgi MOD:APP PORT``.
from __future__ import annotations

import functools
import importlib
import sys

import trio

from triobg._server import serve_native


def main() -> None:
    """Import ``MODULE:APP`` and serve it on 127.0.0.1:PORT until killed."""
    module, _, name = sys.argv[1].partition(":")
    app = getattr(importlib.import_module(module), name)
    trio.run(functools.partial(serve_native, app, bind=f"127.0.0.1:{sys.argv[2]}"))


if __name__ == "__main__":
    main()
