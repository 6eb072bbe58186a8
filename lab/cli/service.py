"""`lab service list|check|run|new`: the registry, a services folder of your own, a local run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lab.cli.common import emit_json, errors_to_exit, settings
from lab.client.local_run import run_here
from lab.client.submit import parse_param
from lab.deploy import services as own_services
from lab.deploy.scaffold import scaffold
from worker.handle.ending import Failed, Succeeded
from worker.handle.service_file import load_registry
from worker.handle.services import Parameter, Registry, Service

app = typer.Typer(no_args_is_help=True, help="Services: list, check a folder, run one, scaffold.")

FOLDER = typer.Option(
    "--services", help="Your services folder (default: the one `lab up/deploy` remembered)."
)


def _registry(folder: Path | None) -> Registry:
    own = folder or settings().services_dir
    return own_services.check(own).registry if own is not None else load_registry()


def accepts(spec: Parameter) -> str:
    """What a parameter accepts, in words."""
    if spec.kind in ("int", "float"):
        text = f"{spec.kind} {spec.minimum:g}..{spec.maximum:g}"
    elif spec.kind == "choice":
        text = "one of " + "|".join(spec.choices)
    else:
        text = f"matching {spec.pattern.pattern if spec.pattern else ''}"
    if spec.required:
        text += ", required"
    if spec.default is not None:
        text += f", default {spec.default}"
    return text


def describe(service: Service) -> dict[str, Any]:
    """One service as ``lab service list --json`` prints it."""
    return {
        "name": service.name,
        "origin": service.origin,
        "description": service.description,
        "input": service.needs_input,
        "timeout_seconds": service.timeout_s,
        "claim": service.claim,
        "concurrency": service.concurrency,
        "output": service.output + (f" ({service.output_suffix})" if service.output_suffix else ""),
        "parameters": {name: accepts(spec) for name, spec in service.parameters.items()},
    }


@app.command("list")
def list_(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    folder: Annotated[Path | None, FOLDER] = None,
) -> None:
    """The services a worker offers: built-in and your own."""
    with errors_to_exit():
        rows = [describe(s) for s in _registry(folder).services.values()]
    if json_out:
        emit_json({"services": rows})
        return
    for row in rows:
        extra = "" if row["input"] else ", no input"
        typer.echo(
            f"{row['name']}  [{row['origin']}]  output {row['output']}, "
            f"limit {row['timeout_seconds']:g} s, claim {row['claim']}, "
            f"concurrency {row['concurrency']}{extra}"
        )
        for name, text in row["parameters"].items():
            typer.echo(f"    {name}: {text}")


@app.command()
def check(folder: Annotated[Path, typer.Argument(help="The services folder.")]) -> None:
    """Check a services folder as `lab deploy --services` will; exit 1 naming file and line."""
    with errors_to_exit():
        checked = own_services.check(folder)
    for note in checked.notes:
        typer.echo(f"note: {note}")
    names = ", ".join(s.name for s in checked.own)
    packages = f"; packages: {' '.join(checked.packages)}" if checked.packages else ""
    typer.echo(f"ok: {folder}: {len(checked.own)} service(s): {names}{packages}")


@app.command()
def run(
    name: Annotated[str, typer.Argument(help="The service.")],
    input_file: Annotated[
        Path | None, typer.Option("--input", exists=True, dir_okay=False, help="Input file.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=VALUE, repeatable.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for a result file.")] = Path("."),
    folder: Annotated[Path | None, FOLDER] = None,
) -> None:
    """Run one job here, through the same parameter filter and executor (no queue)."""
    with errors_to_exit():
        registry = _registry(folder)
        params = [parse_param(p) for p in param or []]
        done = run_here(registry, name, input_file, params, out)
    sys.stdout.buffer.write(done.stdout)
    sys.stderr.buffer.write(done.stderr)
    sys.stdout.flush()
    if done.result is not None:
        typer.echo(f"result: {done.result}")
    if isinstance(done.verdict, Succeeded):
        return
    code = done.verdict.code if isinstance(done.verdict, Failed) else "BINARY_CRASHED"
    message = getattr(done.verdict, "message", "")
    typer.echo(f"error: {code}: {message}", err=True)
    raise typer.Exit(1)


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The new service's name (and folder's).")],
    parent: Annotated[Path, typer.Option("--dir", help="Where to make the folder.")] = Path("."),
) -> None:
    """Scaffold a services folder with a working example service and a test request."""
    with errors_to_exit():
        folder = scaffold(name, parent)
    typer.echo(
        f"made {folder}: services.toml, run.sh, packages.txt, request.xml, example-input.txt"
    )
    typer.echo(f"try: lab service run {name} --services {folder} "
               f"--input {folder / 'example-input.txt'} --param mode=words")  # fmt: skip
