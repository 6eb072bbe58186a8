"""`lab chaos list` and `lab chaos run NAME|all`: replay faults on the exact worker and scaler."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from lab.chaos import runner
from lab.chaos.report import COLUMNS, details, rows, table
from lab.chaos.scenarios import SCENARIOS, named
from lab.cli import progress, tables
from lab.cli.common import emit_json, errors_to_exit, settings
from lab.dashboard.api import reports_dir

app = typer.Typer(no_args_is_help=True, help="Replay faults as seeded scenarios.")


@app.command("list")
def list_scenarios() -> None:
    """Name and summary of every scenario."""
    for scenario in SCENARIOS:
        summary = " ".join(scenario.summary.split())
        typer.echo(f"{scenario.name:20} {summary}")


def keep(home: Path, found: dict[str, Any]) -> None:
    """Save the report where `lab dashboard` shows chaos runs (best effort: a report that
    cannot be saved is still printed)."""
    folder = reports_dir(home)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        (folder / f"chaos-{stamp}-{found['seed']}.json").write_text(json.dumps(found, indent=1))


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
        plain = (lambda _: None) if as_json else typer.echo
        with progress.working(f"chaos {name}", plain=plain, quiet=as_json) as say:
            reports = runner.run_all(config, chosen, seed, say)
    found = {"env": config.env, "seed": seed, "scenarios": [r.as_dict() for r in reports]}
    keep(config.home, found)
    if as_json:
        emit_json(found)
    else:
        typer.echo("")
        for report in reports:
            typer.echo(details(report) + "\n")
        if tables.on_terminal():
            tables.render("chaos", COLUMNS, rows(reports))
        else:
            typer.echo(table(reports))
    if not all(r.passed for r in reports):
        raise typer.Exit(1)
