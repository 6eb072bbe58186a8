"""`lab plan`: replay a demand trace against the scaler's policy and baselines (no AWS needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab.cli import progress, tables
from lab.cli.common import emit_json, errors_to_exit
from lab.planner import spot
from lab.planner.plan import Plan, PlanSpec, make_plan, parse_policies
from lab.planner.table import footer, header, render, rows


def plan(
    trace: Annotated[
        str,
        typer.Option(
            help="uniform, diurnal, weekly, spike, bursty[-2], google-2011, flights-2001, "
            "usgs-quakes, or a FILE of counts."
        ),
    ] = "uniform",
    jobs_per_day: Annotated[float, typer.Option(help="Mean jobs a day (trace rescaled).")] = 10_000,
    job_seconds: Annotated[float, typer.Option(help="Job time (the mean if exponential).")] = 180,
    slo_p95: Annotated[float, typer.Option(help="Latency target, p95 seconds.")] = 900,
    boot_seconds: Annotated[float, typer.Option(help="Launch to a polling worker.")] = 120,
    policy: Annotated[
        str,
        typer.Option(
            help="fleetlab, static, target-tracking[-tuned], keda[-tuned], a comma list, or all."
        ),
    ] = "all",
    seed: Annotated[int, typer.Option(help="Seed of arrivals, durations and crashes.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write queue, fleet and latency plots (PNG).")
    ] = None,
    bin_seconds: Annotated[
        float | None,
        typer.Option(
            help="Bin length (synthetic 300, bursty 1, INDEX COUNT files 3600, sequences 1)."
        ),
    ] = None,
    days: Annotated[
        float | None, typer.Option(help="Trace length (synthetic 7; files: all, or cut to this).")
    ] = None,
    billing: Annotated[str, typer.Option(help="second or hour (what the policy saves on).")] = (
        "second"
    ),
    min_instances: Annotated[int, typer.Option("--min", help="Fewest instances.")] = 0,
    max_instances: Annotated[int, typer.Option("--max", help="Most instances.")] = 1000,
    tick_seconds: Annotated[float, typer.Option(help="How often the scaler decides.")] = 30,
    crash_per_hour: Annotated[float, typer.Option(help="Crashes per instance-hour.")] = 0,
    visibility_seconds: Annotated[
        float, typer.Option(help="SQS visibility timeout: a crashed job's return.")
    ] = 300,
    job_dist: Annotated[
        str, typer.Option(help="fixed, exponential or lognormal (heavy-tailed) job times.")
    ] = "fixed",
    price: Annotated[
        float | None,
        typer.Option(help="USD per instance-hour (default: c7i.large's list price)."),
    ] = None,
    spot_fraction: Annotated[
        float, typer.Option(help="Share of instance-hours on spot (0: all on-demand).")
    ] = 0.0,
    spot_discount: Annotated[
        float, typer.Option(help="Spot's saving on the on-demand price.")
    ] = spot.SPOT_DISCOUNT,
    interruptions_per_hour: Annotated[
        float, typer.Option(help="Interruptions per spot instance-hour.")
    ] = spot.INTERRUPTIONS_PER_HOUR,
) -> None:
    """Plan capacity: latency and instance time of each policy against the lower bounds."""
    with errors_to_exit():
        mix = spot.SpotMix(spot_fraction, spot_discount, interruptions_per_hour)
        spec = PlanSpec(
            trace=trace,
            jobs_per_day=jobs_per_day,
            job_seconds=job_seconds,
            slo_p95_s=slo_p95,
            boot_seconds=boot_seconds,
            policies=parse_policies(policy),
            seed=seed,
            bin_seconds=bin_seconds,
            days=days,
            billing=billing,
            min_instances=min_instances,
            max_instances=max_instances,
            tick_seconds=tick_seconds,
            crash_per_hour=crash_per_hour,
            job_dist=job_dist,
            visibility_seconds=visibility_seconds,
            price_per_hour=price,
        )
        with progress.working("plan", quiet=as_json) as say:
            made = make_plan(spec, say if tables.on_terminal() and not as_json else None)
        if mix.fraction:
            for row in made.figures.values():
                row.update(spot.figures(
                    row["instance_hours"], made.bounds.work_hours, len(made.jobs),
                    spec.job_seconds, spec.boot_seconds, made.price_per_hour, mix,
                ))  # fmt: skip
        if plot is not None:
            # Imported here: matplotlib takes a while to load, and every `lab` command would pay.
            from lab.planner.plot import plot as draw_plot  # noqa: PLC0415

            draw_plot(made, plot)
    if as_json:
        emit_json(made.as_dict())
    else:
        show(made)
        if mix.fraction:
            typer.echo("\n".join(spot.render(made.figures, mix)))
        if plot is not None:
            typer.echo(f"plot: {plot}")


def show(made: Plan) -> None:
    """The plan's table: rich on a terminal, the aligned text of ``render`` when piped."""
    if not tables.on_terminal():
        typer.echo(render(made))
        return
    for line in header(made):
        typer.echo(line)
    head, *body = rows(made)
    tables.render("plan", head, body)
    for line in footer(made):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add this command to the `lab` app."""
    app.command()(plan)
