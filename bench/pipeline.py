#!/usr/bin/env python3
"""Pipeline benchmark: two fleetlab workers on moto_server, the Celery/SQS peer beside them.

Run: ``.venv/bin/python bench/pipeline.py [--n 500] [--reps 3] [--skip-peer] [--latency both]``

It mirrors the peer's method (../shared/peers/celery_sqs, from the repo root): its own moto_server
and callback receiver on free 127.0.0.1 ports, fresh queues and bucket for every measurement, and
per rep:

* live:  2 idle workers, one synchronous producer sends N noop requests, one ``send_message``
  each; throughput = N / (last callback - first send); latency = callback - send, p50/p95.
  Then idle: 20 single requests, each sent after the previous callback, 50 ms apart.
* drain: N requests preloaded (``send_message_batch``), then 2 workers start;
  throughput = N / (last callback - ready), ready = both workers logged "started".
  After it, SIGTERM, and the workers' final status documents give the AWS calls per job.
* peer:  ``run.sh -n N --reps 1 --pools prefork --mode tuned=0.01,10`` (skip: --skip-peer).

``--latency aws`` measures the same through the lab's proxy with AWS's latencies (netlab.py):
workers, producer and the peer (its ``--broker-url``) reach the bench's moto through it; its
figures carry the suffix ``_aws_latency``. ``--latency both`` (the default) runs both modes,
plain first, in every rep.

One JSON line per figure goes to stdout, progress to stderr, everything measured to
``bench/results/pipeline-<timestamp>.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import netlab
from benchlab import (
    PROCS,
    REGION,
    WORKERS,
    CpuMeter,
    Lab,
    cpu_s,
    exit_on_signal,
    gaps,
    log,
    pct,
    rnd,
    start_lab,
    start_workers,
    stop_workers,
    vm_hwm_mb,
    wait_ready,
)

from lab.runtime.resources import lab_clients

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PEER_RUN = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "celery_sqs" / "run.sh"
PEER_KEY = "prefork/tuned"
FIGURES = (
    ("drain_jobs_per_s", "jobs/s"),
    ("drain_ceiling_jobs_per_s", "jobs/s"),
    ("live_jobs_per_s", "jobs/s"),
    ("live_p50_ms", "ms"),
    ("live_p95_ms", "ms"),
    ("idle_p50_ms", "ms"),
    ("round_trips_per_job", "calls"),
    ("worker_rss_mb", "MB"),
)
MODES = {"none": ("",), "aws": (netlab.SUFFIX,), "both": ("", netlab.SUFFIX)}

# --- measurements -------------------------------------------------------------------------------


def live(lab: Lab, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    """Idle workers, one synchronous producer; then the idle single-job latency."""
    sid = f"r{rep}-live-{uuid.uuid4().hex[:6]}"
    env = lab.fresh(sid)
    sqs, queue = lab.clients.sqs, env.request_queue_url
    res: dict[str, Any] = {"sid": sid, "n": args.n}
    workers = start_workers(lab, env, sid)
    try:
        ready = wait_ready(workers)
        res["ready_s"] = rnd(ready - min(w.spawned_at for w in workers))
        # Warm-up (producer connection, both workers' first job): not measured.
        warm = {
            sqs.send_message(QueueUrl=queue, MessageBody=lab.request(f"{sid}-warm{i}"))["MessageId"]
            for i in range(WORKERS)
        }
        if not lab.journal.wait(warm, time.monotonic() + 30):
            raise RuntimeError("warm-up jobs did not complete")
        time.sleep(args.settle)

        meter = CpuMeter(lab, workers)
        deadline = time.monotonic() + args.timeout
        sent: dict[str, float] = {}
        for i in range(args.n):
            at = time.time()
            mid = sqs.send_message(QueueUrl=queue, MessageBody=lab.request(f"{sid}-{i}"))
            sent[mid["MessageId"]] = at
        first_send = min(sent.values())
        enqueue_s = time.time() - first_send
        ok = lab.journal.wait(set(sent), deadline)
        res["cpu"] = meter.read()
        res["rss_mb"] = [rnd(vm_hwm_mb(w.proc.pid), 1) for w in workers]
        done = {mid: lab.journal.first_at[mid] for mid in sent if mid in lab.journal.first_at}
        latencies = [(done[mid] - sent[mid]) * 1000 for mid in done]
        span = max(done.values()) - first_send if done else None
        res |= {
            "completed": len(done),
            "timed_out": not ok,
            "repeats": sum(lab.journal.posts[mid] - 1 for mid in done),
            "enqueue_rate": rnd(args.n / enqueue_s, 1),
            "span_s": rnd(span),
            "throughput": rnd(args.n / span, 2) if ok and span else None,
            "p50_ms": rnd(pct(latencies, 50), 2) if ok else None,
            "p95_ms": rnd(pct(latencies, 95), 2) if ok else None,
            "max_ms": rnd(max(latencies), 2) if latencies else None,
            "completions": gaps(list(done.values())),
        }
        log(
            f"[{sid}] live n={args.n} done={len(done)} thr={res['throughput']} jobs/s "
            f"p50={res['p50_ms']} p95={res['p95_ms']} ms enq={res['enqueue_rate']}/s "
            f"cpu={res['cpu']['utilisation']}"
        )
        time.sleep(args.settle)
        res["idle"] = idle(lab, sqs, queue, sid, args)
        log(f"[{sid}] idle k={args.idle_k} p50={res['idle']['p50_ms']} ms")
    finally:
        res |= stop_workers(lab, env, workers)
    return res


def idle(lab: Lab, sqs: Any, queue: str, sid: str, args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    windows: list[tuple[float, float]] = []
    for i in range(args.idle_k):
        at = time.time()
        mid = sqs.send_message(QueueUrl=queue, MessageBody=lab.request(f"{sid}-idle{i}"))
        mid = mid["MessageId"]
        if not lab.journal.wait({mid}, time.monotonic() + args.timeout, sleep=0.001):
            break
        latencies.append((lab.journal.first_at[mid] - at) * 1000)
        windows.append((at, lab.journal.first_at[mid]))
        time.sleep(args.idle_gap)
    res: dict[str, Any] = {
        "k": args.idle_k,
        "completed": len(latencies),
        "p50_ms": rnd(pct(latencies, 50), 2) if len(latencies) == args.idle_k else None,
        "max_ms": rnd(max(latencies), 2) if latencies else None,
        "all_ms": [round(x, 2) for x in latencies],
    }
    if lab.trace is not None:  # what the proxy held each job's calls for, send to callback
        injected = [lab.trace.injected_ms(start, end) for start, end in windows]
        res["injected_ms"] = [round(x, 2) for x in injected]
        res["injected_p50_ms"] = rnd(pct(injected, 50), 2) if injected else None
    return res


def drain(lab: Lab, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    """N preloaded, then 2 fresh workers; afterwards AWS calls per job from their status."""
    sid = f"r{rep}-drain-{uuid.uuid4().hex[:6]}"
    env = lab.fresh(sid)
    sqs = lab.clients.sqs
    ids: list[str] = []
    t0 = time.monotonic()
    for start in range(0, args.n, 10):
        entries = [
            {"Id": str(i), "MessageBody": lab.request(f"{sid}-{start + i}")}
            for i in range(min(10, args.n - start))
        ]
        reply = sqs.send_message_batch(QueueUrl=env.request_queue_url, Entries=entries)
        if reply.get("Failed"):
            raise RuntimeError(f"preload failed: {reply['Failed']}")
        ids += [m["MessageId"] for m in reply["Successful"]]
    res: dict[str, Any] = {"sid": sid, "n": args.n, "preload_s": rnd(time.monotonic() - t0)}
    workers = start_workers(lab, env, sid)
    try:
        deadline = time.monotonic() + args.timeout
        ready = wait_ready(workers)
        meter = CpuMeter(lab, workers)
        ok = lab.journal.wait(set(ids), deadline)
        res["cpu"] = meter.read()
        done = [lab.journal.first_at[mid] for mid in ids if mid in lab.journal.first_at]
        first_ready = min(w.ready_at for w in workers if w.ready_at is not None)
        span = max(done) - ready if done else None
        res |= {
            "ready_s": [rnd(w.ready_at - w.spawned_at) for w in workers if w.ready_at],
            "workers_ready_spread_s": rnd(ready - first_ready),
            "done_before_ready": sum(1 for at in done if at < ready),
            "completed": len(done),
            "timed_out": not ok,
            "span_s": rnd(span),
            "throughput": rnd(args.n / span, 2) if ok and span else None,
            "throughput_from_first_ready": (
                rnd(args.n / (max(done) - first_ready), 2) if ok and done else None
            ),
            "first_done_after_ready_ms": rnd((min(done) - ready) * 1000, 1) if done else None,
            "completions": gaps(done),
        }
    finally:
        res |= stop_workers(lab, env, workers)
    if lab.trace is not None:  # the workers' calls as the proxy counted them, spawn to stop
        spawned = min(w.spawned_at for w in workers)
        counted = lab.trace.by_operation(spawned, time.time(), "workers")
        res["proxy_calls_per_job"] = {op: rnd(n / args.n) for op, n in counted.items()}
    statuses = [w.status for w in workers]
    if all(s is not None and "api_calls" in s for s in statuses):
        aws = sum(int(s["api_calls"]) for s in statuses if s)
        posts = sum(lab.journal.posts.get(mid, 0) for mid in ids)
        by_op = merge_counts(s.get("api_calls_by_operation", {}) for s in statuses if s)
        res |= {
            "api_calls": aws,
            "api_calls_by_operation": by_op,
            "callback_posts": posts,
            "jobs_done": [s.get("jobs_done") for s in statuses if s],
            "aws_calls_per_job": rnd(aws / args.n),
            "calls_per_job": {op: rnd(n / args.n) for op, n in by_op.items()},
            "round_trips_per_job": rnd((aws + posts) / args.n),
        }
    log(
        f"[{sid}] drain n={args.n} done={res['completed']} thr={res['throughput']} jobs/s "
        f"(preload {res['preload_s']} s) round_trips/job={res.get('round_trips_per_job')} "
        f"aws/job={res.get('aws_calls_per_job')} by_op={res.get('api_calls_by_operation')} "
        f"jobs_done={res.get('jobs_done')} "
        f"cpu={res['cpu']['utilisation']}"
    )
    return res


def bare_drain(lab: Lab, rep: int, args: argparse.Namespace) -> dict[str, Any]:
    """Baseline on the same moto: N preloaded, 2 bare consumers (receive 10 + batch delete, no
    claim, no binary, no callback). What moto allows any consumer; ours and the peer's drains
    are read against it."""
    sid = f"r{rep}-bare-{uuid.uuid4().hex[:6]}"
    env = lab.fresh(sid)
    sqs = lab.clients.sqs
    for start in range(0, args.n, 10):
        entries = [{"Id": str(i), "MessageBody": lab.request(f"{sid}-{start + i}")}
                   for i in range(min(10, args.n - start))]  # fmt: skip
        sqs.send_message_batch(QueueUrl=env.request_queue_url, Entries=entries)
    taken = itertools.count()
    seen = [0]
    deadline = time.monotonic() + args.timeout

    def consume() -> None:
        client = lab_clients(REGION, lab.endpoint).sqs
        while seen[0] < args.n and time.monotonic() < deadline:
            got = client.receive_message(
                QueueUrl=env.request_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if got:
                client.delete_message_batch(
                    QueueUrl=env.request_queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                             for i, m in enumerate(got)],
                )  # fmt: skip
                for _ in got:
                    seen[0] = next(taken) + 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=consume) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    span = time.monotonic() - t0
    ok = seen[0] >= args.n
    res = {"sid": sid, "n": args.n, "consumed": seen[0], "timed_out": not ok,
           "throughput": rnd(args.n / span, 2) if ok else None}  # fmt: skip
    log(f"[{sid}] bare drain n={args.n} thr={res['throughput']} jobs/s")
    return res


def merge_counts(counts: Any) -> dict[str, int]:
    """Sum per-operation call counts over workers."""
    total: dict[str, int] = {}
    for one in counts:
        for name, value in one.items():
            total[name] = total.get(name, 0) + int(value)
    return dict(sorted(total.items()))


def peer(rep: int, args: argparse.Namespace, run_dir: Path, lab: Lab) -> dict[str, Any]:
    """One rep of the Celery peer through its own run.sh (its own moto), parsed. In latency
    mode its ``--broker-url`` (the last one wins) is the proxy's route to the bench's moto."""
    tag = f"r{rep}{netlab.SUFFIX if lab.peer_broker else ''}"
    workdir = run_dir / f"peer-{tag}"
    argv = [str(PEER_RUN), "-n", str(args.n), "--reps", "1", "--pools", "prefork"]
    argv += ["--mode", "tuned=0.01,10"]
    if lab.peer_broker:
        argv += ["--broker-url", lab.peer_broker]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLEETLAB_"))}
    env["BENCH_WORKDIR"] = str(workdir)
    out, err = run_dir / f"peer-{tag}.stdout", run_dir / f"peer-{tag}.stderr"
    t0 = time.monotonic()
    proc = PROCS.start(f"peer-{tag}", argv, out, env, err=err, group=True)
    res: dict[str, Any] = {"workdir": str(workdir), "argv": argv}
    try:
        proc.wait(timeout=args.peer_timeout)
    except subprocess.TimeoutExpired:
        res["timed_out"] = True
    finally:
        res["rc"] = PROCS.stop(proc, grace=20.0)
    res["wall_s"] = rnd(time.monotonic() - t0)
    lines = out.read_text().strip().splitlines()
    try:
        summary = json.loads(lines[-1])
        entry = summary["results"][PEER_KEY]
    except (IndexError, ValueError, KeyError):
        log(f"[peer {tag}] no summary (rc={res['rc']}); see {err}")
        return res

    def med(*path: str) -> float | None:
        node: Any = entry
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node.get("median") if isinstance(node, dict) else None

    res["summary"] = summary
    res["figures"] = {
        "drain_jobs_per_s": med("exec", "drain_throughput"),
        "live_jobs_per_s": med("exec", "throughput"),
        "live_p50_ms": med("exec", "p50_ms"),
        "live_p95_ms": med("exec", "p95_ms"),
        "idle_p50_ms": med("idle_p50_ms"),
    }
    log(f"[peer {tag}] {res['figures']} ({res['wall_s']} s)")
    return res


# --- figures ------------------------------------------------------------------------------------


def our_figures(rep: dict[str, Any]) -> dict[str, float | None]:
    lv, dr, bare = rep.get("live", {}), rep.get("drain", {}), rep.get("bare", {})
    rss = [x for x in lv.get("rss_mb", []) if x is not None]
    return {
        "drain_jobs_per_s": dr.get("throughput"),
        "drain_ceiling_jobs_per_s": bare.get("throughput"),
        "live_jobs_per_s": lv.get("throughput"),
        "live_p50_ms": lv.get("p50_ms"),
        "live_p95_ms": lv.get("p95_ms"),
        "idle_p50_ms": lv.get("idle", {}).get("p50_ms"),
        "round_trips_per_job": dr.get("round_trips_per_job"),
        "worker_rss_mb": max(rss) if rss else None,
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def figures(
    ours: list[dict[str, Any]], peers: list[dict[str, Any]], suffix: str = ""
) -> list[dict[str, Any]]:
    """One row per figure (named with ``suffix``: the latency mode), then the AWS calls per
    job by operation and, in latency mode, the latency injected on an idle job's path."""
    rows = []
    mine = [our_figures(r) for r in ours]
    for name, unit in FIGURES:
        runs = [m[name] for m in mine]
        value = median(runs)
        theirs = median([p.get("figures", {}).get(name) for p in peers])
        row: dict[str, Any] = {
            "figure": name + suffix,
            "value": rnd(value),
            "unit": unit,
            "median_of": sum(1 for v in runs if v is not None),
            "runs": runs,
            "peer": rnd(theirs),
            "ratio_to_peer": rnd(value / theirs) if value is not None and theirs else None,
        }
        if name == "drain_jobs_per_s":
            ceilings = [m["drain_ceiling_jobs_per_s"] for m in mine]
            row["ratio_to_ceiling_runs"] = [
                rnd(v / c) if v is not None and c else None
                for v, c in zip(runs, ceilings, strict=True)
            ]
        if name == "round_trips_per_job":
            row["aws_calls_per_job"] = median(
                [r.get("drain", {}).get("aws_calls_per_job") for r in ours]
            )
            row["aws_calls_per_job_runs"] = [
                r.get("drain", {}).get("aws_calls_per_job") for r in ours
            ]
        rows.append(row)
    per_job = [r.get("drain", {}).get("calls_per_job") or {} for r in ours]
    rows.append({
        "figure": "calls_per_job" + suffix,
        "value": {op: median([one.get(op) for one in per_job])
                  for op in sorted({op for one in per_job for op in one})},
        "unit": "AWS calls per job, by operation (the workers' own count, drain)",
        "median_of": sum(1 for one in per_job if one),
        "proxy_counted": [r.get("drain", {}).get("proxy_calls_per_job") for r in ours],
    })  # fmt: skip
    if suffix:
        injected = [r.get("live", {}).get("idle", {}).get("injected_p50_ms") for r in ours]
        value, idle_p50 = median(injected), median([m["idle_p50_ms"] for m in mine])
        rows.append({
            "figure": "idle_injected_ms" + suffix,
            "value": rnd(value),
            "unit": "ms",
            "median_of": sum(1 for v in injected if v is not None),
            "runs": injected,
            "idle_p50_to_injected": rnd(idle_p50 / value) if value and idle_p50 else None,
        })  # fmt: skip
    return rows


