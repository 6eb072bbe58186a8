"""`lab env use` and `lab env show`: which environment the lab talks to, and how to reach it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from lab.cli.common import emit_json, errors_to_exit, settings
from lab.errors import NotRunning
from lab.runtime import environment
from lab.runtime.resources import LabEnv

app = typer.Typer(no_args_is_help=True, help="Choose and show the lab's environment.")


@app.command("use")
def use(name: Annotated[str, typer.Argument(help="local, localstack or aws.")]) -> None:
    """Make NAME the environment of every later command (one value in the lab's config file)."""
    with errors_to_exit():
        home = settings().home
        path = environment.use(home, name)
    typer.echo(f"environment: {name} (written to {path})")


@app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print the chosen environment and, once the lab is up (or provisioned), its region,
    endpoint, queue URLs, bucket and log group."""
    with errors_to_exit():
        config = settings()
        data: dict[str, Any] = {"environment": config.env}
        try:
            data |= asdict(LabEnv.load(config.home))
        except NotRunning:
            data["resources"] = "none yet: `lab up` (emulators) or `lab provision` (aws)"
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key:24} {value}")
