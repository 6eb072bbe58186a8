"""`lab env show`: what any AWS client needs to talk to the lab."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from lab.cli.common import emit_json, errors_to_exit, lab_env

app = typer.Typer(no_args_is_help=True, help="Show the lab's environment.")


@app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Print region, endpoint, queue URLs, bucket and log group."""
    with errors_to_exit():
        data = asdict(lab_env())
    if as_json:
        emit_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key:24} {value}")
