"""Tuned baselines: the cheapest setting of a baseline's main knob that holds the SLO on the trace.

A baseline configured as its documentation says may miss the SLO (target tracking's backlog per
instance of SLO / job time parks a queue that alone takes the whole budget), which makes "cheaper
than the baseline" an unfair claim. So the planner also replays each baseline at the setting an
operator would reach by trial on this very trace: the knob is bisected over a sorted grid for the
loosest (cheapest) value that still holds the SLO, and of every value tried that holds, the one
with the fewest instance-hours wins. Tuning on the trace it is judged on favours the baseline.

Bisection assumes that a tighter setting never makes more jobs late; where a trace breaks that,
the search may miss a cheaper holding value, never report one that does not hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lab.planner.simulator import Run

SLO_LATE_PCT = 5.0  # the SLO: at most 5 % of jobs over the latency target


@dataclass(frozen=True)
class Trial:
    """One setting replayed: the setting, its replay and its figures."""

    setting: dict[str, float]
    run: Run
    figures: dict[str, Any]

    @property
    def holds(self) -> bool:
        """True when at most 5 % of jobs were late."""
        return float(self.figures["slo_violation_pct"]) <= SLO_LATE_PCT

    @property
    def hours(self) -> float:
        """Instance-hours used."""
        return float(self.figures["instance_hours"])


def geometric(low: float, high: float, ratio: float) -> list[float]:
    """Values from ``low`` to at least ``high``, each ``ratio`` times the last (rounded to 3
    significant digits, so settings print as they were tried)."""
    if not 0 < low <= high or ratio <= 1:
        raise ValueError(f"need 0 < low <= high and ratio > 1, not {low}, {high}, {ratio}")
    steps = math.ceil(math.log(high / low) / math.log(ratio) - 1e-9)
    return [float(f"{low * ratio**k:.3g}") for k in range(steps + 1)]


def loosest_holding(values: Sequence[float], trial: Callable[[float], Trial]) -> list[Trial]:
    """Bisect ``values`` (sorted tight to loose: each looser value is cheaper and makes more jobs
    late) for the loosest that holds the SLO; every trial made, in the order made."""
    tried: list[Trial] = []

    def holds(index: int) -> bool:
        found = trial(values[index])
        tried.append(found)
        return found.holds

    low, high = 0, len(values) - 1
    if holds(high):
        return tried
    if not holds(low):
        return tried
    while high - low > 1:  # values[low] holds, values[high] does not
        mid = (low + high) // 2
        low, high = (mid, high) if holds(mid) else (low, mid)
    return tried


def cheapest(trials: Sequence[Trial]) -> Trial:
    """The holding trial with the fewest instance-hours; when none holds, the one with the fewest
    late jobs (the search's tightest setting), so the table shows how far it stayed off."""
    if not trials:
        raise ValueError("no trials to choose from")
    holding = [t for t in trials if t.holds]
    if holding:
        return min(holding, key=lambda t: (t.hours, sorted(t.setting.items())))
    return min(trials, key=lambda t: (float(t.figures["slo_violation_pct"]), t.hours))
