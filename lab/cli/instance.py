"""`lab instance crash|freeze|thaw|terminate ID`: the primitives the chaos scenarios use."""

from __future__ import annotations

from typing import Annotated

import typer

from lab.cli.common import errors_to_exit, lab_env, settings
from lab.ec2 import faults, instances
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
