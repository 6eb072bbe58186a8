"""Twin benchmark: one short, compressed demand trace through the real lab and through the
planner's simulator with the same settings; p95 latency, instance-seconds and launches of each.
It runs at two loads (``--rates``): a busiest 3 requests a second, which the queue band meets
with one launch, and 6, which takes three, so the launches compared are more than one.

The lab side is the chaos harness's clean lab (moto, the hypervisor's process bodies, every
instance's own worker and scaler, the callback receiver): requests are sent at the trace's
Poisson arrival times, answers are read off the response queue, the fleet is sampled from EC2 as
it goes. The simulator side replays the same arrival times against ``worker.scaler.capacity``
with the lab's scaler settings, its tick and its boot time. One JSON line per rate and side and
one with the ratios (simulator / lab); ``--runs`` repeats the lab side and reports medians.

Jobs are ``wait`` requests (the worker runs ``/bin/sleep``): the fake binary burns CPU, and every
lab instance shares the one host's cores, so with it a job's time grows with how many run at
once (and with whatever else the host runs), which no fleet of real instances does. The
simulator is run twice: with the nominal job time, and with the mean job time the lab's workers
measured (their status documents), which includes the worker's own overhead per job.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from dataclasses import replace
from typing import Any

from lab.chaos.harness import ChaosLab, Setup
from lab.client.submit import JobSpec, build_xml, send
from lab.planner.arrivals import draw
from lab.planner.policy import Policy
from lab.planner.report import instance_hours, latencies, percentile
from lab.planner.simulator import SimSettings, simulate
from lab.planner.traces import Trace
from lab.runtime import scaler as lab_scaler
from lab.runtime.settings import load_settings
from worker.scaler import ec2
from worker.scaler.capacity import ScalerConfig, decide

# A compressed day: quiet, a morning ramp, a busy middle, an evening fall (10-second bins).
SHAPE = (0.3, 0.3, 0.6, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0, 1.5, 1.0, 0.6, 0.3, 0.3, 0.3)
BIN_S = 10.0
JOB_S = 0.5  # wall seconds a job takes on an otherwise idle host
MAX_INSTANCES = 4
ALL_STATES = ("pending", "running", "shutting-down", "terminated", "stopping", "stopped")


def twin_config(job_s: float) -> ScalerConfig:
    """The lab's scaler settings (its time scale), for jobs of ``job_s`` and at most 4."""
    return replace(
        lab_scaler.LAB_SCALING,
        min_instances=1,
        max_instances=MAX_INSTANCES,
        slo_p95_s=6.0,
        job_s=job_s,
        scale_in_after_s=10.0,
    )


def the_trace(rate_per_s: float) -> Trace:
    """The shape at ``rate_per_s`` arrivals per second in its busiest bins."""
    return Trace("twin", tuple(BIN_S * rate_per_s * x / max(SHAPE) for x in SHAPE), BIN_S)


def measured_job_seconds(lab: ChaosLab) -> list[float]:
    """Job times the lab's workers published (each status document keeps its last 20)."""
    found: list[float] = []
    for instance in ec2.fleet(lab.clients.ec2, lab.env.env, ALL_STATES):
        status = lab.status(instance.id)
        if status is not None:
            found += [s for s in status.job_seconds if s > 0]
    return found


def watch_boots(lab: ChaosLab, boots: dict[str, float]) -> None:
    """Record, for each instance not yet seen up, launch-to-worker seconds once its status
    document says anything but booting (EC2's launch time and this host's clock: one machine)."""
    for instance in ec2.fleet(lab.clients.ec2, lab.env.env):
        if instance.id not in boots:
            status = lab.status(instance.id)
            if status is not None and status.state != "booting":
                boots[instance.id] = time.time() - instance.launched_at


def submit_wait(lab: ChaosLab, request_id: str, seconds: float) -> None:
    """Send a ``wait`` request (the worker sleeps ``seconds``), answered on the response queue."""
    spec = JobSpec("wait", params=[("seconds", f"{seconds:g}")], request_id=request_id)
    lab.sent.setdefault(request_id, time.time())
    send(lab.clients.sqs, lab.env.request_queue_url, build_xml(spec))


