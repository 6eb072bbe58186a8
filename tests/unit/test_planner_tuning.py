"""Tuned baselines: the grid, the bisection for the loosest holding setting, the cheapest pick,
and the queue-aware bound's fewest launches."""

from __future__ import annotations

import pytest

from lab.planner.bounds import fleet_for, min_launches
from lab.planner.plan import PlanSpec, make_plan
from lab.planner.simulator import Run, Samples
from lab.planner.traces import Trace
from lab.planner.tuning import Trial, cheapest, geometric, loosest_holding

RUN = Run("p", (), (), 0, 0, (), 0.0, Samples())


def trial(value: float, late_pct: float, hours: float) -> Trial:
    return Trial({"knob": value}, RUN, {"slo_violation_pct": late_pct, "instance_hours": hours})


def test_geometric_grid_spans_low_to_high() -> None:
    grid = geometric(0.5, 4.0, 2.0)
    assert grid == [0.5, 1.0, 2.0, 4.0]
    with pytest.raises(ValueError, match="ratio > 1"):
        geometric(1, 2, 1)


def test_bisection_finds_the_loosest_setting_that_holds() -> None:
    values = [float(v) for v in range(1, 21)]
    made: list[float] = []

    def replay(value: float) -> Trial:  # 1 late % per unit above 12: 17 is the loosest holding
        made.append(value)
        return trial(value, max(0.0, value - 12), 100 / value)

    tried = loosest_holding(values, replay)
    assert cheapest(tried).setting == {"knob": 17.0}
    assert len(made) <= 7  # a bisection, not a sweep of 20


def test_when_even_the_loosest_holds_it_is_the_only_trial() -> None:
    tried = loosest_holding([1.0, 2.0, 3.0], lambda v: trial(v, 0.0, 10 / v))
    assert [t.setting["knob"] for t in tried] == [3.0]


def test_when_nothing_holds_the_tightest_is_reported() -> None:
    tried = loosest_holding([1.0, 2.0, 3.0], lambda v: trial(v, 10 + v, 10 / v))
    best = cheapest(tried)
    assert best.setting == {"knob": 1.0} and not best.holds


def test_cheapest_prefers_fewer_hours_among_holding_trials() -> None:
    trials = [trial(1, 0.0, 50), trial(2, 4.9, 40), trial(3, 5.1, 30)]
    assert cheapest(trials).setting == {"knob": 2}
    with pytest.raises(ValueError, match="no trials"):
        cheapest([])


def test_min_launches_sums_the_increases_of_the_bounds_fleet() -> None:
    # Four 15-minute windows: rates that need c* = a, b, c, d; only the rises count.
    rates = [10_000 / 86_400, 40_000 / 86_400, 20_000 / 86_400, 60_000 / 86_400]
    trace = Trace("t", tuple(r * 900 for r in rates), 900)
    fleets = [fleet_for(r, 180, 900) for r in rates]
    assert min_launches(trace, 180, 900) == (fleets[1] - fleets[0]) + (fleets[3] - fleets[2])
    flat = Trace("flat", (100.0,) * 8, 900)
    assert min_launches(flat, 180, 900) == 0


def test_tuned_baselines_hold_the_slo_where_the_documented_ones_do_not() -> None:
    spec = PlanSpec(
        trace="uniform",
        jobs_per_day=3000,
        days=1,
        policies=("target-tracking", "target-tracking-tuned", "keda", "keda-tuned"),
    )
    plan = make_plan(spec)
    figures = plan.figures
    assert figures["target-tracking"]["slo_violation_pct"] > 5
    for name in ("target-tracking-tuned", "keda-tuned"):
        assert figures[name]["slo_violation_pct"] <= 5
    assert set(figures["keda-tuned"]["tuned_setting"]) == {"queue_length", "scale_down_window_s"}
