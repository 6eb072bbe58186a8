"""`lab scaler run` and `lab scaler config`: the scaler outside the fleet, and its settings."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from lab.cli.common import emit_json, errors_to_exit, lab_env, settings
from lab.runtime import scaler, stack
from lab.runtime.resources import clients_for
from worker.state.store import S3JsonStore

app = typer.Typer(
    no_args_is_help=True, help="The scaler: run it here, read or change its settings."
)


@app.command()
def run(
    once: Annotated[bool, typer.Option(help="One tick: print the decision as JSON, exit.")] = False,
) -> None:
    """Run the fleet's scaler loop here, in the foreground (Ctrl-C hands its lease on).

    The same loop as on every instance; only the lease holder acts, so this one acts when no
    instance leads -- which is what a fleet that may scale to zero needs."""
    with errors_to_exit():
        found = lab_env()
        code = scaler.run(settings(), found, stack.base_env(found.env), once=once)
    raise typer.Exit(code)


@app.command()
def config(
    min_instances: Annotated[int | None, typer.Option("--min", min=0)] = None,
    max_instances: Annotated[int | None, typer.Option("--max", min=0)] = None,
    slo_p95: Annotated[float | None, typer.Option(help="Latency target, seconds (p95).")] = None,
    job_seconds: Annotated[float | None, typer.Option(help="Job time until timed.")] = None,
    boot_seconds: Annotated[float | None, typer.Option(help="Launch to serving.")] = None,
    stale_after: Annotated[float | None, typer.Option(help="Heartbeat age that replaces.")] = None,
    scale_in_after: Annotated[float | None, typer.Option(help="Scale-in window, seconds.")] = None,
    billing: Annotated[float | None, typer.Option(help="Billing granularity: 1 or 3600 s.")] = None,
    spot_fraction: Annotated[
        float | None, typer.Option(help="Share of the fleet launched as spot (0..1).")
    ] = None,
    spot_fallback_after: Annotated[
        int | None, typer.Option(help="Interruptions in the window that mean on-demand only.")
    ] = None,
    spot_fallback_window: Annotated[
        float | None, typer.Option(help="Seconds interruptions are counted over.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show the scaler's settings (scaler/config.json); with options, change them (live)."""
    given: dict[str, Any] = {
        "min_instances": min_instances,
        "max_instances": max_instances,
        "slo_p95_s": slo_p95,
        "job_s": job_seconds,
        "boot_s": boot_seconds,
        "stale_after_s": stale_after,
        "scale_in_after_s": scale_in_after,
        "billing_s": billing,
        "spot_fraction": spot_fraction,
        "spot_fallback_after": spot_fallback_after,
        "spot_fallback_window_s": spot_fallback_window,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    with errors_to_exit():
        env = lab_env()
        store = S3JsonStore(clients_for(env).s3, env.bucket)
        found = scaler.write_config(store, changes) if changes else scaler.read_config(store)
    shown = asdict(found) if found else None
    if as_json:
        emit_json(shown)
    elif shown is None:
        typer.echo("the scaler is not configured (no scaler/config.json): it does not act")
    else:
        for name, value in shown.items():
            typer.echo(f"{name:18} {value:g}")
