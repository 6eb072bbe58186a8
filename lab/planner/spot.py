"""A fleet partly on spot: what it costs against all on-demand, interruptions included.

An analytic overlay on a policy's replay (its instance-hours and jobs): a fraction ``F`` of the
instance-hours runs on spot at ``1 - D`` of the on-demand price; each spot instance-hour is
interrupted ``R`` times on average. An interruption costs the replacement's boot (paid, no work)
and the running job's lost work: with the two-minute notice the worker finishes a job that fits
(``worker/consume/notice.py``), so a busy instance hit at a uniformly random point of a job of
``J`` seconds loses ``(J - N)^2 / 2J`` seconds of work on average (none if ``J <= N``), and that
job runs again elsewhere. A plain function of the figures, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lab.errors import LabError

NOTICE_S = 120.0  # AWS's interruption notice
# Defaults from AWS's public figures, as assumptions (README, "Spot in the planner"): spot is
# "up to 90 %" cheaper; 70 % is a typical saving for compute-optimised types. The Spot Instance
# Advisor's lowest interruption band is "< 5 %" a month: 0.05 / 730 per instance-hour.
SPOT_DISCOUNT = 0.70
INTERRUPTIONS_PER_HOUR = 0.05 / 730


@dataclass(frozen=True)
class SpotMix:
    """How much of the fleet runs on spot, and what spot is like."""

    fraction: float = 0.0
    discount: float = SPOT_DISCOUNT
    interruptions_per_hour: float = INTERRUPTIONS_PER_HOUR
    notice_s: float = NOTICE_S

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise LabError(f"--spot-fraction must be between 0 and 1, not {self.fraction:g}")
        if not 0 <= self.discount < 1:
            raise LabError(f"--spot-discount must be in [0, 1), not {self.discount:g}")
        if not 0 <= self.interruptions_per_hour <= 60:
            raise LabError("--interruptions-per-hour must be between 0 and 60")


def lost_work_s(job_s: float, notice_s: float) -> float:
    """Mean work lost when a busy instance is interrupted mid-job (seconds)."""
    if job_s <= notice_s:
        return 0.0
    return (job_s - notice_s) ** 2 / (2 * job_s)


def figures(
    instance_hours: float, work_hours: float, jobs: int, job_s: float, boot_s: float,
    price_per_hour: float, mix: SpotMix,
) -> dict[str, Any]:  # fmt: skip
    """The mixed fleet's figures for a replay that used ``instance_hours`` to do
    ``work_hours`` of jobs (``jobs`` of them, ``job_s`` long) at ``price_per_hour`` on-demand."""
    busy = min(1.0, work_hours / instance_hours) if instance_hours else 0.0
    spot_hours = instance_hours * mix.fraction
    interruptions = spot_hours * mix.interruptions_per_hour
    lost_h = interruptions * busy * lost_work_s(job_s, mix.notice_s) / 3600
    extra_h = lost_h + interruptions * boot_s / 3600  # re-runs and replacements' boots
    spot_price = price_per_hour * (1 - mix.discount)
    # The extra hours run where the work was lost: on spot (a conservative choice would be
    # on-demand; the difference is second order at any published interruption rate).
    cost = (instance_hours - spot_hours) * price_per_hour + (spot_hours + extra_h) * spot_price
    on_demand = instance_hours * price_per_hour
    rerun = interruptions * busy * (max(0.0, 1 - mix.notice_s / job_s) if job_s else 0.0)
    return {
        "spot_fraction": mix.fraction,
        "interruptions": round(interruptions, 2),
        "rerun_jobs": round(rerun, 2),
        "extra_instance_hours": round(extra_h, 3),
        "mixed_cost_usd": round(cost, 2),
        "mixed_cost_per_1000_jobs_usd": round(1000 * cost / jobs, 4) if jobs else 0.0,
        "saving_pct": round(100 * (1 - cost / on_demand), 1) if on_demand else 0.0,
    }


def render(rows: dict[str, dict[str, Any]], mix: SpotMix) -> list[str]:
    """Lines comparing each policy's on-demand cost with the mixed fleet's."""
    lines = [
        "",
        f"spot: {100 * mix.fraction:g} % of instance-hours at {100 * mix.discount:g} % off, "
        f"{mix.interruptions_per_hour:.3g} interruptions per spot instance-hour, "
        f"{mix.notice_s:g} s notice",
        f"{'policy':24} {'on-demand $':>12} {'mixed $':>10} {'$/1k od':>9} {'$/1k mixed':>11} "
        f"{'saving %':>9} {'interrupts':>10} {'re-runs':>8}",
    ]
    for name, f in rows.items():
        lines.append(
            f"{name:24} {f['cost_usd']:12,.2f} {f['mixed_cost_usd']:10,.2f} "
            f"{f['cost_per_1000_jobs_usd']:9.3f} {f['mixed_cost_per_1000_jobs_usd']:11.3f} "
            f"{f['saving_pct']:9.1f} {f['interruptions']:10.2f} {f['rerun_jobs']:8.2f}"
        )
    return lines
