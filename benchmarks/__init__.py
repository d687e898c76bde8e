# Benchmark suite for triobg: compares triobg with a hand-written ASGI app and peer frameworks.
#
# Not part of the test run and not shipped: run it with ``nox -s bench`` or
# ``python -m benchmarks.run [--quick]`` from the repository root (see README.md).
