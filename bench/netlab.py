"""The benchmark's AWS-latency network: the lab's proxy (``python -m lab.net.serve``, a process
of its own, so that its CPU is not the producer's) in front of the bench's moto, with a route
each for the workers, the producer and the Celery peer; and what its trace says about a
measurement (calls per job by operation, the latency injected on a job's path)."""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchlab import PROCS, REGION, Lab, free_port, log

from lab.runtime import procs
from lab.runtime.resources import lab_clients
from lab.runtime.stack import base_env
from worker.state.layout import STATUS

ROUTES = ("workers", "clients", "peer")
SUFFIX = "_aws_latency"
SEED = 1
# Off an idle job's path although they may fall inside its window: the workers' periodic status
# documents and the activity log's shipping run beside the job loop.
_BESIDE_THE_JOB = ("logs.",)


class Trace:
    """Incrementally reads the proxy's JSON lines trace (one line per AWS call)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.calls: list[dict[str, Any]] = []

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        self.calls += [json.loads(line) for line in lines if line]

    def between(self, start: float, end: float, route: str | None = None) -> list[dict[str, Any]]:
        """Calls that reached the proxy in [start, end] (epoch s), of one route or all."""
        self.poll()
        return [
            c for c in self.calls
            if start <= c["at"] <= end and (route is None or c["route"] == route)
        ]  # fmt: skip

    def by_operation(self, start: float, end: float, route: str) -> dict[str, int]:
        """Calls per ``service.Operation`` of one route in a window."""
        counts: dict[str, int] = {}
        for call in self.between(start, end, route):
            counts[call["call"]] = counts.get(call["call"], 0) + 1
        return dict(sorted(counts.items()))

    def injected_ms(self, start: float, end: float) -> float:
        """The delay the proxy held calls for on one job's path: every call between its send
        and its callback, but what runs beside the job loop (status documents, log shipping)."""
        return sum(
            c["delay_ms"]
            for c in self.between(start, end)
            if not c["call"].startswith(_BESIDE_THE_JOB) and f"/{STATUS}" not in c["path"]
        )


def with_latency(lab: Lab, run_dir: Path, latency: str = "aws") -> Lab:
    """Start the AWS-latency proxy in front of ``lab``'s moto; the same lab seen through it.
    ``latency="none"``: the same proxy, forwarding at once (what it costs by itself)."""
    ports = {name: free_port() for name in ROUTES}
    routes = [f"{name}:{port}:127.0.0.1:{lab.moto_port}" for name, port in ports.items()]
    trace = run_dir / "proxy-trace.jsonl"
    argv = [sys.executable, "-m", "lab.net.serve", "--latency", latency, "--seed", str(SEED),
            "--counts", str(run_dir / "proxy-counts.json"), "--trace", str(trace)]  # fmt: skip
    for route in routes:
        argv += ["--route", route]
    proxy = PROCS.start("proxy", argv, run_dir / "proxy.log", base_env())
    deadline = time.monotonic() + 15
    while not procs.listening(ports["clients"]):
        if proxy.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the proxy did not start (rc={proxy.poll()})")
        time.sleep(0.05)
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    log(f"proxy ({latency} latency) pid {proxy.pid}: {url}")
    return dataclasses.replace(
        lab,
        worker_endpoint=url["workers"],
        clients=lab_clients(REGION, url["clients"]),
        proxy=proxy,
        trace=Trace(trace),
        peer_broker=f"sqs://test:test@127.0.0.1:{ports['peer']}",
    )


def stop(lab: Lab) -> None:
    if lab.proxy is not None:
        PROCS.stop(lab.proxy)
