"""`lab status` and `lab logs`."""

from __future__ import annotations

import contextlib
import time
from typing import Annotated, Any

import typer

from lab.cli import tables
from lab.cli.common import emit_json, errors_to_exit, lab_env, settings
from lab.client.observe import fleet_instances, queue_depths, status_docs, workers
from lab.net.serve import read_counts
from lab.runtime import procs, scaler, stack
from lab.runtime.resources import clients_for
from lab.runtime.settings import LabSettings
from worker.state.store import S3JsonStore


def snapshot() -> dict[str, Any]:
    """What `lab status --json` prints: the lab's network, queues, instances, plain workers,
    the scaler's state."""
    env = lab_env()
    clients = clients_for(env)
    docs = status_docs(clients, env)
    return {
        "network": network(settings()),
        "queues": queue_depths(clients, env),
        "instances": fleet_instances(clients, env, docs),
        "workers": workers(docs),
        "scaler": scaler.read_state(S3JsonStore(clients.s3, env.bucket)),
    }


def network(config: LabSettings) -> dict[str, Any]:
    """The lab network's latency mode and, when its proxy runs, where and the AWS calls it
    carried by operation."""
    if config.latency == "none" or stack.PROXY not in procs.running(config.pids):
        return {"latency": config.latency, "proxy": None, "calls": {}}
    try:
        calls = read_counts(stack.proxy_counts(config)).get("emulator", {})
    except ValueError:
        calls = {}  # mid-rewrite or damaged: the next status shows them
    return {"latency": config.latency, "proxy": config.proxy_url, "calls": calls}


def plain_lines(snap: dict[str, Any], now: float) -> list[str]:
    """The snapshot as plain lines (what scripts and tests read)."""
    lines = [tables.network_line(snap["network"])]
    leading = snap["scaler"]
    if leading:
        lines.append(
            f"scaler leader {leading.get('leader')} (token {leading.get('token')}), desired "
            f"{leading.get('desired')}, {now - float(leading.get('at', 0)):.0f} s ago: "
            f"{leading.get('reason')}"
        )
    for name, counts in snap["queues"].items():
        lines.append(
            f"queue {name:12} visible {counts['visible']:5}  in flight {counts['in_flight']:5}  "
            f"delayed {counts['delayed']:3}"
        )
    for i in snap["instances"]:
        flag = ("  STALE" if i["stale"] else "") + ("  DRAIN" if i["drain_requested"] else "")
        flag += "  INTERRUPTED" if i["interruption_at"] else ""
        flag += "  REBALANCE" if i["rebalance_at"] else ""
        age = (
            f"{i['heartbeat_age_s']:6.1f}s ago"
            if i["heartbeat_age_s"] is not None
            else "     never"
        )
        lines.append(
            f"instance {i['id']} {i['market']:9} {i['ec2_state']:10} {i['state'] or '-':8} "
            f"body {i['body']:7} "
            f"code {i['code_version'] or '-':24} jobs {i['jobs_done']:5} heartbeat {age}{flag}"
        )
    for w in snap["workers"]:
        flag = "  STALE" if w["stale"] else ""
        lines.append(
            f"worker {w['worker_id']:10} {w['state']:8} process {w['process']:5} "
            f"jobs {w['jobs_done']:6} heartbeat {w['heartbeat_age_s']:6.1f}s ago{flag}"
        )
    return lines


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    watch: Annotated[
        float | None,
        typer.Option(min=0.5, max=3600, help="Refresh every this many seconds until Ctrl-C."),
    ] = None,
) -> None:
    """Queue depths (visible / in flight / dead-lettered), instances, workers and the scaler."""
    with errors_to_exit():
        snap = snapshot()
        if as_json:
            emit_json(snap)
            return
        if watch is not None and tables.on_terminal():
            tables.watch(lambda: tables.status_view(snapshot(), time.time()), watch)
            return
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a --watch
            while True:
                if tables.on_terminal():
                    tables.show(tables.status_view(snap, time.time()))
                else:
                    for line in plain_lines(snap, time.time()):
                        typer.echo(line)
                if watch is None:
                    return
                time.sleep(watch)
                typer.echo("")
                snap = snapshot()


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
