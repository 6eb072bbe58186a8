"""The scaler's policy on a virtual clock: each rule a user relies on, with no I/O at all."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import pytest

from worker.scaler.capacity import (
    Decision,
    Member,
    Memory,
    Observed,
    ScalerConfig,
    budget_s,
    decide,
)
from worker.scaler.erlang import erlang_c, expected_queue, servers_for, wait_exceeds

CONFIG = ScalerConfig(
    min_instances=1,
    max_instances=10,
    slo_p95_s=900,
    job_s=180,
    boot_s=120,
    stale_after_s=60,
    scale_in_after_s=600,
)


def up(n: int, now: float, state: str = "idle", prefix: str = "i-") -> tuple[Member, ...]:
    return tuple(
        Member(f"{prefix}{k}", launched_at=now - 3600, state=state, heartbeat_at=now)  # type: ignore[arg-type]
        for k in range(n)
    )


def at(members: tuple[Member, ...], now: float) -> tuple[Member, ...]:
    """The same members, heard from at ``now``."""
    return tuple(replace(m, heartbeat_at=now) for m in members)


def observed(
    members: tuple[Member, ...], visible: int = 0, in_flight: int = 0, **kw: object
) -> Observed:
    return Observed(visible=visible, in_flight=in_flight, delayed=0, members=members, **kw)  # type: ignore[arg-type]


def run(ticks: list[tuple[float, Observed]], config: ScalerConfig = CONFIG) -> list[Decision]:
    memory, out = Memory(), []
    for now, seen in ticks:
        decision = decide(seen, config, memory, now)
        memory = decision.memory
        out.append(decision)
    return out


# --- Erlang C, the arithmetic under the policy and the planner's bound


def test_erlang_c_matches_the_textbook_sum() -> None:
    # C(2, 1) = (a^c/c! * c/(c-a)) / (sum_{k<c} a^k/k! + a^c/c! * c/(c-a)) = 1/3
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(3, 0) == 0.0


def test_erlang_c_stays_finite_for_thousands_of_servers() -> None:
    assert 0 < erlang_c(5000, 4900.0) < 1


def test_article_case_needs_22_machines_for_a_15_minute_p95() -> None:
    rate = 10_000 / 86_400
    assert servers_for(rate, 180, 720) == 22
    assert wait_exceeds(21, rate, 180, 720) > 0.05 >= wait_exceeds(22, rate, 180, 720)
    assert servers_for(0, 180, 720) == 0
    assert expected_queue(22, rate, 180) > 0 and expected_queue(20, rate, 180) == float("inf")


# --- the policy


def test_idle_fleet_at_min_does_nothing() -> None:
    [decision] = run([(0, observed(up(1, 0)))])
    assert not decision.acts and decision.desired == 1


def test_never_below_min_launches_up_to_it() -> None:
    [decision] = run([(0, observed(()))])
    assert decision.launch == 1
    assert "launch 1" in decision.reason


def test_never_above_max_however_long_the_queue() -> None:
    [decision] = run([(0, observed(up(2, 0, "busy"), visible=10_000, in_flight=2))])
    assert decision.launch == 8 and decision.desired == 10
    config = replace(CONFIG, max_instances=3)
    [decision] = run([(0, observed(up(2, 0, "busy"), visible=10_000, in_flight=2))], config)
    assert decision.launch == 1


def test_max_counts_draining_instances_still_alive() -> None:
    draining = tuple(replace(m, drain_requested=True, state="busy") for m in up(3, 0, prefix="d-"))
    config = replace(CONFIG, max_instances=5)
    [decision] = run(
        [(0, observed(up(2, 0, "busy") + draining, visible=10_000, in_flight=5))], config
    )
    assert decision.launch == 0  # 2 serving + 3 draining are 5 live instances already


def test_backlog_launches_before_the_queue_would_make_jobs_late() -> None:
    # 10,000 three-minute jobs a day arrive (21 busy, queue growing by one a minute): about 22
    # are needed. The policy may spend the latency budget on the queue, but it must want the
    # 22nd before the queue's predicted wait (queue x job / instances, plus a boot for the new
    # one) would pass the budget.
    members = up(21, 0, "busy")
    config = replace(CONFIG, max_instances=100)
    ticks = [
        (t, observed(at(members, t), visible=t // 60, in_flight=21)) for t in range(0, 7200, 30)
    ]
    decisions = run(ticks, config)
    budget = budget_s(180, config)
    late = next(t for t, seen in ticks if seen.visible * 180 / 21 + config.boot_s > budget)
    grown = [(t, d) for (t, _), d in zip(ticks, decisions, strict=True) if d.desired > 21]
    assert grown, "never wanted a 22nd instance"
    wants, decision = grown[0]
    assert wants < late
    assert 22 <= decision.desired <= 26


def test_an_instance_running_four_jobs_at_once_counts_as_four_servers() -> None:
    # The same demand as above, on workers that say they run 4 jobs at once: 22 servers are
    # 6 instances (21 busy slots: 6 instances, each with its 4 jobs in flight). The queue grows
    # by one a minute; each fleet must grow before its own queue's predicted wait (queue x job
    # / servers, plus a boot) passes the budget — 6 servers of one job, or 24 of four.
    config = replace(CONFIG, max_instances=100)
    members = tuple(replace(m, slots=4) for m in up(6, 0, "busy"))
    ticks = [
        (t, observed(at(members, t), visible=t // 60, in_flight=21)) for t in range(0, 7200, 30)
    ]
    four = run(ticks, config)
    assert 6 <= four[40].desired <= 7  # after 20 minutes
    assert "4 jobs at once each" in four[40].reason
    one = run(
        [(t, observed(at(up(6, 0, "busy"), t), visible=t // 60, in_flight=21)) for t, _ in ticks],
        config,
    )
    budget = budget_s(180, config)

    def grows_by(decisions: list[Decision], servers: int) -> bool:
        late = next(t for t, seen in ticks if seen.visible * 180 / servers + config.boot_s > budget)
        return any(d.desired > 6 for (t, _), d in zip(ticks, decisions, strict=True) if t < late)

    assert grows_by(one, 6) and grows_by(four, 24)
    assert not grows_by(four, 6)  # four jobs at once: no launch when one-job instances need it
    assert one[-1].desired >= 3 * four[-1].desired  # after two hours: 4 servers each, or 1


def test_servers_per_instance_are_the_median_said_and_remembered_while_none_serves() -> None:
    mixed = tuple(replace(m, slots=k) for m, k in zip(up(3, 0, "busy"), (1, 4, 8), strict=True))
    first = decide(observed(mixed, in_flight=3), CONFIG, Memory(), 0)
    assert first.memory.slots == 4
    booting = (Member("b-1", launched_at=0),)  # no status yet: says nothing
    second = decide(observed(booting, visible=40), CONFIG, first.memory, 30)
    assert second.memory.slots == 4
    assert decide(observed(booting, visible=40), CONFIG, Memory(), 30).memory.slots == 1


def test_booting_instances_count_as_coming_capacity() -> None:
    members = up(1, 0, "busy")
    first = decide(observed(members, visible=30, in_flight=1), CONFIG, Memory(), 0)
    assert first.launch > 0
    booting = tuple(Member(f"b-{k}", launched_at=0) for k in range(first.launch))
    second = decide(observed(members + booting, visible=30, in_flight=1), CONFIG, first.memory, 30)
    assert second.launch == 0  # no double launch while they boot


def test_instance_silent_past_boot_timeout_is_replaced() -> None:
    never = Member("i-never", launched_at=0)
    [decision] = run([(CONFIG.boot_timeout_s + 1, observed((*up(1, 601), never)))])
    assert decision.replace == ("i-never",)


def test_stale_heartbeat_is_replaced_and_replaced_by_a_launch() -> None:
    config = replace(CONFIG, min_instances=2)
    zombie = Member("i-zombie", launched_at=0, state="busy", heartbeat_at=100)
    now = 100 + config.stale_after_s + 1
    [decision] = run([(now, observed((*up(1, now), zombie), in_flight=1))], config)
    assert decision.replace == ("i-zombie",)
    assert decision.launch == 1  # back to min
    assert "unhealthy" in decision.reason


def test_fresh_heartbeat_is_not_replaced() -> None:
    busy = Member("i-slow", launched_at=0, state="busy", heartbeat_at=100)
    [decision] = run([(100 + CONFIG.stale_after_s - 1, observed((busy,), in_flight=1))])
    assert decision.replace == ()


def test_scale_in_waits_for_the_window_then_drains_idle_first() -> None:
    members = (*up(3, 0, "idle"), Member("i-busy", 0, "busy", heartbeat_at=0))
    config = replace(CONFIG, min_instances=1, scale_in_after_s=600)
    busy_fleet = tuple(replace(m, state="busy") for m in members)
    ticks = [(0, observed(busy_fleet, visible=200, in_flight=4))]  # high need at t=0
    ticks += [(t, observed(at(members, t), in_flight=1))
              for t in range(30, 700, 30)]  # fmt: skip
    decisions = run(ticks, config)
    before = [d for (t, _), d in zip(ticks, decisions, strict=True) if 0 < t < 600]
    assert all(not d.drain for d in before)  # the need stayed high inside the window
    after = next(d for d in decisions if d.drain)
    assert "i-busy" not in after.drain  # idle ones go first
    assert len(after.drain) in (2, 3)  # towards the need (1 busy job, min 1)


def simulate(
    config: ScalerConfig,
    visible: Callable[[float], int],
    until: float,
    in_flight: Callable[[float], int] = lambda t: 0,
    job_seconds: tuple[float, ...] = (),
) -> list[Decision]:
    """A toy fleet the decisions act on: launches boot for boot_s (then busy if jobs are in
    flight, else idle), drains stop at the next tick."""
    members: dict[str, Member] = {m.id: m for m in up(config.min_instances, 0)}
    memory, out, serial = Memory(), [], 0
    for t in range(0, int(until), 30):
        state = "busy" if in_flight(t) else "idle"
        for key, m in members.items():
            if m.drain_requested:
                members[key] = replace(m, state="stopped", heartbeat_at=t)
            elif m.state != "booting" or t - m.launched_at >= config.boot_s:
                members[key] = replace(m, state=state, heartbeat_at=t)  # type: ignore[arg-type]
        seen = observed(tuple(members.values()), visible(t), in_flight(t), job_seconds=job_seconds)
        decision = decide(seen, config, memory, t)
        memory = decision.memory
        for key in decision.terminate + decision.replace:
            del members[key]
        for key in decision.drain:
            members[key] = replace(members[key], drain_requested=True)
        for _ in range(decision.launch):
            serial += 1
            members[f"n-{serial}"] = Member(f"n-{serial}", launched_at=t)
        out.append(decision)
    return out


def test_hysteresis_no_flapping_under_an_alternating_queue() -> None:
    config = replace(CONFIG, min_instances=2, max_instances=20)
    decisions = simulate(config, lambda t: 60 if (t // 30) % 2 else 0, until=3 * 3600)
    directions = [("out" if d.launch else "in") for d in decisions if d.launch or d.drain]
    flips = sum(a != b for a, b in itertools.pairwise(directions))
    assert flips <= 1  # grows once to what the recurring backlog needs, then holds
    assert sum(d.launch for d in decisions) <= 20


def test_fleet_grows_for_a_burst_and_drains_back_to_min() -> None:
    config = replace(CONFIG, min_instances=1, max_instances=8)
    decisions = simulate(config, lambda t: 200 if 600 <= t < 1200 else 0, until=4 * 3600)
    assert max(d.desired for d in decisions) == 8
    assert decisions[-1].desired == 1
    assert sum(d.launch for d in decisions) == 7 and sum(len(d.drain) for d in decisions) == 7


def test_scale_in_never_terminates_a_running_job() -> None:
    # Drained instances are only ever *terminated* once their worker reports "stopped".
    draining = Member("i-d", 0, "busy", heartbeat_at=1000, drain_requested=True)
    stopped = Member("i-s", 0, "stopped", heartbeat_at=1000, drain_requested=True)
    [decision] = run([(1000, observed((*up(1, 1000), draining, stopped), in_flight=1))])
    assert decision.terminate == ("i-s",)
    assert "i-d" not in decision.terminate + decision.replace


def test_the_scalers_own_instance_is_drained_last() -> None:
    members = up(3, 0, "idle")
    config = replace(CONFIG, min_instances=2, scale_in_after_s=0)
    [decision] = run([(0, observed(members, self_id="i-0"))], config)
    assert decision.drain == ("i-1",)


def test_stopped_without_a_drain_request_is_coming_back_not_replaced() -> None:
    # A re-deploy restarts the worker: its "stopped" is not a reason to launch another.
    restarting = Member("i-r", 0, "stopped", heartbeat_at=1000)
    config = replace(CONFIG, min_instances=2)
    [decision] = run([(1001, observed((*up(1, 1001), restarting)))], config)
    assert decision.launch == 0 and not decision.replace


def test_hourly_billing_drains_only_near_the_end_of_a_paid_hour() -> None:
    config = replace(
        CONFIG, min_instances=0, billing_s=3600, billing_margin_s=300, scale_in_after_s=0
    )
    fresh = Member(
        "i-fresh", launched_at=1000, state="idle", heartbeat_at=2000
    )  # 1000 s into its hour
    old = Member("i-old", launched_at=2000 - 3500, state="idle", heartbeat_at=2000)  # 100 s left
    [decision] = run([(2000, observed((fresh, old)))], config)
    assert decision.drain == ("i-old",)


def test_per_second_billing_drains_at_once() -> None:
    config = replace(CONFIG, min_instances=0, scale_in_after_s=0)
    [decision] = run([(10, observed(up(2, 10)))], config)
    assert len(decision.drain) == 2


def test_job_time_comes_from_the_workers_timings() -> None:
    members = up(1, 0, "busy")
    slow = decide(
        observed(members, visible=20, in_flight=1, job_seconds=(600.0,) * 5), CONFIG, Memory(), 0
    )
    fast = decide(
        observed(members, visible=20, in_flight=1, job_seconds=(6.0,) * 5), CONFIG, Memory(), 0
    )
    assert slow.desired > fast.desired


def test_rate_estimate_follows_completions_and_queue_growth() -> None:
    members = up(5, 0, "busy")
    memory = Memory()
    for t in range(0, 3000, 30):
        decision = decide(observed(at(members, t), in_flight=5), CONFIG, memory, t)
        memory = decision.memory
    assert memory.rate == pytest.approx(5 / 180, rel=0.01)  # Little's law on the servers


def test_messages_a_worker_received_ahead_wait_in_its_batch_not_on_a_server() -> None:
    # The twin's lab: one instance runs one half-second job at a time, and ten requests are out.
    # A worker that takes a batch of ten off the queue leaves none visible and ten in flight, of
    # which one runs and nine wait. Counted as completions (in flight / job time) they read as
    # 20 arrivals a second, a rise, and the lab's fleet went to 4 where the simulator's went to
    # 2. The policy must see the same work either way: one running, nine queued.
    config = ScalerConfig(min_instances=1, max_instances=4, slo_p95_s=6, job_s=0.5, boot_s=8,
                          scale_in_after_s=10, rate_window_s=15)  # fmt: skip
    members = up(1, 0, "busy")
    timed = {"job_seconds": (0.5,) * 20}

    def ticks(visible: int, in_flight: int) -> list[tuple[float, Observed]]:
        return [
            (float(t), observed(at(members, t), visible, in_flight, **timed))
            for t in range(0, 40, 2)
        ]

    queued = run(ticks(visible=9, in_flight=1), config)
    batched = run(ticks(visible=0, in_flight=10), config)
    assert [d.desired for d in batched] == [d.desired for d in queued]
    assert batched[-1].memory.rate == pytest.approx(1 / 0.5)  # one server, 2 a second
    assert max(d.desired for d in batched) == 2  # nine waiting: 4.5 s over the 4.4 s line
    assert "backlog 9" in batched[0].reason


def test_config_problems_are_named() -> None:
    bad = ScalerConfig(min_instances=5, max_instances=2, slo_p95_s=0, quantile=1.5)
    problems = " ".join(bad.problems())
    assert "min (5) <= max (2)" in problems and "slo_p95_s" in problems and "quantile" in problems
    assert CONFIG.problems() == []


def test_policy_is_pure_same_inputs_same_decision() -> None:
    seen = observed(up(2, 0, "busy"), visible=50, in_flight=2)
    assert decide(seen, CONFIG, Memory(), 5) == decide(seen, CONFIG, Memory(), 5)


# --- fewer launches, same SLO: the rules that weigh a launch against keeping an instance


def test_fixed_length_jobs_need_fewer_instances_than_exponential_ones() -> None:
    rate = 40_000 / 86_400
    assert wait_exceeds(86, rate, 180, 120, scv=0.0) < wait_exceeds(86, rate, 180, 120)
    fixed, exponential = servers_for(rate, 180, 120, scv=0.0), servers_for(rate, 180, 120)
    assert (fixed, exponential) == (86, 88)
    assert servers_for(rate, 180, 120, scv=3.0) > exponential  # heavy tails need more


def test_timed_job_variability_spends_the_budget() -> None:
    members = up(6, 0, "busy")
    steady = observed(members, visible=30, in_flight=6)
    fixed = decide(replace(steady, job_seconds=(180.0,) * 20), CONFIG, Memory(), 0)
    varied = decide(
        replace(steady, job_seconds=(30.0, 330.0) * 10), CONFIG, Memory(), 0
    )  # the same mean, far more spread
    assert fixed.memory.scv == pytest.approx(0.0)
    assert varied.memory.scv is not None and varied.memory.scv > 0.5
    assert fixed.desired <= varied.desired


def wobbling(config: ScalerConfig, until: float, swing: float) -> list[Decision]:
    """A fleet serving a steady rate whose estimate wobbles by ``swing`` around it: in flight
    jobs alternate between two levels every 20 minutes."""

    def busy(t: float) -> int:
        return round(6 * (1 + (swing if (t // 1200) % 2 else -swing)))

    return simulate(config, lambda t: 0, until, busy, (180.0,) * 20)


def test_a_need_wobbling_within_its_noise_is_not_drained_and_relaunched() -> None:
    config = replace(CONFIG, min_instances=1, max_instances=20, scale_in_after_s=300)
    held = wobbling(config, 12 * 3600, 0.15)
    churned = wobbling(
        replace(config, scale_in_sigma=0, launch_sigma=0, rise_sigma=0, rate_window_s=600),
        12 * 3600,
        0.15,
    )
    launches = sum(d.launch for d in held[120:])  # after the first hour
    assert launches < sum(d.launch for d in churned[120:])
    assert launches <= 2


def test_a_rising_demand_is_not_drained_into() -> None:
    config = replace(CONFIG, min_instances=0, max_instances=50, scale_in_after_s=0)
    members = up(12, 0, "idle")
    memory = Memory()
    drains = []
    for t in range(0, 3600, 30):  # in flight climbs by one every minute: a ramp
        busy = min(12, t // 60)
        fleet = tuple(replace(m, state="busy" if k < busy else "idle", heartbeat_at=t)
                      for k, m in enumerate(members))  # fmt: skip
        decision = decide(observed(fleet, in_flight=busy), config, memory, t)
        memory = decision.memory
        drains.append(len(decision.drain))
    flat = decide(observed(at(members, 3600), in_flight=0), config, Memory(), 3600)
    assert sum(drains[60:]) == 0  # once the ramp shows, nothing is drained into it
    assert len(flat.drain) == 12  # the same fleet with no demand at all drains at once


def test_an_instance_younger_than_its_minimum_bill_is_kept() -> None:
    config = replace(CONFIG, min_instances=0, scale_in_after_s=0, min_billed_s=60)
    young = Member("i-young", launched_at=1000 - 30, state="idle", heartbeat_at=1000)
    old = Member("i-old", launched_at=0, state="idle", heartbeat_at=1000)
    [decision] = run([(1000, observed((young, old)))], config)
    assert decision.drain == ("i-old",)


def test_heavy_tailed_jobs_leave_the_long_ones_time_to_run() -> None:
    assert budget_s(180, CONFIG) == 720  # untimed: the SLO less the mean job
    assert budget_s(180, CONFIG, 0.0) == 720  # all jobs alike: the same
    assert budget_s(180, CONFIG, 1.0) == 540  # exponential: less the mean plus one sd
    assert budget_s(180, CONFIG, 100.0) == 18  # never below a tenth of a job


# --- the queue band: spend the budget on a queue, not on idle instances


def steady_memory(now: float, per_hour: float, outstanding: int) -> Memory:
    """A scaler that has watched ``per_hour`` three-minute jobs arrive for a while."""
    rate = per_hour / 3600
    return Memory(at=now - 30, rate=rate, fast=rate, job_s=180.0, outstanding=outstanding)


def test_a_queue_near_its_line_keeps_the_fleet_a_short_one_lets_one_go() -> None:
    config = replace(CONFIG, min_instances=0, max_instances=50, scale_in_after_s=0)
    fleet = up(22, 1000, "busy")
    per_hour = 20.8 * 20  # 20.8 instances' worth of three-minute jobs
    near = decide(
        observed(fleet, visible=60, in_flight=22), config, steady_memory(1000, per_hour, 82), 1000
    )
    short = decide(
        observed(fleet, visible=10, in_flight=22), config, steady_memory(1000, per_hour, 32), 1000
    )
    assert near.drain == () and near.launch == 0  # 60 waiting would cross the line within the hold
    assert short.drain  # 10 waiting: fewer instances stay busy on a queue that grows for an hour


def test_with_an_empty_queue_only_idle_instances_are_drained() -> None:
    config = replace(CONFIG, min_instances=0, max_instances=50, scale_in_after_s=0)
    busy, idle = up(8, 1000, "busy"), up(4, 1000, "idle", prefix="idle-")
    memory = steady_memory(1000, 9 * 20, 8)  # the estimate lags: the work of 9 to 10 instances
    decision = decide(observed(busy + idle, in_flight=8), config, memory, 1000)
    assert sorted(decision.drain) == [m.id for m in idle]


def test_rare_arrivals_scale_to_zero_frequent_ones_keep_one() -> None:
    config = replace(CONFIG, min_instances=0, scale_in_after_s=0)
    lone = up(1, 1000, "idle")
    rare = decide(observed(lone), config, steady_memory(1000, 1, 0), 1000)
    frequent = decide(observed(lone), config, steady_memory(1000, 20, 0), 1000)
    assert rare.drain == ("i-0",)  # a launch per arrival costs less than an idle instance
    assert frequent.drain == ()
