"""`lab status` and `lab logs`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Annotated, Any

import typer

from lab.cli.common import emit_json, errors_to_exit, lab_env, settings
from lab.ec2 import instances
from lab.ec2.bodies import Body, liveness
from lab.runtime import procs, scaler
from lab.runtime.resources import LabEnv, clients_for
from worker.aws import Clients
from worker.consume.queue import depth
from worker.state.layout import STATUS
from worker.state.store import S3JsonStore

_STALE_S = 30.0


def queue_depths(clients: Clients, env: LabEnv) -> dict[str, dict[str, int]]:
    """Visible, in-flight and delayed counts of each queue."""
    names = {
        "request": env.request_queue_url,
        "response": env.response_queue_url,
        "dead_letter": env.dead_letter_queue_url,
    }
    return {name: asdict(depth(clients.sqs, url)) for name, url in names.items()}


def status_docs(clients: Clients, env: LabEnv) -> dict[str, dict[str, Any]]:
    """Every status document, by worker id, with its heartbeat age and a staleness flag."""
    found: dict[str, dict[str, Any]] = {}
    pages = clients.s3.get_paginator("list_objects_v2").paginate(Bucket=env.bucket, Prefix=STATUS)
    for item in (i for page in pages for i in page.get("Contents", [])):
        doc = json.loads(clients.s3.get_object(Bucket=env.bucket, Key=item["Key"])["Body"].read())
        age = time.time() - float(doc.get("heartbeat_at", 0))
        doc["heartbeat_age_s"] = round(age, 1)
        doc["stale"] = doc.get("state") != "stopped" and age > _STALE_S
        found[str(doc.get("worker_id"))] = doc
    return found


def workers(docs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain worker processes (not instances): status joined with whether the process lives."""
    live = procs.running(settings().pids)
    return [
        doc | {"process": "alive" if worker_id in live else "gone"}
        for worker_id, doc in docs.items()
        if not worker_id.startswith("i-")
    ]


def fleet_instances(
    clients: Clients, env: LabEnv, docs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Instances from EC2, joined with their body (hypervisor records) and status document."""
    folder = settings().home / "instances"
    every = instances.LIVE_STATES + instances.GONE_STATES
    rows = []
    for instance in instances.fleet(clients.ec2, env.env, every):
        body = Body.load(folder / instance.id)
        doc = docs.get(instance.id, {})
        live = instance.state in instances.LIVE_STATES
        rows.append({
            "id": instance.id,
            "ec2_state": instance.state,
            "state": doc.get("state", "booting" if live else None),
            "backend": body.backend if body else None,
            "body": ("stopped" if body.stopped else liveness(body)) if body else "none",
            "pid": body.pid if body else None,
            "container": body.container or None if body else None,
            "code_version": doc.get("code_version"),
            "heartbeat_age_s": doc.get("heartbeat_age_s"),
            "stale": bool(doc.get("stale")),
            "current_request": doc.get("current_request"),
            "jobs_done": doc.get("jobs_done", 0),
            "drain_requested": bool(doc.get("drain_requested")),
        })  # fmt: skip
    return rows


def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Queue depths (visible / in flight / dead-lettered) and workers."""
    with errors_to_exit():
        env = lab_env()
        clients = clients_for(env)
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
        client = clients_for(env).logs
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
