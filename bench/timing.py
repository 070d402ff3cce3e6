"""The timing loop the bench scripts share."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_seconds(repeat: int, run: Callable[[], int], n: int) -> tuple[float, float]:
    """The best wall-clock and the best CPU seconds (this process, every thread) of
    ``repeat`` runs of ``run``, which returns how many rows it gave (``n`` expected): on a
    shared machine the CPU figure moves less."""
    best, cpu = float("inf"), float("inf")
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        rows = run()
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
        if rows != n:
            raise SystemExit(f"expected {n} rows, got {rows}")
    return best, cpu
