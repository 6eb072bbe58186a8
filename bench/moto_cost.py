#!/usr/bin/env python3
"""What moto's own CPU costs per call and per job: the ceiling the emulator puts on every figure.

Run: ``.venv/bin/python bench/moto_cost.py [--n 500] [--reps 3]``

moto_server is one Python process: however many threads serve it, its calls share one core (the
GIL). The pipeline benchmark's drains are bound by it, so this measures, on a fresh moto_server
(``benchlab``) and with moto's CPU time read from /proc (user + system, not wall time, so other
load on the machine changes little), per rep:

* ``drain_sqs``: N preloaded messages received ten at a time and deleted with
  ``DeleteMessageBatch`` — the SQS work of a drain, the bare consumer's and fleetlab's;
* ``drain_sqs_single_deletes``: the same with one ``DeleteMessage`` per message, as kombu acks
  (the Celery peer's SQS work);
* ``claim_lookup`` and ``result_put``: a result-mode job's two S3 calls, a ``GetObject`` of a
  key that is not there and a create-only ``PutObject`` (``IfNoneMatch: *``);
* ``send``: one ``SendMessage`` to a shallow queue (the producer's, on the idle path);
* the idle path through the lab's proxy forwarding at once (``--latency none``): a request's
  SQS calls (``SendMessage``, the ``ReceiveMessage`` that takes it, its ``DeleteMessageBatch``),
  the lookup and the write, each with its wall time (median) and the CPU it costs the client
  (this process: the SDK), the proxy and moto. With AWS's latencies the proxy and moto come on
  top of the delay it injects; this is how much.

Then per job: fleetlab's (``drain_sqs`` + ``claim_lookup`` + ``result_put``), the peer's
(``drain_sqs_single_deletes``) and the bare consumer's (``drain_sqs``), each with the jobs per
second one core of moto could serve at that cost. One JSON line per figure on stdout (medians of
the reps), progress on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import netlab
from benchlab import PROCS, Lab, cpu_s, log, rnd, start_lab

from lab.runtime.resources import LabEnv

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import (
        DeleteMessageBatchRequestEntryTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

_BODY = b"<response/>" * 30  # about a noop response's size


def moto_ms(lab: Lab, calls: int, work: Callable[[], None]) -> float:
    """moto's CPU milliseconds per call while ``work`` makes ``calls`` calls."""
    before = cpu_s(lab.moto.pid)
    work()
    after = cpu_s(lab.moto.pid)
    if before is None or after is None:
        raise RuntimeError("moto_server ended during the measurement")
    return (after - before) * 1000 / calls


def preload(lab: Lab, env: LabEnv, n: int) -> None:
    for start in range(0, n, 10):
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "MessageBody": "<request/>"} for i in range(min(10, n - start))
        ]
        lab.clients.sqs.send_message_batch(QueueUrl=env.request_queue_url, Entries=entries)


def drain_queue(lab: Lab, env: LabEnv, single_deletes: bool) -> None:
    sqs, url = lab.clients.sqs, env.request_queue_url
    while batch := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
    ).get("Messages", []):
        if single_deletes:
            for message in batch:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        else:
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)


def rep(lab: Lab, n: int, index: int) -> dict[str, float]:
    """One rep of every measurement, on fresh queues and a fresh bucket."""
    env = lab.fresh(f"cost{index}-{uuid.uuid4().hex[:6]}")
    s3 = lab.clients.s3
    keys = [f"claims/{uuid.uuid4().hex}.json" for _ in range(n)]
    out: dict[str, float] = {}
    for name, single in (("drain_sqs", False), ("drain_sqs_single_deletes", True)):
        preload(lab, env, n)

        def drain(single: bool = single) -> None:
            drain_queue(lab, env, single)

        out[name] = moto_ms(lab, n, drain)

    def lookups() -> None:
        for key in keys:
            with contextlib.suppress(s3.exceptions.NoSuchKey):
                s3.get_object(Bucket=env.bucket, Key=key)

    def puts() -> None:
        for key in keys:
            s3.put_object(Bucket=env.bucket, Key=key, Body=_BODY, IfNoneMatch="*")

    def sends() -> None:
        for _ in range(n):
            lab.clients.sqs.send_message(QueueUrl=env.response_queue_url, MessageBody="<r/>")

    out["claim_lookup"] = moto_ms(lab, n, lookups)
    out["result_put"] = moto_ms(lab, n, puts)
    out["send"] = moto_ms(lab, n, sends)
    return out


PATH_CALLS = ("message", "lookup", "write")


