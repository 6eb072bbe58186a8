"""`lab chaos list` and `lab chaos run NAME|all`: replay faults on the exact worker and scaler."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from lab.chaos import runner
from lab.chaos.explore import explore, sabotage
from lab.chaos.explore import report as explore_report
from lab.chaos.explore.runner import Outcome, clean_folder
from lab.chaos.explore.schedule import Schedule, ScheduleError
from lab.chaos.report import COLUMNS, details, rows, table
from lab.chaos.scenarios import SCENARIOS, named
from lab.cli import progress, tables
from lab.cli.common import emit_json, errors_to_exit, settings
from lab.dashboard.api import reports_dir
from lab.net.latency import model_for
from lab.runtime.settings import LabSettings

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
    latency: Annotated[str, LATENCY] = "none",
) -> None:
    """Run scenarios, each in a clean lab of its own; exit 1 if any rule was broken."""
    with errors_to_exit():
        config = on_network(settings(env_name), latency)
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


@app.command("explore")
def explore_cmd(
    seed: Annotated[int, typer.Option(help="Same seed, same schedule.")] = 1,
    jobs: Annotated[int, typer.Option(help="Requests to send.", min=1)] = 200,
    duration: Annotated[
        float | None, typer.Option(help="Seconds to send over (default: jobs / 3.5, >= 60).")
    ] = None,
    fault_kinds: Annotated[
        str | None, typer.Option("--faults", help="Comma-separated fault kinds (default: all).")
    ] = None,
    intensity: Annotated[float, typer.Option(help="Faults per minute, on average.")] = 10.0,
    clean: Annotated[bool, typer.Option(help="On a clean lab of its own, not `lab up`'s.")] = False,
    env_name: Annotated[
        str | None, typer.Option("--env", help="local (moto) or localstack; default: the lab's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Write a PNG timeline.")] = None,
    save: Annotated[
        Path | None, typer.Option("--save-schedule", help="Write the schedule as JSON.")
    ] = None,
    shrink_trials: Annotated[
        int, typer.Option("--shrink", help="Replays to shrink a failing schedule (0: none).")
    ] = 12,
    latency: Annotated[str, LATENCY] = "none",
) -> None:
    """Random faults under a sustained load, every request checked; exit 1 on a broken rule."""
    _sabotage_for_tests()
    with errors_to_exit():
        config = on_network(settings(env_name), latency)
        names = (
            tuple(n.strip() for n in fault_kinds.split(",") if n.strip()) if fault_kinds else None
        )
        try:
            schedule = explore.draw(explore.Options(seed, jobs, duration, names, intensity))
        except KeyError as exc:
            raise ScheduleError(str(exc.args[0])) from None
        if save:
            schedule.save(save)
        say = (lambda _: None) if as_json else typer.echo
        outcome = explore.play(config, schedule, clean, say)
    folder = clean_folder(config, schedule) if clean else None
    _finish(config, outcome, as_json, plot_file, shrink_trials, say, folder)


@app.command("replay")
def replay_cmd(
    schedule_file: Annotated[Path, typer.Argument(help="A schedule saved by explore.")],
    env_name: Annotated[
        str | None, typer.Option("--env", help="local (moto) or localstack; default: the lab's.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
    plot_file: Annotated[Path | None, typer.Option("--plot", help="Write a PNG timeline.")] = None,
    latency: Annotated[str, LATENCY] = "none",
) -> None:
    """Play a saved schedule again on a clean lab; exit 1 on a broken rule."""
    _sabotage_for_tests()
    with errors_to_exit():
        config = on_network(settings(env_name), latency)
        schedule = Schedule.load(schedule_file)
        say = (lambda _: None) if as_json else typer.echo
        outcome = explore.play(config, schedule, True, say)
    _finish(config, outcome, as_json, plot_file, 0, say, clean_folder(config, schedule))


LATENCY = typer.Option(
    "--latency",
    help="none, or aws: the instances of each clean lab reach the emulator through the lab's "
    "proxy with AWS's latencies (under the explorer's network faults). Not the running lab's "
    "remembered mode: chaos runs are on plain moto unless asked.",
)


def on_network(config: LabSettings, latency: str) -> LabSettings:
    """``config`` with the chaos run's own latency mode (checked)."""
    model_for(latency)
    return replace(config, latency=latency)


def _sabotage_for_tests() -> None:
    # The faults that make the system wrong on purpose exist for the tests that show the
    # explorer notices; a user never meets them.
    if os.environ.get("FLEETLAB_EXPLORE_SABOTAGE") == "1":
        sabotage.enable()


def _finish(
    config: LabSettings,
    outcome: Outcome,
    as_json: bool,
    plot_file: Path | None,
    shrink_trials: int,
    say: Callable[[str], None],
    folder: Path | None,
) -> None:
    if plot_file:
        explore_report.plot(outcome, plot_file)
    data = explore_report.as_dict(outcome)
    if folder is not None:  # a clean run's lab: its instances' user-data and logs
        data["folder"] = str(folder)
    if not outcome.passed and shrink_trials > 0:
        with errors_to_exit():
            small = explore.minimise(config, outcome.schedule, shrink_trials, say)
            path = config.home / f"explore-{outcome.schedule.seed}-shrunk.json"
            small.save(path)
        data["shrunk"] = {
            "schedule": str(path),
            "jobs": len(small.jobs),
            "faults": len(small.faults),
        }
        data["replay"] = f"lab chaos replay {path}"
    if as_json:
        emit_json(data)
    else:
        typer.echo(explore_report.text(outcome))
        if folder is not None:
            typer.echo(f"\ninstances, their user-data and logs: {folder}")
        if "replay" in data:
            typer.echo(
                f"\nshrunk to {len(small.jobs)} jobs and {len(small.faults)} faults; replay with:"
            )
            typer.echo(f"  {data['replay']}")
    if not outcome.passed:
        raise typer.Exit(1)
