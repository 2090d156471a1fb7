"""Paired, interleaved timing for the benchmarks: every variant once per round, in a new
seeded random order each round, and ratios taken round by round (this round's time over
the same round's baseline), then the median over rounds. Background load and warm-up
hit both sides of a ratio alike, which a best-of-N or a fixed order does not.

Each timed run follows a pause and an untimed run of the same variant: onnxruntime's
worker threads spin-wait for tens of milliseconds after a run (its default), so on a
2-core machine the variant drawn right after the raw onnxruntime baseline ran on one core
(measured: an optimized pipeline query 23.7 ms alone or after --no-optimize, 35-40 ms
right after raw onnxruntime); a pause alone lets those threads sleep, which slowed the
baseline's own next run (a tree query's 11.3 ms to 17.6 ms). So every variant is timed
in its own warm state (its threads, caches and pools just used by itself) and none in
another's leftovers.

The pause is spent busy, not asleep: on these VMs a CPU left idle for 50 ms stays slow
for longer than the untimed run that follows (DuckDB's scan of the tree scenario's fourth
query: 4.4-5.1 ms back to back or after a busy pause, 8.1-8.8 ms after sleeping), which
penalised the variants whose threads block rather than spin (onnxruntime's spinning
threads keep their CPUs awake)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

SETTLE_S = 0.05  # the previous run's spinning worker threads go idle


def settle(seconds: float = SETTLE_S) -> None:
    """Wait ``seconds`` on this thread without letting its CPU go idle (see above)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def paired(rounds: int, variants: dict[str, Callable[[], Any]], seed: int = 0) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Every variant once per round, in a new seeded random order each round; the times
    per round (seconds), and each variant's last value."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    values: dict[str, Any] = {}
    order = random.Random(seed)
    names = list(variants)
    for _ in range(rounds):
        for name in order.sample(names, len(names)):
            settle()
            variants[name]()  # untimed: its own warm state, after the previous variant's threads stopped
            start = time.perf_counter()
            values[name] = variants[name]()
            times[name].append(time.perf_counter() - start)
    return times, values


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over rounds of numerator / denominator (paired by round)."""
    return float(np.median([a / b for a, b in zip(numerator, denominator)]))
