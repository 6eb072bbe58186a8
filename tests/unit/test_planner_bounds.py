"""The article's arithmetic and the lower bounds: 480 a day, 21 by work, 22 for the SLO."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from lab.planner import baselines
from lab.planner.arrivals import draw
from lab.planner.bounds import (
    fleet_for,
    jobs_per_machine_day,
    machines_by_work,
    queue_bound_hours,
    windows,
    work_bound_hours,
)
from lab.planner.errors import PlanError
from lab.planner.fifo import finish_times, holds_slo, smallest_static_fleet
from lab.planner.policy import Policy
from lab.planner.report import latencies, percentile
from lab.planner.simulator import SimSettings, simulate
from lab.planner.traces import Trace, load
from worker.scaler.capacity import ScalerConfig

RATE = 10_000 / 86_400


def test_one_machine_does_480_three_minute_jobs_a_day() -> None:
    assert jobs_per_machine_day(180) == 480


def test_ten_thousand_a_day_need_21_machines_by_work() -> None:
    assert machines_by_work(10_000, 180) == 21
    assert machines_by_work(9_600, 180) == 20  # exactly 20 machines' work: no 21st


def test_random_arrivals_need_22_for_a_15_minute_p95() -> None:
    assert fleet_for(RATE, 180, 900) == 22
    assert {fleet_for(rate, 180, 900) for rate, _ in windows(load("uniform", 10_000, 1))} == {22}


def _static(n: int) -> Policy:
    config = ScalerConfig(min_instances=n, max_instances=n, slo_p95_s=900, job_s=180)
    return Policy("static", baselines.static, config, 30, n)


def test_the_static_search_finds_22_and_the_simulator_agrees_21_is_too_few() -> None:
    trace = load("uniform", 10_000, days=3)
    jobs = draw(trace, 1, 180)
    assert smallest_static_fleet(jobs, 900, guess=5) == 22
    assert smallest_static_fleet(jobs, 900, guess=40) == 22
    settings = SimSettings(trace_s=trace.seconds)
    p95 = {
        n: percentile(sorted(latencies(jobs, simulate(_static(n), jobs, settings))), 0.95)
        for n in (21, 22)
    }
    assert p95[21] > 900 >= p95[22]
    assert not holds_slo(jobs, 21, 900)
    assert holds_slo(jobs, 22, 900)


def test_the_fast_fifo_and_the_simulator_give_the_same_latencies() -> None:
    trace = load("spike", 3000, days=1)
    jobs = draw(trace, 3, 180, "exponential")
    n = smallest_static_fleet(jobs, 900, guess=3)
    run = simulate(_static(n), jobs, SimSettings(trace_s=trace.seconds))
    assert list(run.finishes) == finish_times(jobs, n)
    waits = sorted(latencies(jobs, run))
    assert sum(w > 900 for w in waits) <= len(waits) - math.ceil(0.95 * len(waits))
    assert not holds_slo(jobs, n - 1, 900)


def test_an_slo_below_the_job_time_has_no_static_fleet() -> None:
    jobs = draw(load("uniform", 1000, days=1), 1, 180)
    with pytest.raises(PlanError, match="no fleet holds"):
        smallest_static_fleet(jobs, 100, guess=3)


def test_work_bound_is_the_sum_of_job_times() -> None:
    jobs = draw(load("uniform", 2000, days=1), 2, 180, "exponential")
    assert work_bound_hours(jobs.durations) == pytest.approx(sum(jobs.durations) / 3600)
    assert work_bound_hours([180.0] * 20) == 1.0


def test_queue_bound_is_c_star_times_window_length() -> None:
    trace = load("uniform", 10_000, days=1)  # 5-minute bins, merged into 96 windows of 15 min
    assert queue_bound_hours(trace, 180, 900) == pytest.approx(22 * 24)


def test_short_bins_are_merged_into_15_minute_windows() -> None:
    # A minute of heavy demand, then 14 quiet ones, twice: per bin, the peak would dominate.
    minute = [300.0] + [0.0] * 14
    trace = Trace("t", tuple(minute * 2), 60)
    assert windows(trace) == [(pytest.approx(300 / 900), 900)] * 2
    per_window = fleet_for(300 / 900, 180, 900)
    assert queue_bound_hours(trace, 180, 900) == pytest.approx(2 * per_window * 900 / 3600)
    per_bin = fleet_for(300 / 60, 180, 900) * 2 * 60 / 3600
    assert per_bin != pytest.approx(queue_bound_hours(trace, 180, 900))


def test_hourly_bins_are_not_merged() -> None:
    trace = Trace("t", (100.0, 400.0, 0.0), 3600)
    assert windows(trace) == [(100 / 3600, 3600), (400 / 3600, 3600), (0.0, 3600)]
    last = replace(trace, counts=(100.0,))
    assert queue_bound_hours(last, 180, 900) == fleet_for(100 / 3600, 180, 900)
