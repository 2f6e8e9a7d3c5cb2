"""How the benchmarks summarise repeated measurements, so every table reads the same way."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def spread(values: Sequence[float], digits: int = 1) -> str:
    """ "min / median / max": the machine is noisy, so every repeated figure shows its range."""
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[int(len(ordered) * 0.99)]


def latency_passes(
    call: Callable[[Item], Result], items: Sequence[Item], passes: int
) -> tuple[list[float], list[float], list[Result]]:
    """Each pass's median and p99 wall time (ms) of `call` over `items`, and the last pass's results."""
    medians, tails, results = [], [], []
    for _ in range(passes):
        times, results = [], []
        for item in items:
            started = time.perf_counter()
            results.append(call(item))
            times.append((time.perf_counter() - started) * 1000)
        medians.append(statistics.median(times))
        tails.append(p99(times))
    return medians, tails, results


def resident_bytes() -> int:
    """This process's resident set."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
