"""Lower bounds on instance time, and the article's always-on arithmetic.

- work bound: the jobs' own run time; no fleet can use less.
- queue-aware bound: in every window, the Erlang C fleet c* that keeps 95 % of waits within the
  budget (SLO - job time) at that window's mean rate, for the window's length. Bins shorter than
  15 minutes are merged into 15-minute windows first: no fleet follows a per-second rate.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from functools import cache

from lab.planner.traces import DAY_S, Trace
from worker.scaler.erlang import DEFAULT_QUANTILE, servers_for

WINDOW_S = 900.0


def windows(trace: Trace, window_s: float = WINDOW_S) -> list[tuple[float, float]]:
    """(mean arrivals/s, length s) per window: the trace's bins, merged when shorter than
    ``window_s`` (``window_s // bin_seconds`` bins each; the last may be shorter)."""
    per = max(1, int(window_s // trace.bin_seconds)) if trace.bin_seconds < window_s else 1
    found = []
    for start in range(0, len(trace.counts), per):
        group = trace.counts[start : start + per]
        seconds = len(group) * trace.bin_seconds
        found.append((sum(group) / seconds, seconds))
    return found


@cache
def fleet_for(rate: float, job_s: float, slo_s: float, quantile: float = DEFAULT_QUANTILE) -> int:
    """c*: instances an M/M/c queue needs at ``rate`` so 95 % of jobs finish within ``slo_s``."""
    return servers_for(rate, job_s, max(0.0, slo_s - job_s), quantile)


def work_bound_hours(durations: Sequence[float]) -> float:
    """The jobs' total run time, in hours."""
    return math.fsum(durations) / 3600


def queue_bound_hours(trace: Trace, job_s: float, slo_s: float) -> float:
    """Sum over windows of c*(window) x its length, in hours."""
    return sum(fleet_for(rate, job_s, slo_s) * seconds for rate, seconds in windows(trace)) / 3600


def min_launches(trace: Trace, job_s: float, slo_s: float) -> int:
    """The sum of the increases of c* from window to window: the fewest launches a fleet that
    follows the queue-aware bound needs (it starts at the first window's c*, as the planner's
    warm start does)."""
    fleets = [fleet_for(rate, job_s, slo_s) for rate, _ in windows(trace)]
    return sum(max(0, later - earlier) for earlier, later in itertools.pairwise(fleets))


def jobs_per_machine_day(job_s: float) -> float:
    """What one always-busy machine finishes in a day (480 for three-minute jobs)."""
    return DAY_S / job_s


def machines_by_work(jobs_per_day: float, job_s: float) -> int:
    """Always-on machines the daily work alone needs (21 for 10,000 three-minute jobs)."""
    return math.ceil(jobs_per_day * job_s / DAY_S - 1e-9)
