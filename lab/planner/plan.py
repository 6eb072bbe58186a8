"""A capacity plan: one trace, its jobs and bounds, and each chosen policy replayed against them.

Every dynamic policy starts warm: the fleet ran before the trace began, with as many instances up
as the first window of the trace needs (c* of the queue-aware bound, within --min/--max). The
static fleet starts with its N. All policies see the same jobs (one seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lab.planner import baselines
from lab.planner.arrivals import JOB_DISTS, Jobs, draw
from lab.planner.bounds import (
    fleet_for,
    machines_by_work,
    queue_bound_hours,
    windows,
    work_bound_hours,
)
from lab.planner.errors import PlanError
from lab.planner.fifo import smallest_static_fleet
from lab.planner.policy import Policy
from lab.planner.report import Bounds, summarize
from lab.planner.simulator import Run, SimSettings, simulate
from lab.planner.traces import Trace, load
from worker.scaler.capacity import ScalerConfig, decide

POLICY_NAMES = ("fleetlab", "static", "target-tracking", "keda")
BILLING_S = {"second": 1.0, "hour": 3600.0}


def parse_policies(text: str) -> tuple[str, ...]:
    """``all``, one policy name, or several separated by commas."""
    if text == "all":
        return POLICY_NAMES
    names = tuple(n.strip() for n in text.split(","))
    unknown = [n for n in names if n not in POLICY_NAMES]
    if unknown or not names:
        raise PlanError(f"--policy must be all or of {', '.join(POLICY_NAMES)}, not {text!r}")
    return names


@dataclass(frozen=True)
class PlanSpec:
    """What ``lab plan`` was asked; times in seconds."""

    trace: str = "uniform"
    jobs_per_day: float = 10_000.0
    job_seconds: float = 180.0
    slo_p95_s: float = 900.0
    boot_seconds: float = 120.0
    policies: tuple[str, ...] = POLICY_NAMES
    seed: int = 1
    bin_seconds: float | None = None
    days: float | None = None
    billing: str = "second"
    min_instances: int = 0
    max_instances: int = 1000
    tick_seconds: float = 30.0
    crash_per_hour: float = 0.0
    job_dist: str = "fixed"
    visibility_seconds: float = 300.0

    def problems(self) -> list[str]:
        """What is wrong with these settings (empty when they are usable)."""
        found = [
            f"{name} must be positive"
            for name in ("jobs_per_day", "job_seconds", "slo_p95_s", "tick_seconds")
            if getattr(self, name) <= 0
        ]
        found += [
            f"{name} must not be negative"
            for name in ("boot_seconds", "crash_per_hour", "visibility_seconds")
            if getattr(self, name) < 0
        ]
        if self.billing not in BILLING_S:
            found.append(f"billing must be second or hour, not {self.billing!r}")
        if self.job_dist not in JOB_DISTS:
            found.append(f"job_dist must be fixed or exponential, not {self.job_dist!r}")
        if not 0 <= self.min_instances <= self.max_instances:
            found.append(f"need 0 <= min ({self.min_instances}) <= max ({self.max_instances})")
        return found

    def scaler_config(self) -> ScalerConfig:
        """The fleetlab policy's configuration: these settings, defaults otherwise."""
        return ScalerConfig(
            min_instances=self.min_instances,
            max_instances=self.max_instances,
            slo_p95_s=self.slo_p95_s,
            job_s=self.job_seconds,
            boot_s=self.boot_seconds,
            billing_s=BILLING_S[self.billing],
        )


@dataclass(frozen=True)
class Plan:
    """A finished plan: inputs, bounds and, per policy, its replay and figures."""

    spec: PlanSpec
    trace: Trace
    jobs: Jobs
    bounds: Bounds
    static_by_work: int
    static_for_slo: int
    runs: dict[str, Run] = field(default_factory=dict)
    figures: dict[str, dict[str, float | int]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON ``lab plan --json`` prints."""
        return {
            "trace": self.trace.name,
            "jobs_per_day": self.spec.jobs_per_day,
            "job_seconds": self.spec.job_seconds,
            "slo_p95_s": self.spec.slo_p95_s,
            "boot_seconds": self.spec.boot_seconds,
            "seed": self.spec.seed,
            "jobs": len(self.jobs),
            "work_bound_hours": round(self.bounds.work_hours, 2),
            "queue_bound_hours": round(self.bounds.queue_hours, 2),
            "static_machines_by_work": self.static_by_work,
            "static_machines_for_slo": self.static_for_slo,
            "policies": self.figures,
        }


def build_policies(spec: PlanSpec, trace: Trace, static_n: int) -> dict[str, Policy]:
    """Every policy, configured for this plan, by name."""
    config = spec.scaler_config()

    def clamp(n: int) -> int:
        return min(spec.max_instances, max(spec.min_instances, n))

    warm = clamp(fleet_for(windows(trace)[0][0], spec.job_seconds, spec.slo_p95_s))
    fixed = clamp(static_n)
    static_config = replace(config, min_instances=fixed, max_instances=fixed)
    return {
        "fleetlab": Policy("fleetlab", decide, config, spec.tick_seconds, warm),
        "static": Policy("static", baselines.static, static_config, spec.tick_seconds, fixed),
        "target-tracking": Policy(
            "target-tracking", baselines.target_tracking, config, baselines.TT_PERIOD_S, warm
        ),
        "keda": Policy("keda", baselines.keda, config, baselines.KEDA_SYNC_S, warm),
    }


def make_plan(spec: PlanSpec, progress: Callable[[str], None] | None = None) -> Plan:
    """Load the trace, draw the jobs, compute the bounds and replay every chosen policy."""
    problems = spec.problems()
    if problems:
        raise PlanError("; ".join(problems))
    problems = spec.scaler_config().problems()
    if problems:
        raise PlanError("; ".join(problems))
    say = progress or (lambda _: None)
    trace = load(spec.trace, spec.jobs_per_day, spec.days, spec.bin_seconds)
    jobs = draw(trace, spec.seed, spec.job_seconds, spec.job_dist)
    say(f"{len(jobs)} jobs over {trace.seconds / 86_400:g} days; sizing the static fleet")
    guess = fleet_for(spec.jobs_per_day / 86_400, spec.job_seconds, spec.slo_p95_s)
    plan = Plan(
        spec=spec,
        trace=trace,
        jobs=jobs,
        bounds=Bounds(
            work_bound_hours(jobs.durations),
            queue_bound_hours(trace, spec.job_seconds, spec.slo_p95_s),
        ),
        static_by_work=machines_by_work(spec.jobs_per_day, spec.job_seconds),
        static_for_slo=smallest_static_fleet(jobs, spec.slo_p95_s, guess),
    )
    policies = build_policies(spec, trace, plan.static_for_slo)
    settings = SimSettings(
        trace_s=trace.seconds,
        boot_s=spec.boot_seconds,
        visibility_s=spec.visibility_seconds,
        crash_per_hour=spec.crash_per_hour,
        seed=spec.seed,
    )
    for name in spec.policies:
        say(f"replaying {name}")
        run = simulate(policies[name], jobs, settings)
        plan.runs[name] = run
        plan.figures[name] = summarize(jobs, run, spec.slo_p95_s, plan.bounds)
    return plan
