"""Runnable triobg examples, one module per case of the background tasks tutorial.

Each module has a module-level ``app``: serve one with ``python -m triobg examples.<name>:app``
or ``hypercorn --worker-class trio examples.<name>:app``. The files they write (``log.txt``
and the like) go to the current directory.
"""
