"""Paired, interleaved timing for the benchmarks: every variant once per round, in a new
seeded random order each round, and ratios taken round by round (this round's time over
the same round's baseline), then the median over rounds. Background load and warm-up
hit both sides of a ratio alike, which a best-of-N or a fixed order does not."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def paired(rounds: int, variants: dict[str, Callable[[], Any]], seed: int = 0) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Every variant once per round, in a new seeded random order each round; the times
    per round (seconds), and each variant's last value."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    values: dict[str, Any] = {}
    order = random.Random(seed)
    names = list(variants)
    for _ in range(rounds):
        for name in order.sample(names, len(names)):
            start = time.perf_counter()
            values[name] = variants[name]()
            times[name].append(time.perf_counter() - start)
    return times, values


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over rounds of numerator / denominator (paired by round)."""
    return float(np.median([a / b for a, b in zip(numerator, denominator)]))
