"""`lab chaos list` and `lab chaos run NAME|all`: replay faults on the exact worker and scaler."""

from __future__ import annotations

from typing import Annotated

import typer

from lab.chaos import runner
from lab.chaos.report import details, table
from lab.chaos.scenarios import SCENARIOS, named
from lab.cli.common import emit_json, errors_to_exit, settings

app = typer.Typer(no_args_is_help=True, help="Replay faults as seeded scenarios.")


@app.command("list")
def list_scenarios() -> None:
    """Name and summary of every scenario."""
    for scenario in SCENARIOS:
        summary = " ".join(scenario.summary.split())
        typer.echo(f"{scenario.name:20} {summary}")


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="A scenario's name, or all.")],
    env_name: Annotated[
        str | None, typer.Option("--env", help="local (moto) or localstack; default: the lab's.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same choices and fault timings.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Run scenarios, each in a clean lab of its own; exit 1 if any rule was broken."""
    with errors_to_exit():
        config = settings(env_name)
        chosen = named(name)
        say = (lambda _: None) if as_json else typer.echo
        reports = runner.run_all(config, chosen, seed, say)
    if as_json:
        emit_json({"env": config.env, "seed": seed, "scenarios": [r.as_dict() for r in reports]})
    else:
        typer.echo("")
        for report in reports:
            typer.echo(details(report) + "\n")
        typer.echo(table(reports))
    if not all(r.passed for r in reports):
        raise typer.Exit(1)
