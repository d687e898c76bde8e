# Small statistics helpers: interleaved round order, medians and paired ratios.
#
# Absolute numbers drift on a shared machine, so every benchmark measures all apps round by round
# (A, B, C, then B, C, A, ...) and reports each app as the median of its per-round ratios to the
# baseline measured in the same round.
from __future__ import annotations

import statistics
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

T = TypeVar("T")


def interleaved(names: Sequence[T], rounds: int) -> Iterator[list[T]]:
    """Yield the order of ``names`` for each of ``rounds`` rounds, rotating the start each round.

    Rotation keeps any "first after a pause" or "right after the heavy one" effect from always
    hitting the same app.
    """
    for round_index in range(rounds):
        shift = round_index % max(len(names), 1)
        yield [*names[shift:], *names[:shift]]


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values (a skipped or failed measurement)."""
    return statistics.median(values) if values else float("nan")


def paired_ratio(samples: Mapping[str, Sequence[float]], name: str, baseline: str) -> float | None:
    """Median over rounds of ``name``'s value divided by ``baseline``'s value in the same round.

    Returns None when the baseline was not measured.
    """
    ours, theirs = samples.get(name, ()), samples.get(baseline, ())
    pairs = [a / b for a, b in zip(ours, theirs, strict=False) if b]
    return statistics.median(pairs) if pairs else None
