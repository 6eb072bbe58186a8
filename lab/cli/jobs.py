"""`lab submit` and `lab results`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lab.cli import tables
from lab.cli.common import emit_json, errors_to_exit, lab_env
from lab.client.results import from_queue
from lab.client.submit import Auth, JobSpec, build_xml, parse_param, send
from lab.runtime.resources import clients_for


def _auth(user: str | None, password: str | None, password_file: Path | None) -> Auth | None:
    if password_file is not None:
        password = password_file.read_text().strip()
    if user is None:
        return None
    return Auth(user, password or "")


def submit(
    service: Annotated[str, typer.Option(help="Service to run, e.g. analyze.")] = "analyze",
    input_url: Annotated[
        str | None, typer.Option("--input", help="Input URL (http(s):// or s3://).")
    ] = None,
    input_user: Annotated[str | None, typer.Option(help="Basic-auth user for the input.")] = None,
    input_password: Annotated[
        str | None, typer.Option(help="Basic-auth password for the input.")
    ] = None,
    input_password_file: Annotated[
        Path | None, typer.Option(help="File holding that password.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="NAME=VALUE, repeatable.")
    ] = None,
    response: Annotated[str, typer.Option(help="callback or queue.")] = "queue",
    callback_url: Annotated[str | None, typer.Option(help="Where to POST the response.")] = None,
    callback_user: Annotated[
        str | None, typer.Option(help="Basic-auth user for the callback.")
    ] = None,
    callback_password: Annotated[
        str | None, typer.Option(help="Basic-auth password for the callback.")
    ] = None,
    callback_password_file: Annotated[
        Path | None, typer.Option(help="File holding that password.")
    ] = None,
    request_id: Annotated[
        str | None, typer.Option(help="Your id; resubmitting it never runs twice.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print the request XML.")
    ] = False,
) -> None:
    """Submit one request; print its SQS message id."""
    with errors_to_exit():
        spec = JobSpec(
            service=service,
            input_url=input_url,
            input_auth=_auth(input_user, input_password, input_password_file),
            params=[parse_param(p) for p in param or []],
            response=response,
            callback_url=callback_url,
            callback_auth=_auth(callback_user, callback_password, callback_password_file),
            request_id=request_id,
        )
        body = build_xml(spec)
        if verbose:
            typer.echo(body.decode(), err=True)
        env = lab_env()
        typer.echo(send(clients_for(env).sqs, env.request_queue_url, body))


def results(
    wait: Annotated[float, typer.Option(help="Seconds to wait for responses.")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Take responses off the response queue and print them."""
    with errors_to_exit():
        env = lab_env()
        found = from_queue(clients_for(env).sqs, env.response_queue_url, wait_s=wait)
    if as_json:
        emit_json([r.as_dict() for r in found])
        return
    if found and tables.on_terminal():
        rows = [
            (r.message_id, r.request_id, r.service, r.status, r.code, r.message, r.raw_output)
            for r in found
        ]
        head = ("message id", "request id", "service", "status", "code", "message", "output")
        tables.render("responses", head, rows)
        return
    for r in found:
        code = f" [{r.code}]" if r.code else ""
        typer.echo(
            f"{r.message_id} {r.request_id or '-'} {r.service or '-'} {r.status}{code}: {r.message}"
        )
        if r.raw_output:
            typer.echo("  " + r.raw_output.rstrip().replace("\n", "\n  "))
    if not found:
        typer.echo("no responses", err=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the `lab` app."""
    app.command()(submit)
    app.command()(results)