def versions() -> dict[str, Any]:
    out: dict[str, Any] = {
        p: metadata.version(p) for p in ("boto3", "botocore", "moto", "fleetlab")
    }
    out |= {
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
    }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=500, help="jobs per batch (default 500)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-peer", action="store_true", help="do not run the Celery peer")
    ap.add_argument("--latency", choices=sorted(MODES), default="both",
                    help="none: plain moto; aws: the proxy with AWS's latencies; both")  # fmt: skip
    ap.add_argument("--timeout", type=float, default=120.0, help="per batch, seconds")
    ap.add_argument("--peer-timeout", type=float, default=900.0, help="per peer run, seconds")
    ap.add_argument("--idle-k", type=int, default=20)
    ap.add_argument("--idle-gap", type=float, default=0.05)
    ap.add_argument("--settle", type=float, default=0.5, help="pause between phases, seconds")
    ap.add_argument("--work-dir", type=Path, default=Path("/tmp/fleetlab-bench"))
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, exit_on_signal)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.work_dir / f"pipeline-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS / f"pipeline-{stamp}.json"
    started, t0 = time.time(), time.monotonic()
    raw: dict[str, Any] = {
        "meta": {"argv": sys.argv, "n": args.n, "reps": args.reps,
                 "versions": versions(),
                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "files": str(run_dir)},
    }  # fmt: skip
    suffixes = MODES[args.latency]
    for suffix in suffixes:
        raw["ours" + suffix], raw["peer" + suffix] = [], []
    log(f"pipeline bench: n={args.n} reps={args.reps} peer={'no' if args.skip_peer else 'yes'} "
        f"latency={args.latency}")  # fmt: skip
    lab = start_lab(run_dir)
    labs = {"": lab}
    try:
        if netlab.SUFFIX in suffixes:
            labs[netlab.SUFFIX] = netlab.with_latency(lab, run_dir)
        for rep in range(1, args.reps + 1):
            for suffix in suffixes:
                mine: dict[str, Any] = {"rep": rep}
                raw["ours" + suffix].append(mine)
                for phase, measure in (("live", live), ("drain", drain), ("bare", bare_drain)):
                    try:
                        mine[phase] = measure(labs[suffix], rep, args)
                    except Exception as exc:  # one failed measurement must not lose the others
                        log(f"[r{rep}{suffix}] {phase} failed: {exc!r}")
                        mine[phase] = {"error": repr(exc)}
                if not args.skip_peer:
                    raw["peer" + suffix].append(peer(rep, args, run_dir, labs[suffix]))
            log(f"rep {rep} done after {time.monotonic() - t0:.0f} s")
    finally:
        raw["meta"]["moto_cpu_s"] = cpu_s(lab.moto.pid)
        for one in labs.values():
            netlab.stop(one)
        PROCS.stop(lab.receiver)
        PROCS.stop(lab.moto)
        raw["meta"]["total_s"] = rnd(time.monotonic() - t0)
        raw["meta"]["ended_at"] = time.time()
        raw["meta"]["started_at"] = started
        rows = [row for x in suffixes for row in figures(raw["ours" + x], raw["peer" + x], x)]
        raw["figures"] = rows
        out_path.write_text(json.dumps(raw, indent=1) + "\n")
        log(f"raw data: {out_path}; total {raw['meta']['total_s']} s")
    for row in rows:
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
