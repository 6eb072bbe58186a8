"""Figures of one replay: latency percentiles, SLO violations, instance time and its bounds."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from lab.planner.arrivals import Jobs
from lab.planner.simulator import Run
from lab.planner.traces import DAY_S

MIN_BILLED_S = 60.0  # AWS bills per second with a one-minute minimum per instance


@dataclass(frozen=True)
class Bounds:
    """The lower bounds a policy's instance time is compared with, in hours."""

    work_hours: float
    queue_hours: float


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of already sorted values (0 when there are none)."""
    if not ordered:
        return 0.0
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latencies(jobs: Jobs, run: Run) -> list[float]:
    """Finish - arrival, per job."""
    return [f - a for a, f in zip(jobs.arrivals, run.finishes, strict=True)]


def hourly_p95(jobs: Jobs, waits: Sequence[float]) -> list[tuple[int, float]]:
    """(hour, p95 latency of the jobs that arrived in it), for hours with arrivals."""
    found = []
    start = 0
    arrivals = jobs.arrivals
    while start < len(arrivals):
        hour = int(arrivals[start] // 3600)
        end = start
        while end < len(arrivals) and int(arrivals[end] // 3600) == hour:
            end += 1
        found.append((hour, percentile(sorted(waits[start:end]), 0.95)))
        start = end
    return found


def instance_hours(lives: Sequence[tuple[float, float]]) -> float:
    """Per-second billing, at least a minute per instance."""
    return math.fsum(max(MIN_BILLED_S, end - start) for start, end in lives) / 3600


def billed_hours(lives: Sequence[tuple[float, float]]) -> int:
    """Per-hour billing: each instance's life rounded up to whole hours (at least one)."""
    return sum(max(1, math.ceil((end - start) / 3600)) for start, end in lives)


def summarize(
    jobs: Jobs, run: Run, slo_s: float, bounds: Bounds, price_per_hour: float
) -> dict[str, float | int]:
    """The per-policy figures ``lab plan`` prints; cost is per-second instance time (the minute
    minimum included) at ``price_per_hour``."""
    waits = latencies(jobs, run)
    ordered = sorted(waits)
    late = len(waits) - bisect.bisect_right(ordered, slo_s)
    hours = hourly_p95(jobs, waits)
    used = instance_hours(run.lives)
    cost = used * price_per_hour
    return {
        "p50_s": round(percentile(ordered, 0.50), 1),
        "p95_s": round(percentile(ordered, 0.95), 1),
        "p99_s": round(percentile(ordered, 0.99), 1),
        "slo_violation_pct": round(100 * late / max(1, len(waits)), 2),
        "hour_slo_violation_pct": round(
            100 * sum(p > slo_s for _, p in hours) / max(1, len(hours)), 2
        ),
        "instance_hours": round(used, 2),
        "billed_hours": billed_hours(run.lives),
        "launches": run.launches,
        "launches_per_day": round(run.launches * DAY_S / run.horizon_s, 1),
        "cost_usd": round(cost, 2),
        "cost_per_1000_jobs_usd": round(1000 * cost / len(jobs), 4) if len(jobs) else 0.0,
        "ratio_to_work_bound": round(used / bounds.work_hours, 3) if bounds.work_hours else 0.0,
        "ratio_to_queue_bound": round(used / bounds.queue_hours, 3) if bounds.queue_hours else 0.0,
    }
