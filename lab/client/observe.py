"""Reading the fleet's state for people: queue depths, status documents, and instances from EC2
joined with their bodies and status. What `lab status` prints and the dashboard shows."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from lab.ec2 import instances
from lab.ec2.bodies import Body, liveness
from lab.runtime import procs
from lab.runtime.resources import LabEnv
from lab.runtime.settings import load_settings
from worker.aws import Clients
from worker.consume.queue import depth
from worker.state.layout import STATUS

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
    live = procs.running(load_settings().pids)
    return [
        doc | {"process": "alive" if worker_id in live else "gone"}
        for worker_id, doc in docs.items()
        if not worker_id.startswith("i-")
    ]


def fleet_instances(
    clients: Clients, env: LabEnv, docs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Instances from EC2, joined with their body (hypervisor records) and status document."""
    folder = load_settings().home / "instances"
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
