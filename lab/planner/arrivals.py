"""Jobs drawn from a trace: Poisson arrivals at each bin's rate, and each job's duration."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

from lab.planner.errors import PlanError
from lab.planner.traces import Trace

JobDist = Literal["fixed", "exponential", "lognormal"]
JOB_DISTS: tuple[JobDist, ...] = ("fixed", "exponential", "lognormal")
# Heavy-tailed job times: lognormal with sigma 1 has a squared coefficient of variation of
# e - 1 = 1.72 (exponential: 1) and a 99th percentile about 6x its mean.
LOGNORMAL_SIGMA = 1.0


@dataclass(frozen=True)
class Jobs:
    """Arrival times (sorted, seconds from the trace's start) and durations, index for index."""

    arrivals: tuple[float, ...]
    durations: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.arrivals)


def seeded(stream: str, seed: int) -> random.Random:
    """A random stream of its own per purpose, so that one draw more in one never shifts another."""
    return random.Random(f"{stream}:{seed}")  # noqa: S311 -- a replayable simulation, no secrets


def poisson_arrivals(trace: Trace, rng: random.Random) -> list[float]:
    """Arrival times of a Poisson process whose rate is each bin's count / bin length."""
    # One unit-rate stream walked through the bins' expected counts (a time change): exact for
    # piecewise-constant rates and one draw per arrival, whatever the number of empty bins.
    times: list[float] = []
    left = rng.expovariate(1.0)  # expected arrivals still to pass before the next one
    for i, count in enumerate(trace.counts):
        if count <= 0:
            continue
        used = 0.0
        while left <= count - used:
            used += left
            times.append((i + used / count) * trace.bin_seconds)
            left = rng.expovariate(1.0)
        left -= count - used
    return times


def draw(trace: Trace, seed: int, job_seconds: float, job_dist: str = "fixed") -> Jobs:
    """The jobs of one replay: the same ``seed`` gives the same jobs for every policy."""
    if job_seconds <= 0:
        raise PlanError(f"--job-seconds must be positive, not {job_seconds:g}")
    arrivals = poisson_arrivals(trace, seeded("arrivals", seed))
    if job_dist == "fixed":
        durations = [job_seconds] * len(arrivals)
    elif job_dist == "exponential":
        rng = seeded("durations", seed)
        durations = [rng.expovariate(1.0 / job_seconds) for _ in arrivals]
    elif job_dist == "lognormal":
        rng = seeded("durations", seed)
        mu = math.log(job_seconds) - LOGNORMAL_SIGMA**2 / 2  # so that the mean is job_seconds
        durations = [rng.lognormvariate(mu, LOGNORMAL_SIGMA) for _ in arrivals]
    else:
        raise PlanError(f"--job-dist must be one of {', '.join(JOB_DISTS)}, not {job_dist!r}")
    return Jobs(tuple(arrivals), tuple(durations))
