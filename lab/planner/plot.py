"""``--plot FILE.png``: queue depth, fleet size and hourly p95 latency over time, per policy."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from lab.planner.errors import PlanError
from lab.planner.plan import Plan
from lab.planner.report import hourly_p95, latencies

DAY_S = 86_400.0


def plot(plan: Plan, path: Path) -> None:
    """Three panels sharing the time axis (days), one line per policy; written as PNG."""
    # A bare Figure draws with the Agg canvas: no pyplot, no GUI backend, no global state.
    figure = Figure(figsize=(12, 9), layout="constrained")
    queue, fleet, latency = figure.subplots(3, 1, sharex=True)
    for name, run in plan.runs.items():
        days = [t / DAY_S for t in run.samples.times]
        queue.plot(days, run.samples.visible, label=name, linewidth=0.7)
        fleet.plot(days, run.samples.fleet, label=name, linewidth=0.7)
        hours = hourly_p95(plan.jobs, latencies(plan.jobs, run))
        latency.plot([(h + 0.5) / 24 for h, _ in hours], [p for _, p in hours], label=name)
    latency.axhline(plan.spec.slo_p95_s, color="black", linestyle="--", label="p95 target")
    queue.set_ylabel("jobs waiting")
    fleet.set_ylabel("instances")
    latency.set_ylabel("p95 latency per hour (s)")
    latency.set_xlabel("days")
    queue.set_title(
        f"{plan.trace.name}: {plan.spec.jobs_per_day:g} jobs/day of {plan.spec.job_seconds:g} s"
    )
    for axes in (queue, fleet, latency):
        axes.grid(alpha=0.3)
        axes.legend(loc="upper right", fontsize="small")
    try:
        figure.savefig(path, format="png", dpi=100)
    except OSError as exc:
        raise PlanError(f"cannot write the plot to {path}: {exc}") from None
