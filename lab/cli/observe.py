"""`lab status` and `lab logs`."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from lab import procs
from lab.cli.common import emit_json, errors_to_exit, lab_env, settings
from lab.resources import AwsClients, LabEnv

_STALE_S = 30.0


def queue_depths(clients: AwsClients, env: LabEnv) -> dict[str, dict[str, int]]:
    """Visible, in-flight and delayed counts of each queue."""
    names = {
        "request": env.request_queue_url,
        "response": env.response_queue_url,
        "dead_letter": env.dead_letter_queue_url,
    }
    depths: dict[str, dict[str, int]] = {}
    for name, url in names.items():
        attrs = clients.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        depths[name] = {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        }
    return depths


def workers(clients: AwsClients, env: LabEnv) -> list[dict[str, Any]]:
    """Each worker's status document, with its heartbeat age and whether its process lives."""
    live = procs.running(settings().pids)
    listing = clients.s3.list_objects_v2(Bucket=env.bucket, Prefix="status/")
    found = []
    for item in listing.get("Contents", []):
        doc = json.loads(clients.s3.get_object(Bucket=env.bucket, Key=item["Key"])["Body"].read())
        age = time.time() - float(doc.get("heartbeat_at", 0))
        doc["heartbeat_age_s"] = round(age, 1)
        doc["stale"] = doc.get("state") != "stopped" and age > _STALE_S
        doc["process"] = "alive" if doc.get("worker_id") in live else "gone"
        found.append(doc)
    return found


def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Queue depths (visible / in flight / dead-lettered) and workers."""
    with errors_to_exit():
        env = lab_env()
        clients = AwsClients.for_env(env)
        depths, found = queue_depths(clients, env), workers(clients, env)
    if as_json:
        emit_json({"queues": depths, "workers": found})
        return
    for name, depth in depths.items():
        typer.echo(
            f"queue {name:12} visible {depth['visible']:5}  in flight {depth['in_flight']:5}  "
            f"delayed {depth['delayed']:3}"
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
