"""`lab status` and `lab logs`."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from lab.cli.common import emit_json, errors_to_exit, lab_env
from lab.client.observe import fleet_instances, queue_depths, status_docs, workers
from lab.runtime import scaler
from lab.runtime.resources import AwsClients
from worker.state.store import S3JsonStore


def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Queue depths (visible / in flight / dead-lettered) and workers."""
    with errors_to_exit():
        env = lab_env()
        clients = AwsClients.for_env(env)
        docs = status_docs(clients, env)
        depths, found = queue_depths(clients, env), workers(docs)
        fleet = fleet_instances(clients, env, docs)
        leading = scaler.read_state(S3JsonStore(clients.s3, env.bucket))
    if as_json:
        emit_json({"queues": depths, "instances": fleet, "workers": found, "scaler": leading})
        return
    if leading:
        typer.echo(
            f"scaler leader {leading.get('leader')} (token {leading.get('token')}), desired "
            f"{leading.get('desired')}, {time.time() - float(leading.get('at', 0)):.0f} s ago: "
            f"{leading.get('reason')}"
        )
    for name, counts in depths.items():
        typer.echo(
            f"queue {name:12} visible {counts['visible']:5}  in flight {counts['in_flight']:5}  "
            f"delayed {counts['delayed']:3}"
        )
    for i in fleet:
        flag = ("  STALE" if i["stale"] else "") + ("  DRAIN" if i["drain_requested"] else "")
        age = (
            f"{i['heartbeat_age_s']:6.1f}s ago"
            if i["heartbeat_age_s"] is not None
            else "     never"
        )
        typer.echo(
            f"instance {i['id']} {i['ec2_state']:10} {i['state'] or '-':8} body {i['body']:7} "
            f"code {i['code_version'] or '-':24} jobs {i['jobs_done']:5} heartbeat {age}{flag}"
        )
    for w in found:
        flag = "  STALE" if w["stale"] else ""
        typer.echo(
            f"worker {w['worker_id']:10} {w['state']:8} process {w['process']:5} "
            f"jobs {w['jobs_done']:6} heartbeat {w['heartbeat_age_s']:6.1f}s ago{flag}"
        )


def logs(
    worker: Annotated[str | None, typer.Option(help="Only this worker's stream.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Most recent lines to show.")] = 50,
) -> None:
    """Show the activity log from CloudWatch Logs (one stream per worker)."""
    with errors_to_exit():
        env = lab_env()
        client = AwsClients.for_env(env).logs
        kwargs: dict[str, Any] = {"logGroupName": env.log_group}
        if worker:
            kwargs["logStreamNames"] = [worker]
        events: list[tuple[int, str]] = []
        for page in client.get_paginator("filter_log_events").paginate(**kwargs):
            events.extend(
                (e.get("timestamp", 0), e.get("message", "")) for e in page.get("events", [])
            )
    for _, line in sorted(events)[-limit:]:
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add these commands to the `lab` app."""
    app.command()(status)
    app.command()(logs)
