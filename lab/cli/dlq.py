"""`lab dlq list|show ID|redrive [ID|--all]`: the dead-letter queue, as the dashboard shows it."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from lab.cli import tables
from lab.cli.common import emit_json, errors_to_exit, lab_env
from lab.client import dlq
from lab.runtime.resources import clients_for

app = typer.Typer(no_args_is_help=True, help="Look at the dead-letter queue and redrive it.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("list")
def list_letters(as_json: JsonOption = False) -> None:
    """Every dead-lettered message: id, request id, receive count, age and logged reason."""
    with errors_to_exit():
        env = lab_env()
        letters = dlq.peek(clients_for(env), env)
    if as_json:
        emit_json([x.as_dict() for x in letters])
        return
    tables.dead_letters(letters, time.time())


@app.command("show")
def show(
    message_id: Annotated[str, typer.Argument(help="The SQS message id.")],
    as_json: JsonOption = False,
) -> None:
    """One dead-lettered message with its body and the reason the activity log gives."""
    with errors_to_exit():
        env = lab_env()
        letter = dlq.show(clients_for(env), env, message_id)
    if as_json:
        emit_json(letter.as_dict())
        return
    for key in ("message_id", "request_id", "receive_count", "worker", "reason"):
        typer.echo(f"{key:14} {getattr(letter, key)}")
    typer.echo("")
    typer.echo(letter.body)


@app.command("redrive")
def redrive(
    message_id: Annotated[str | None, typer.Argument(help="One message id (or --all).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Every message in the queue.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (on aws it asks).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Send dead-lettered messages back to the request queue."""
    if (message_id is None) == (not every):
        typer.echo("error: name one message id, or --all", err=True)
        raise typer.Exit(2)
    with errors_to_exit():
        env = lab_env()
        what = "every dead-lettered message" if every else f"message {message_id}"
        if env.env == "aws" and not yes:
            typer.confirm(f"Redrive {what} to {env.request_queue_url}?", abort=True)
        clients = clients_for(env)
        done = (
            dlq.redrive_all(clients, env)
            if every
            else dlq.redrive_one(clients, env, str(message_id))
        )
    if as_json:
        emit_json(done.as_dict())
        return
    moved = f"{len(done.moved)} message(s) moved" if done.method == "lab-move" else "task started"
    typer.echo(f"redrive by {done.method}: {moved}" + (f" ({done.note})" if done.note else ""))
