#!/usr/bin/env python3
"""Claim modes benchmark: the same noop drain with noop in lease mode and in result mode.

Run: ``.venv/bin/python bench/claim_modes.py [--n 300] [--reps 3]``

One moto_server and callback receiver (``benchlab``), fresh queues and bucket per measurement.
Per rep, interleaved (the first mode alternates): N noop requests preloaded, 2 workers started
with a services file whose noop has the mode measured, throughput = N / (last callback - both
workers ready). Three variants: ``lease`` and ``result`` with a client requestId on every request
(result mode then looks each up before its run: one GET), and ``result_no_id`` without one
(the first receive skips the GET). After each drain the workers' final status documents give
the S3 calls per job by operation. One JSON line per figure on stdout (medians of the reps,
ratios to lease from the same run); progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchlab import log, rnd, start_lab, start_workers, stop_workers, wait_ready

from worker.handle.service_file import BUILT_IN_HOME, FILE

MODES = ("lease", "result", "result_no_id")
_REQUEST_ID = re.compile(r' requestId="[^"]*"')


def services_file(folder: Path, mode: str) -> Path:
    """The built-in services, noop's claim set to ``mode``; commands resolve as the built-ins'."""
    text = (BUILT_IN_HOME / FILE).read_text()
    head = text.index("[services.noop]")
    end = text.index("\n[", head + 1)
    table = re.sub(r'claim = "\w+"', f'claim = "{mode}"', text[head:end])
    path = folder / f"services-{mode}.toml"
    path.write_text(text[:head] + table + text[end:])
    return path


def drain(
    lab: Any, mode: str, rep: int, n: int, timeout: float, files: dict[str, Path]
) -> dict[str, Any]:
    sid = f"r{rep}-{mode.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
    env = lab.fresh(sid)
    ids: list[str] = []
    for start in range(0, n, 10):
        bodies = [lab.request(f"{sid}-{start + i}") for i in range(min(10, n - start))]
        if mode == "result_no_id":
            bodies = [_REQUEST_ID.sub("", b) for b in bodies]
        reply = lab.clients.sqs.send_message_batch(
            QueueUrl=env.request_queue_url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)],
        )
        ids += [m["MessageId"] for m in reply["Successful"]]
    noop_mode = "lease" if mode == "lease" else "result"
    workers = start_workers(lab, env, sid, {"FLEETLAB_SERVICES_FILE": str(files[noop_mode])})
    try:
        ready = wait_ready(workers)
        ok = lab.journal.wait(set(ids), time.monotonic() + timeout)
        done = [lab.journal.first_at[m] for m in ids if m in lab.journal.first_at]
    finally:
        stopped = stop_workers(lab, env, workers)
    by_op: dict[str, int] = {}
    for status in stopped["status"].values():
        for name, count in (status or {}).get("api_calls_by_operation", {}).items():
            by_op[name] = by_op.get(name, 0) + int(count)
    span = max(done) - ready if done else None
    result = {
        "mode": mode,
        "sid": sid,
        "completed": len(done),
        "jobs_per_s": rnd(n / span, 2) if ok and span else None,
        "s3_puts_per_job": rnd(by_op.get("PutObject", 0) / n),
        "s3_gets_per_job": rnd(by_op.get("GetObject", 0) / n),
        "aws_calls_per_job": rnd(sum(by_op.values()) / n),
        "calls_by_operation": dict(sorted(by_op.items())),
    }
    log(f"[{sid}] {json.dumps(result)}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=300, help="jobs per drain (default 300)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=180.0, help="per drain, seconds")
    args = ap.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="fleetlab-claim-modes-"))
    lab = start_lab(run_dir)
    files = {m: services_file(run_dir, m) for m in ("lease", "result")}
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    for rep in range(args.reps):
        order = MODES if rep % 2 == 0 else tuple(reversed(MODES))
        for mode in order:
            runs[mode].append(drain(lab, mode, rep, args.n, args.timeout, files))
    for figure in ("jobs_per_s", "s3_puts_per_job", "s3_gets_per_job", "aws_calls_per_job"):
        medians = {m: _median([r[figure] for r in runs[m]]) for m in MODES}
        line: dict[str, Any] = {"figure": f"claim_modes_drain_{figure}", **medians}
        base = medians["lease"]
        for mode in MODES[1:]:
            value = medians[mode]
            line[f"{mode}_ratio_to_lease"] = rnd(value / base) if value and base else None
        line |= {
            "n": args.n,
            "reps": args.reps,
            "runs": {m: [r[figure] for r in runs[m]] for m in MODES},
        }
        print(json.dumps(line), flush=True)
    return 0


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return rnd(statistics.median(known), 3) if len(known) == len(values) and known else None


if __name__ == "__main__":
    sys.exit(main())