def path(lab: Lab, through: Lab, n: int, index: int) -> dict[str, float]:
    """The idle path's calls through the proxy: ``<call>_wall_ms`` (median) and
    ``<call>_{client,proxy,moto}_ms`` (CPU per call, over ``n`` calls). ``message`` is one
    request's SQS calls: its ``SendMessage``, the ``ReceiveMessage`` that takes it and its
    ``DeleteMessageBatch`` (settled after the callback, off the path: an upper bound)."""
    assert through.proxy is not None
    env = lab.fresh(f"path{index}-{uuid.uuid4().hex[:6]}")
    sqs, s3, url = through.clients.sqs, through.clients.s3, env.request_queue_url
    keys = iter([f"claims/{uuid.uuid4().hex}.json" for _ in range(n)] * 2)
    pids = {"client": os.getpid(), "proxy": through.proxy.pid, "moto": lab.moto.pid}

    def message() -> None:
        sqs.send_message(QueueUrl=url, MessageBody="<request/>" * 40)
        [got] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)[
            "Messages"
        ]
        sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": "0", "ReceiptHandle": got["ReceiptHandle"]}]
        )

    def lookup() -> None:
        with contextlib.suppress(s3.exceptions.NoSuchKey):
            s3.get_object(Bucket=env.bucket, Key=next(keys))

    def write() -> None:
        s3.put_object(Bucket=env.bucket, Key=next(keys), Body=_BODY, IfNoneMatch="*")

    out: dict[str, float] = {}
    for name, call in zip(PATH_CALLS, (message, lookup, write), strict=True):
        walls, before = [], {who: cpu_s(pid) or 0.0 for who, pid in pids.items()}
        for _ in range(n):
            started = time.perf_counter()
            call()
            walls.append((time.perf_counter() - started) * 1000)
        for who, pid in pids.items():
            out[f"{name}_{who}_ms"] = ((cpu_s(pid) or 0.0) - before[who]) * 1000 / n
        out[f"{name}_wall_ms"] = statistics.median(walls)
    return out


def path_figures(reps: list[dict[str, float]]) -> list[dict[str, Any]]:
    med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    lines: list[dict[str, Any]] = [
        {
            "figure": f"path_{name}_ms",
            "value": rnd(med[f"{name}_wall_ms"], 2),
            "unit": "ms, wall, median call through the proxy (no latency)",
            "cpu_ms": {who: rnd(med[f"{name}_{who}_ms"], 2) for who in ("client", "proxy", "moto")},
            "median_of": len(reps),
        }
        for name in PATH_CALLS
    ]
    total = {
        who: sum(med[f"{name}_{who}_ms"] for name in PATH_CALLS)
        for who in ("wall", "client", "proxy", "moto")
    }
    lines.append(
        {
            "figure": "path_idle_ms",
            "value": rnd(total["wall"], 2),
            "unit": "ms, the idle path's calls one after another (and the delete), no latency",
            "cpu_ms": {who: rnd(total[who], 2) for who in ("client", "proxy", "moto")},
            "lab_cpu_ms": rnd(total["proxy"] + total["moto"], 2),
            "median_of": len(reps),
        }
    )
    return lines


def figures(reps: list[dict[str, float]]) -> list[dict[str, Any]]:
    med = {k: statistics.median(r[k] for r in reps) for k in reps[0]}
    lines: list[dict[str, Any]] = [
        {
            "figure": f"moto_cpu_ms_{name}",
            "value": rnd(value, 2),
            "unit": "ms of moto CPU per message" if name.startswith("drain") else "ms per call",
            "median_of": len(reps),
            "runs": [rnd(r[name], 2) for r in reps],
        }
        for name, value in med.items()
    ]
    per_job = {
        "fleetlab": med["drain_sqs"] + med["claim_lookup"] + med["result_put"],
        "peer": med["drain_sqs_single_deletes"],
        "bare": med["drain_sqs"],
    }
    for who, ms in per_job.items():
        lines.append(
            {
                "figure": f"moto_cpu_ms_per_job_{who}",
                "value": rnd(ms, 2),
                "unit": "ms of moto CPU per drained job",
                "moto_ceiling_jobs_per_s": rnd(1000 / ms, 1),
                "median_of": len(reps),
            }
        )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="messages (and S3 calls) per measurement")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetlab-moto-cost-") as tmp:
        lab = start_lab(Path(tmp))
        try:
            through = netlab.with_latency(lab, Path(tmp), latency="none")
            reps, paths = [], []
            for index in range(1, args.reps + 1):
                reps.append(rep(lab, args.n, index))
                paths.append(path(lab, through, args.n, index))
                for what, got in (("calls", reps[-1]), ("path", paths[-1])):
                    said = ", ".join(f"{k} {v:.2f}" for k, v in got.items())
                    log(f"rep {index}, {what}: {said}")
        finally:
            PROCS.stop_all()
    for line in figures(reps) + path_figures(paths):
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
