"""The static fleet's size: a c-server FIFO queue computed directly, and the smallest c that
holds the latency target. Much faster than the simulator, and for a fleet that never changes
(no boots, no crashes) it gives the very same start and finish times."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

from lab.planner.arrivals import Jobs
from lab.planner.errors import PlanError

P95 = 0.95


def late_allowance(jobs: int, quantile: float = P95) -> int:
    """How many jobs may be late while the nearest-rank ``quantile`` latency is still on time."""
    return jobs - math.ceil(quantile * jobs)


def finish_times(jobs: Jobs, servers: int) -> list[float]:
    """When each job finishes on ``servers`` always-up servers taking jobs in arrival order."""
    free = [0.0] * servers  # when each server is next free (a heap)
    found = []
    for arrival, duration in zip(jobs.arrivals, jobs.durations, strict=True):
        finish = max(arrival, free[0]) + duration
        heapq.heapreplace(free, finish)
        found.append(finish)
    return found


def holds_slo(jobs: Jobs, servers: int, slo_s: float, quantile: float = P95) -> bool:
    """True if ``servers`` always-up servers keep the ``quantile`` latency <= ``slo_s``: what
    ``finish_times`` gives, but stopping as soon as too many jobs are late."""
    allowed = late_allowance(len(jobs), quantile)
    if servers <= 0:
        return not jobs.arrivals
    free = [0.0] * min(servers, max(1, len(jobs)))  # when each server is next free (a heap)
    late = 0
    for arrival, duration in zip(jobs.arrivals, jobs.durations, strict=True):
        first = free[0]
        finish = (arrival if arrival > first else first) + duration
        heapq.heapreplace(free, finish)
        if finish - arrival > slo_s:
            late += 1
            if late > allowed:  # stop early: most failing sizes fail long before the end
                return False
    return True


def _smallest(ok: Callable[[int], bool], start: int) -> int:
    """The smallest c >= 1 with ``ok(c)``, for a monotone ``ok``, galloping from ``start``."""
    step = 1
    if ok(start):
        low, high = start - 1, start  # low fails (0 always does) once the gallop ends
        while low >= 1 and ok(low):
            high, step = low, step * 2
            low = high - step
        low = max(low, 0)
    else:
        low, high = start, start + 1
        while not ok(high):
            low, step = high, step * 2
            high = low + step
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if ok(mid) else (mid, high)
    return high


def smallest_static_fleet(jobs: Jobs, slo_s: float, guess: int, quantile: float = P95) -> int:
    """The fewest always-up instances whose overall ``quantile`` latency is <= ``slo_s``."""
    if not jobs.arrivals:
        return 0
    if not holds_slo(jobs, len(jobs), slo_s, quantile):
        raise PlanError(
            f"no fleet holds a p95 of {slo_s:g} s: the jobs alone take longer than that"
        )
    # A FIFO c-server queue never finishes a job later with more servers, so ``holds`` is
    # monotone in c and a gallop-then-bisect search is exact.
    return _smallest(lambda c: holds_slo(jobs, c, slo_s, quantile), max(1, guess))
