"""The readable form of a plan: the article's arithmetic, the bounds, one row per policy."""

from __future__ import annotations

from lab.planner.bounds import jobs_per_machine_day
from lab.planner.plan import Plan

COLUMNS = (
    ("p50_s", "p50 s", "{:.0f}"),
    ("p95_s", "p95 s", "{:.0f}"),
    ("p99_s", "p99 s", "{:.0f}"),
    ("slo_violation_pct", "late %", "{:.2f}"),
    ("hour_slo_violation_pct", "late hours %", "{:.1f}"),
    ("instance_hours", "instance h", "{:,.1f}"),
    ("billed_hours", "billed h", "{:,}"),
    ("launches", "launches", "{:,}"),
    ("launches_per_day", "per day", "{:,.0f}"),
    ("ratio_to_work_bound", "x work", "{:.3f}"),
    ("ratio_to_queue_bound", "x queue", "{:.3f}"),
    ("cost_usd", "cost $", "{:,.2f}"),
    ("cost_per_1000_jobs_usd", "$/1k jobs", "{:.3f}"),
)


def header(plan: Plan) -> list[str]:
    """The lines above the table: the trace, the machines it needs, the bounds, the price."""
    spec = plan.spec
    return [
        f"trace {plan.trace.name}: {len(plan.jobs):,} jobs over {plan.trace.seconds / 86_400:g} "
        f"days ({spec.jobs_per_day:g}/day, {spec.job_seconds:g} s jobs ({spec.job_dist}), "
        f"p95 target {spec.slo_p95_s:g} s, boot {spec.boot_seconds:g} s, seed {spec.seed})",
        f"one machine: {jobs_per_machine_day(spec.job_seconds):g} jobs/day; by work: "
        f"{plan.static_by_work} machines; for the SLO with random arrivals: "
        f"{plan.static_for_slo}",
        f"work bound {plan.bounds.work_hours:,.1f} instance-hours; queue-aware bound "
        f"{plan.bounds.queue_hours:,.1f}; fewest launches that follow it {plan.min_launches:,}; "
        f"${plan.price_per_hour:.5g} per instance-hour",
    ]


def rows(plan: Plan) -> list[list[str]]:
    """The table's cells: a head row, then one row of figures per policy."""
    found = [["policy", *(title for _, title, _ in COLUMNS)]]
    for name, figures in plan.figures.items():
        found.append([name, *(form.format(figures[key]) for key, _, form in COLUMNS)])
    return found


def footer(plan: Plan) -> list[str]:
    """The lines below the table: the settings the tuned baselines found."""
    tuned = [
        f"{name}: {', '.join(f'{k} {v:g}' for k, v in figures['tuned_setting'].items())}"
        for name, figures in plan.figures.items()
        if "tuned_setting" in figures
    ]
    if not tuned:
        return []
    return ["", "tuned (cheapest setting that holds the SLO on this trace): " + "; ".join(tuned)]


def render(plan: Plan) -> str:
    """Header lines, an aligned table of the per-policy figures, the tuned settings."""
    lines = [*header(plan), ""]
    cells = rows(plan)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        line = [row[0].ljust(widths[0])]
        line += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(line).rstrip())
    return "\n".join([*lines, *footer(plan)])
