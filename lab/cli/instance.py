"""`lab instance crash|freeze|thaw|terminate|interrupt|rebalance ID`, `lab instance launch`: the
primitives the chaos scenarios use."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from lab.cli.common import errors_to_exit, lab_env, settings
from lab.ec2 import faults, instances, spot
from lab.ec2.metadata import iso
from lab.runtime.resources import clients_for

app = typer.Typer(no_args_is_help=True, help="Act on one instance (its body, or through EC2).")
InstanceId = Annotated[str, typer.Argument(help="Instance id, e.g. i-0123456789abcdef0.")]


def _fault(instance_id: str, action: str, said: str) -> None:
    with errors_to_exit():
        body = faults.act(settings().home, instance_id, action)
    typer.echo(f"{said} {instance_id} (body pid {body.pid})")


@app.command()
def crash(instance_id: InstanceId) -> None:
    """Kill the body; EC2 still says running (a dead process on a live VM)."""
    _fault(instance_id, "crash", "crashed")


@app.command()
def freeze(instance_id: InstanceId) -> None:
    """Stop the body (SIGSTOP): a zombie that holds its messages and does nothing."""
    _fault(instance_id, "freeze", "froze")


@app.command()
def thaw(instance_id: InstanceId) -> None:
    """Let a frozen body run on (SIGCONT)."""
    _fault(instance_id, "thaw", "thawed")


@app.command()
def terminate(instance_id: InstanceId) -> None:
    """Terminate through EC2; the hypervisor stops the body (the worker drains first)."""
    with errors_to_exit():
        env = lab_env()
        instances.terminate(clients_for(env).ec2, [instance_id])
    typer.echo(f"terminating {instance_id}")


@app.command()
def launch(
    count: Annotated[int, typer.Option(min=1, max=16, help="Instances to launch.")] = 1,
    as_spot: Annotated[bool, typer.Option("--spot", help="Launch spot instances.")] = False,
) -> None:
    """Launch instances from the fleet's launch template (on-demand unless --spot)."""
    with errors_to_exit():
        env = lab_env()
        launched = instances.launch(clients_for(env).ec2, env.env, count, spot=as_spot)
    typer.echo(f"launched {' '.join(launched)} ({'spot' if as_spot else 'on-demand'})")


def _instance(instance_id: str) -> instances.Instance | None:
    env = lab_env()
    every = instances.LIVE_STATES + instances.GONE_STATES
    found = [
        i for i in instances.fleet(clients_for(env).ec2, env.env, every) if i.id == instance_id
    ]
    return found[0] if found else None


@app.command()
def interrupt(
    instance_id: InstanceId,
    notice: Annotated[
        float | None,
        typer.Option(
            help="Seconds of notice (default: two minutes compressed by the lab's speed)."
        ),
    ] = None,
) -> None:
    """Post a spot interruption notice; EC2 terminates the instance when it runs out."""
    with errors_to_exit():
        lab = settings()
        seconds = spot.default_notice_s(lab.job_speed) if notice is None else notice
        posted = spot.interrupt(lab.home, _instance(instance_id), instance_id, seconds, time.time())
    assert posted.interruption_at is not None
    typer.echo(f"interrupting {instance_id}: terminated at {iso(posted.interruption_at)}")


@app.command()
def rebalance(instance_id: InstanceId) -> None:
    """Post a rebalance recommendation (the instance is at raised risk of interruption)."""
    with errors_to_exit():
        spot.rebalance(settings().home, _instance(instance_id), instance_id, time.time())
    typer.echo(f"rebalance recommended for {instance_id}")
