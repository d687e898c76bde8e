# ``python -m triobg module:app``: the command line lives in ``_cli.py``.
#
# The guard matters: hypercorn's multi-worker runner starts processes with ``spawn``, which
# imports this module again in each worker under another name.
import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
