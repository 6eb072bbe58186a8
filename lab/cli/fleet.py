"""`lab up` and `lab down`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

import schemas
from lab import fleet
from lab.cli.common import errors_to_exit, settings
from lab.resources import AwsClients, LabEnv
from lab.results import Result, from_queue, from_receiver
from lab.submit import send


def up(
    workers: Annotated[int, typer.Option(min=0, max=16, help="Worker processes to start.")] = 2,
    samples: Annotated[
        bool, typer.Option(help="Submit schemas/examples and print responses.")
    ] = True,
    wait: Annotated[float, typer.Option(help="Seconds to wait for sample responses.")] = 60.0,
) -> None:
    """Start the emulator, create queues/bucket/log group, start receiver and workers."""
    with errors_to_exit():
        config = settings()
        lab_env = fleet.up(config, workers)
        typer.echo(
            f"lab up: emulator {lab_env.endpoint_url}, {workers} worker(s), "
            f"receiver {lab_env.receiver_url}"
        )
        if samples and not run_samples(lab_env, wait):
            raise typer.Exit(1)


def run_samples(lab_env: LabEnv, wait: float) -> bool:
    """Submit every example request and print each response; True if all arrived."""
    clients = AwsClients.for_env(lab_env)
    sent: dict[str, str] = {}
    for path in schemas.examples():
        sent[send(clients.sqs, lab_env.request_queue_url, path.read_bytes())] = path.name
        typer.echo(f"submitted {path.name}")
    results: dict[str, Result] = {}
    deadline = time.monotonic() + wait
    while len(results) < len(sent) and time.monotonic() < deadline:
        for result in from_queue(clients.sqs, lab_env.response_queue_url, wait_s=1.0):
            results[result.message_id] = result
        for result in from_receiver(lab_env.receiver_url):
            results[result.message_id] = result
    for message_id, name in sent.items():
        found = results.get(message_id)
        if found is None:
            typer.echo(f"\n{name}: no response within {wait:g} s")
            continue
        result = found
        typer.echo(f"\n{name} -> {result.status} via {result.via}: {result.message}")
        if result.raw_output:
            typer.echo(result.raw_output.rstrip())
        for url in result.files:
            typer.echo(f"file: {url}")
    return len(results) >= len(sent) and all(r.status == "success" for r in results.values())


def down() -> None:
    """Stop everything `lab up` started (by pid file; workers drain first)."""
    with errors_to_exit():
        stopped = fleet.down(settings())
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def register(app: typer.Typer) -> None:
    """Add these commands to the `lab` app."""
    app.command()(up)
    app.command()(down)
