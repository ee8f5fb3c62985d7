"""How noisy is the machine right now? A busy loop that counts CPU stalls."""

from __future__ import annotations

import time


def stalls_per_second(duration: float = 0.5, threshold: float = 0.001) -> float:
    """Spin for ``duration`` s; return how many times per second the clock jumped by
    more than ``threshold`` between two reads (the process lost its CPU). A quiet
    machine gives ~0; a shared 2-core box under load gives tens."""
    perf = time.perf_counter
    start = prev = perf()
    end = start + duration
    stalls = 0
    while prev < end:
        t = perf()
        if t - prev > threshold:
            stalls += 1
        prev = t
    return stalls / (prev - start)
