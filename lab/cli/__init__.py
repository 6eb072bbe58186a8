"""The `lab` command: a thin Typer front over the lab library, one sub-app per file."""

from __future__ import annotations

import typer

from lab.cli import (
    chaos,
    cloud,
    dashboard,
    dlq,
    env,
    fleet,
    image,
    instance,
    jobs,
    observe,
    plan,
    scaler,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Run fleetlab on one machine.")
app.add_typer(env.app, name="env")
app.add_typer(instance.app, name="instance")
app.add_typer(image.app, name="image")
app.add_typer(scaler.app, name="scaler")
app.add_typer(chaos.app, name="chaos")
app.add_typer(dlq.app, name="dlq")
fleet.register(app)
jobs.register(app)
observe.register(app)
plan.register(app)
cloud.register(app)
dashboard.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
