"""A capacity plan: one trace, its jobs and bounds, and each chosen policy replayed against them.

Every dynamic policy starts warm: the fleet ran before the trace began, with as many instances up
as the first window of the trace needs (c* of the queue-aware bound, within --min/--max). The
static fleet starts with its N. All policies see the same jobs (one seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lab.cloud import prices
from lab.cloud.target import Options
from lab.planner import baselines
from lab.planner.arrivals import JOB_DISTS, Jobs, draw
from lab.planner.bounds import (
    fleet_for,
    machines_by_work,
    min_launches,
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
from lab.planner.tuning import Trial, cheapest, geometric, loosest_holding
from worker.scaler.capacity import ScalerConfig, decide

POLICY_NAMES = (
    "fleetlab",
    "static",
    "target-tracking",
    "target-tracking-tuned",
    "keda",
    "keda-tuned",
)
BILLING_S = {"second": 1.0, "hour": 3600.0}
DEFAULT_INSTANCE_TYPE = Options().instance_type  # what `lab provision` launches unless told
# Tuning grids, tight (costly, few late jobs) to loose (cheap): target tracking's backlog per
# instance from 0.25 to 10, 15 % apart; KEDA's whole-number queueLength from 1 to 10, under the
# HPA's default scale-down stabilisation window of 300 s and a shorter one of 120 s (which wins
# on the spike trace).
TT_TARGETS = geometric(0.25, 10.0, 1.15)
KEDA_QUEUE_LENGTHS = tuple(float(n) for n in range(1, 11))
KEDA_DOWN_WINDOWS_S = (120.0, baselines.KEDA_DOWN_WINDOW_S)


def default_price() -> float:
    """The assumed on-demand price per instance-hour of the type `lab provision` launches."""
    found = prices.price(DEFAULT_INSTANCE_TYPE)
    if found is None:  # the table and the default type are kept together; this is a slip
        raise PlanError(f"no price assumption for {DEFAULT_INSTANCE_TYPE}: give --price")
    return found.usd_per_hour


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
    price_per_hour: float | None = None  # USD per instance-hour; None: the default type's price

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
        if self.price_per_hour is not None and self.price_per_hour < 0:
            found.append("price must not be negative")
        if self.billing not in BILLING_S:
            found.append(f"billing must be second or hour, not {self.billing!r}")
        if self.job_dist not in JOB_DISTS:
            found.append(f"job_dist must be one of {', '.join(JOB_DISTS)}, not {self.job_dist!r}")
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
    min_launches: int
    price_per_hour: float
    runs: dict[str, Run] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

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
            "min_launches": self.min_launches,
            "price_per_hour": self.price_per_hour,
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
    found = {
        "fleetlab": Policy("fleetlab", decide, config, spec.tick_seconds, warm),
        "static": Policy("static", baselines.static, static_config, spec.tick_seconds, fixed),
        "target-tracking": Policy(
            "target-tracking", baselines.target_tracking, config, baselines.TT_PERIOD_S, warm
        ),
        "keda": Policy("keda", baselines.keda, config, baselines.KEDA_SYNC_S, warm),
    }
    # The tuned ones, at the documented setting until ``tuned_trials`` searches theirs.
    documented = baselines.backlog_target(config)
    found["target-tracking-tuned"] = replace(
        found["target-tracking"],
        name="target-tracking-tuned",
        decide=baselines.target_tracking_at(documented),
    )
    found["keda-tuned"] = replace(
        found["keda"], name="keda-tuned", decide=baselines.keda_at(round(documented))
    )
    return found


def tuned_trials(
    name: str, policies: dict[str, Policy], replay: Callable[[Policy], Trial]
) -> list[Trial]:
    """Every setting the search tried for ``target-tracking-tuned`` or ``keda-tuned``."""
    base = policies[name]
    if name == "target-tracking-tuned":

        def tracking(target: float) -> Trial:
            policy = replace(base, decide=baselines.target_tracking_at(target))
            return replace(replay(policy), setting={"target_backlog_per_instance": target})

        return loosest_holding(TT_TARGETS, tracking)
    tried: list[Trial] = []
    for window in KEDA_DOWN_WINDOWS_S:

        def keda(length: float, window: float = window) -> Trial:
            policy = replace(base, decide=baselines.keda_at(int(length), window))
            setting = {"queue_length": length, "scale_down_window_s": window}
            return replace(replay(policy), setting=setting)

        tried += loosest_holding(KEDA_QUEUE_LENGTHS, keda)
    return tried


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
        min_launches=min_launches(trace, spec.job_seconds, spec.slo_p95_s),
        price_per_hour=default_price() if spec.price_per_hour is None else spec.price_per_hour,
    )
    policies = build_policies(spec, trace, plan.static_for_slo)
    settings = SimSettings(
        trace_s=trace.seconds,
        boot_s=spec.boot_seconds,
        visibility_s=spec.visibility_seconds,
        crash_per_hour=spec.crash_per_hour,
        seed=spec.seed,
    )

    def replay(policy: Policy) -> Trial:
        run = simulate(policy, jobs, settings)
        figures = summarize(jobs, run, spec.slo_p95_s, plan.bounds, plan.price_per_hour)
        return Trial({}, run, figures)

    for name in spec.policies:
        say(f"replaying {name}")
        if name.endswith("-tuned"):
            found = cheapest(tuned_trials(name, policies, replay))
            figures = found.figures | {"tuned_setting": found.setting}
        else:
            found = replay(policies[name])
            figures = found.figures
        plan.runs[name] = found.run
        plan.figures[name] = figures
    return plan
