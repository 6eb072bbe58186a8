"""`lab up` and `lab down`."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Annotated

import typer

import schemas
from lab.cli import progress
from lab.cli.common import errors_to_exit, settings
from lab.client.results import Result, from_queue, from_receiver
from lab.client.submit import send
from lab.deploy import services as own_services
from lab.deploy.rollout import Rollout
from lab.ec2 import instances
from lab.errors import LabError
from lab.net.latency import model_for
from lab.runtime import environment, scaler, stack
from lab.runtime.resources import LabEnv, clients_for
from lab.runtime.settings import LabSettings
from worker.state.store import S3JsonStore


def up(
    instances_n: Annotated[
        int, typer.Option("--instances", min=0, max=16, help="EC2 instances to launch.")
    ] = 2,
    workers: Annotated[
        int, typer.Option(min=0, max=16, help="Plain worker processes (no EC2, no bundle).")
    ] = 0,
    backend: Annotated[
        str, typer.Option(help="Bodies for instances: process or docker.")
    ] = "process",
    samples: Annotated[
        bool, typer.Option(help="Submit schemas/examples and print responses.")
    ] = True,
    wait: Annotated[float, typer.Option(help="Seconds to wait for sample responses.")] = 60.0,
    min_instances: Annotated[
        int | None, typer.Option("--min", min=0, help="Scaler's minimum (default: --instances).")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option("--max", min=0, help="Scaler's maximum (default: --instances).")
    ] = None,
    env_name: Annotated[
        str | None,
        typer.Option("--env", help="local (moto) or localstack, remembered as by `lab env use`."),
    ] = None,
    services: Annotated[Path | None, SERVICES_OPTION] = None,
    latency: Annotated[str | None, LATENCY_OPTION] = None,
) -> None:
    """Start the emulator, create queues/bucket/log group, start receiver and workers."""
    with errors_to_exit():
        config = with_latency(with_services(settings(env_name), services), latency)
        if env_name:
            environment.use(config.home, env_name)
        if backend not in ("process", "docker"):
            raise LabError(f"--backend must be process or docker, not {backend!r}")
        low = instances_n if min_instances is None else min_instances
        high = max(low, instances_n) if max_instances is None else max_instances
        with progress.working("lab up") as say:
            lab_env = stack.up(config, workers, instances_n, backend, (low, high), say=say)
        network = ""
        if config.latency != "none":
            network = f", {config.latency} latency via the proxy {config.proxy_url}"
        typer.echo(
            f"lab up: {config.env} emulator {lab_env.endpoint_url}, {instances_n} instance(s), "
            f"{workers} worker(s), receiver {lab_env.receiver_url}{network}"
        )
        if samples and not run_samples(lab_env, wait):
            raise typer.Exit(1)


SERVICES_OPTION = typer.Option(
    "--services",
    help="A services folder of your own (services.toml, its files, packages.txt) to carry in "
    "every bundle; remembered in .lab/config.toml.",
)


LATENCY_OPTION = typer.Option(
    "--latency",
    help="The lab's network: none, or aws (instances' AWS calls go through the lab's proxy, "
    "each delayed like an in-region AWS call); remembered in .lab/config.toml.",
)


def with_latency(config: LabSettings, latency: str | None) -> LabSettings:
    """``config`` with the latency mode ``latency`` (checked, then remembered), if given."""
    if latency is None:
        return config
    model_for(latency)  # a clear error for an unknown mode, before anything starts
    environment.remember(config.home, "latency", latency)
    return dataclasses.replace(config, latency=latency)


def with_services(config: LabSettings, folder: Path | None) -> LabSettings:
    """``config`` with the services folder ``folder`` (checked, then remembered), if given."""
    if folder is None:
        return config
    checked = own_services.check(folder)
    for note in checked.notes:
        typer.echo(f"note: {note}", err=True)
    path = folder.resolve()
    environment.remember(config.home, "services", str(path))
    return dataclasses.replace(config, services_dir=path)


def run_samples(lab_env: LabEnv, wait: float) -> bool:
    """Submit every example request and print each response; True if all arrived."""
    clients = clients_for(lab_env)
    sent: dict[str, str] = {}
    for path in schemas.examples():
        sent[send(clients.sqs, lab_env.request_queue_url, path.read_bytes())] = path.name
        typer.echo(f"submitted {path.name}")
    results: dict[str, Result] = {}
    deadline = time.monotonic() + wait
    while len(results) < len(sent) and time.monotonic() < deadline:
        for result in from_queue(clients.sqs, lab_env.response_queue_url, wait_s=1.0):
            results[result.message_id] = result
        for result in from_receiver(lab_env.receiver_url) if lab_env.receiver_url else []:
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
        stopped = stack.down(settings())
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def scale(count: Annotated[int, typer.Argument(min=0, max=64, help="Instances wanted.")]) -> None:
    """Launch or terminate instances through EC2 until the fleet has COUNT, at once (scale-in
    here does not drain); the scaler is pinned to COUNT (min = max) so it keeps it there."""
    with errors_to_exit():
        lab_env = LabEnv.load(settings().home)
        clients = clients_for(lab_env)
        store = S3JsonStore(clients.s3, lab_env.bucket)
        if scaler.read_config(store) is not None:
            scaler.write_config(store, {"min_instances": count, "max_instances": count})
        launched, terminated = instances.scale(clients.ec2, lab_env.env, count)
    for instance_id in launched:
        typer.echo(f"launched {instance_id}")
    for instance_id in terminated:
        typer.echo(f"terminating {instance_id}")


def deploy(
    rollout: Annotated[bool, typer.Option(help="Update running instances one at a time.")] = False,
    health_timeout: Annotated[
        float, typer.Option(help="Seconds an instance has to report the new version.")
    ] = 90.0,
    grace: Annotated[float, typer.Option(help="Seconds a draining worker may take.")] = 60.0,
    boot_timeout: Annotated[
        float,
        typer.Option(
            help="With no live instance to roll: seconds for one that boots to serve the new "
            "version, else roll back."
        ),
    ] = 180.0,
    broken: Annotated[
        bool, typer.Option(help="Deploy a bundle whose start-up fails (fault scenarios).")
    ] = False,
    services: Annotated[Path | None, SERVICES_OPTION] = None,
) -> None:
    """Build a code bundle, upload it, move `current`; with --rollout, update the fleet."""
    with errors_to_exit():
        config = with_services(settings(), services)
        lab_env = LabEnv.load(config.home)
        if rollout and not lab_env.emulated:
            raise LabError(
                "--rollout re-deploys the lab's instance bodies; on AWS an instance takes the "
                "new bundle when it boots: deploy, then replace instances (`lab scale`)"
            )
        clients = clients_for(lab_env)
        with progress.working("building and publishing the bundle"):
            made = stack.deploy(config, lab_env, clients, broken=broken)
        typer.echo(f"deployed {made.version} ({made.size} bytes, sha256 {made.sha256[:12]}…)")
        if rollout:
            with progress.working("rollout", plain=typer.echo) as say:
                steps = Rollout(
                    config.home, lab_env, clients, health_timeout, grace, say, boot_timeout
                ).run()
            typer.echo(f"rollout done: {len(steps)} instance(s) on {made.version}")


def register(app: typer.Typer) -> None:
    """Add these commands to the `lab` app."""
    app.command()(up)
    app.command()(down)
    app.command()(scale)
    app.command()(deploy)