def run_lab(trace: Trace, seed: int, config: ScalerConfig) -> dict[str, Any]:
    """Replay the trace's arrivals through a clean lab; its figures."""
    jobs = draw(trace, seed, JOB_S)
    lab = ChaosLab(load_settings(), "twin", seed, Setup(instances=1, bounds=(1, MAX_INSTANCES)))
    try:
        lab.up()
        lab_scaler.write_config(lab.store, {k: getattr(config, k) for k in TWIN_KEYS})
        boots: dict[str, float] = {}
        watch_boots(lab, boots)  # the warm instance: already up, not a boot of the trace's
        warm = set(boots)
        began = time.time()
        for k, at in enumerate(jobs.arrivals):
            while time.time() < began + at:
                lab.poll()
                watch_boots(lab, boots)
                time.sleep(min(0.2, max(0.0, began + at - time.time())))
            submit_wait(lab, f"twin-{k}", JOB_S)

        def answered() -> bool:
            watch_boots(lab, boots)
            return lab.answered()

        lab.wait(answered, 300, "every request answered")
        ended = time.time()
        first: dict[str, float] = {}
        for r in lab.evidence.responses:
            first[r.request_id] = min(first.get(r.request_id, r.at), r.at)
        waits = sorted(first[r] - sent for r, sent in lab.sent.items() if r in first)
        samples = [(t, n) for t, n in lab.fleet_samples if began <= t <= ended]
        used = sum((b[0] - a[0]) * a[1] for a, b in itertools.pairwise(samples))
        seen = ec2.fleet(lab.clients.ec2, lab.env.env, ALL_STATES)
        timed = measured_job_seconds(lab)
        fresh = [s for i, s in boots.items() if i not in warm]
    finally:
        lab.down()
    return {
        "p95_s": round(percentile(waits, 0.95), 2),
        "instance_seconds": round(used, 1),
        "launches": len(seen) - 1,  # the one lab up started is the warm start
        "jobs": len(waits),
        "job_seconds_measured": round(statistics.mean(timed), 3) if timed else None,
        "boot_seconds_measured": round(statistics.median(fresh), 1) if fresh else None,
        "seconds": round(ended - began, 1),
    }


TWIN_KEYS = ("min_instances", "max_instances", "slo_p95_s", "job_s", "scale_in_after_s")


def run_sim(
    trace: Trace, seed: int, config: ScalerConfig, job_s: float, boot_s: float
) -> dict[str, Any]:
    """Replay the same arrivals in the simulator, jobs of ``job_s`` and instances that take
    ``boot_s`` to come up (the policy still expects ``config.boot_s``); its figures."""
    jobs = draw(trace, seed, job_s)
    tick = load_settings().scaler_interval_s
    policy = Policy("fleetlab", decide, replace(config, job_s=job_s), tick, 1)
    run = simulate(policy, jobs, SimSettings(trace_s=trace.seconds, boot_s=boot_s))
    return {
        "p95_s": round(percentile(sorted(latencies(jobs, run)), 0.95), 2),
        "instance_seconds": round(instance_hours(run.lives) * 3600, 1),
        "launches": run.launches,
        "jobs": len(jobs),
        "job_seconds": job_s,
        "boot_seconds": boot_s,
    }


def compare(rate: float, seed: int, runs: int) -> None:
    """The lab ``runs`` times and the simulator twice at one rate; a JSON line per side and per
    ratio (simulator / lab)."""
    trace = the_trace(rate)
    config = twin_config(JOB_S)
    labs = [run_lab(trace, seed, config) for _ in range(runs)]
    lab = {k: statistics.median(x[k] for x in labs) for k in labs[0] if labs[0][k] is not None}
    job_s = lab.get("job_seconds_measured") or JOB_S
    boot_s = lab.get("boot_seconds_measured") or config.boot_s
    sides = {
        "lab": lab,
        "sim-nominal": run_sim(trace, seed, config, JOB_S, config.boot_s),
        "sim-measured": run_sim(trace, seed, config, job_s, boot_s),
    }
    head = {"bench": "twin", "rate": rate}
    for side, figures in sides.items():
        print(json.dumps(head | {"side": side, "runs": runs} | figures), flush=True)
    for side in ("sim-nominal", "sim-measured"):
        ratios = {
            key: round(sides[side][key] / lab[key], 3) if lab[key] else None
            for key in ("p95_s", "instance_seconds", "launches")
        }
        print(json.dumps(head | {"ratio": f"{side} / lab"} | ratios), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rates",
        default="3,6",
        help="busiest arrivals per second, comma-separated: 3 needs one launch, 6 three",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="lab replays (medians reported)")
    args = parser.parse_args()
    for rate in args.rates.split(","):
        compare(float(rate), args.seed, args.runs)


if __name__ == "__main__":
    main()
