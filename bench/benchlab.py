"""The benchmark's lab: the processes it starts and stops by pid, the callback journal it reads,
the workers it runs, and what it measures of them (CPU, memory); shared by ``pipeline.py``."""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.runtime.resources import LabEnv, ensure, lab_clients
from lab.runtime.settings import LabSettings
from lab.runtime.stack import base_env
from worker.aws import Clients
from worker.state.layout import status_key

if TYPE_CHECKING:
    from netlab import Trace

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
REGION = "us-east-1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100), as the peer computes it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100.0 * len(ordered))) - 1]


def rnd(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- processes: everything started is stopped by pid, even on error ----------------------------


class Procs:
    """The processes this run started; ``stop_all`` ends what is left (atexit, finally)."""

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen[bytes], bool]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        out: Path,
        env: dict[str, str] | None = None,
        err: Path | None = None,
        group: bool = False,
    ) -> subprocess.Popen[bytes]:
        out.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            stdout = files.enter_context(out.open("wb"))
            stderr = files.enter_context(err.open("wb")) if err else subprocess.STDOUT
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=group
            )
        self.running.append((name, proc, group))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
        """SIGTERM (the process group if it has its own), wait, then SIGKILL."""
        group = next((g for _n, p, g in self.running if p is proc), False)
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM, group)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL, group)
                proc.wait(timeout=10)
        elif group:  # the leader is gone; make sure nothing of its group lingers
            self._signal(proc, signal.SIGKILL, group)
        self.running = [entry for entry in self.running if entry[1] is not proc]
        return proc.returncode

    @staticmethod
    def _signal(proc: subprocess.Popen[bytes], sig: int, group: bool) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(proc.pid, sig)  # its own session: the group id is its pid
            else:
                proc.send_signal(sig)

    def stop_all(self) -> None:
        for name, proc, _group in reversed(list(self.running)):
            if proc.poll() is None:
                log(f"cleanup: stopping {name} pid {proc.pid}")
            self.stop(proc, grace=5.0)


PROCS = Procs()
atexit.register(PROCS.stop_all)


def exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally, then atexit


def cpu_s(pid: int, children: bool = False) -> float | None:
    """CPU seconds (user+system) of ``pid``; with ``children`` also its waited-for children."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of ``pid`` in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- the receiver's journal ---------------------------------------------------------------------


class Journal:
    """Incrementally reads ``callbacks.jsonl``: first arrival time and count per message id."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""
        self.first_at: dict[str, float] = {}
        self.posts: dict[str, int] = {}

    def poll(self) -> list[str]:
        """Read what was appended; return the message ids seen for the first time."""
        try:
            if self.path.stat().st_size <= self.offset:
                return []
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        new = []
        for line in lines:
            entry = json.loads(line)
            mid = entry["message_id"]
            self.posts[mid] = self.posts.get(mid, 0) + 1
            if mid not in self.first_at:
                self.first_at[mid] = entry["at"]
                new.append(mid)
        return new

    def wait(self, ids: set[str], deadline: float, sleep: float = 0.005) -> bool:
        """Wait until every id in ``ids`` has a callback or ``deadline`` (monotonic) passes."""
        missing = {mid for mid in ids if mid not in self.first_at}
        while missing:
            missing.difference_update(self.poll())
            if not missing:
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(sleep)
        return True


# --- the lab: moto, receiver, fresh resources, workers ------------------------------------------


@dataclass
class Lab:
    run_dir: Path
    moto: subprocess.Popen[bytes]
    moto_port: int
    receiver: subprocess.Popen[bytes]
    receiver_port: int
    journal: Journal
    clients: Clients  # the producer's: through the proxy's "clients" route in latency mode
    # Latency mode (netlab.with_latency): where workers and the peer reach moto, the proxy.
    worker_endpoint: str | None = None
    proxy: subprocess.Popen[bytes] | None = None
    trace: Trace | None = None
    peer_broker: str | None = None

    @property
    def endpoint(self) -> str:
        """Where the workers (and the bare consumers) reach moto."""
        return self.worker_endpoint or f"http://127.0.0.1:{self.moto_port}"

    def request(self, request_id: str) -> str:
        return (
            f'<request service="noop" requestId="{request_id}">'
            f'<output type="callback" url="http://127.0.0.1:{self.receiver_port}/callback"/>'
            "</request>"
        )

    def fresh(self, sid: str) -> LabEnv:
        """New queues, bucket and log group for one measurement: no state carries over."""
        settings = LabSettings(
            home=self.run_dir / sid,
            region=REGION,
            emulator_port=self.moto_port,
            receiver_port=self.receiver_port,
            request_queue=f"bench-{sid}-requests",
            response_queue=f"bench-{sid}-responses",
            dead_letter_queue=f"bench-{sid}-dead-letters",
            bucket=f"bench-{sid}",
            log_group=f"/fleetlab-bench/{sid}",
        )
        return ensure(settings, self.clients)


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start (rc={proc.poll()})")


def start_lab(run_dir: Path) -> Lab:
    env = base_env()
    moto_port = free_port()
    moto = PROCS.start(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
        run_dir / "moto.log",
        env,
    )
    wait_http(f"http://127.0.0.1:{moto_port}/moto-api/", moto, "moto_server")
    receiver_port = free_port()
    receiver_dir = run_dir / "receiver"
    program = ["-m", "lab.client.receiver"]
    receiver = PROCS.start(
        "receiver",
        [
            sys.executable,
            *program,
            "--port",
            str(receiver_port),
            "--dir",
            str(receiver_dir),
        ],
        run_dir / "receiver.log",
        env,
    )
    wait_http(f"http://127.0.0.1:{receiver_port}/callbacks", receiver, "receiver")
    log(
        f"moto pid {moto.pid} :{moto_port}, receiver pid {receiver.pid} :{receiver_port}, "
        f"files in {run_dir}"
    )
    return Lab(
        run_dir=run_dir,
        moto=moto,
        moto_port=moto_port,
        receiver=receiver,
        receiver_port=receiver_port,
        journal=Journal(receiver_dir / "callbacks.jsonl"),
        clients=lab_clients(REGION, f"http://127.0.0.1:{moto_port}"),
    )


@dataclass
class Worker:
    worker_id: str
    proc: subprocess.Popen[bytes]
    work_dir: Path
    spawned_at: float
    ready_at: float | None = None
    status: dict[str, Any] | None = field(default=None)


def start_workers(
    lab: Lab, env: LabEnv, sid: str, extra: dict[str, str] | None = None
) -> list[Worker]:
    """Start the workers; ``extra``: variables added to their environment."""
    workers = []
    for index in range(1, WORKERS + 1):
        worker_id = f"{sid}-w{index}"
        work_dir = lab.run_dir / sid / worker_id
        variables = (
            base_env()
            | env.worker_env()
            | {
                "FLEETLAB_WORKER_ID": worker_id,
                "FLEETLAB_WORK_DIR": str(work_dir),
                "FLEETLAB_STATUS_INTERVAL": "1",
                "FLEETLAB_ENDPOINT_URL": lab.endpoint,
            }
            | (extra or {})
        )
        spawned = time.time()
        proc = PROCS.start(
            worker_id, [sys.executable, "-m", "worker"], work_dir / "worker.log", variables
        )
        workers.append(Worker(worker_id, proc, work_dir, spawned))
    return workers


def wait_ready(workers: list[Worker], timeout: float = 60.0) -> float:
    """Ready = the moment both workers' activity logs show their "started" line.

    The line is written after the first status document and just before the first receive,
    like Celery's worker_ready. Polled every 2 ms; the time is when this process sees it.
    """
    deadline = time.monotonic() + timeout
    while True:
        for w in workers:
            if w.ready_at is not None:
                continue
            with contextlib.suppress(FileNotFoundError):
                if '"started ' in (w.work_dir / "activity.log").read_text():
                    w.ready_at = time.time()
                    continue
            if w.proc.poll() is not None:
                raise RuntimeError(f"worker {w.worker_id} exited rc={w.proc.returncode}")
        if all(w.ready_at is not None for w in workers):
            return max(w.ready_at for w in workers if w.ready_at is not None)
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not become ready")
        time.sleep(0.002)


def stop_workers(lab: Lab, env: LabEnv, workers: list[Worker]) -> dict[str, Any]:
    """SIGTERM both (they drain and write a final status), then read the status documents."""
    t0 = time.monotonic()
    for w in workers:
        if w.proc.poll() is None:
            w.proc.send_signal(signal.SIGTERM)
    for w in workers:  # one SIGTERM each; PROCS.stop only acts on one still running after 30 s
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=max(0.1, t0 + 30 - time.monotonic()))
    rcs = [PROCS.stop(w.proc, grace=5.0) for w in workers]
    stop_s = time.monotonic() - t0
    for w in workers:
        try:
            reply = lab.clients.s3.get_object(Bucket=env.bucket, Key=status_key(w.worker_id))
            w.status = json.loads(reply["Body"].read())
        except Exception as exc:
            log(f"  no status document for {w.worker_id}: {exc}")
    return {
        "stop_s": rnd(stop_s),
        "worker_rc": rcs,
        "status": {w.worker_id: w.status for w in workers},
    }


class CpuMeter:
    """CPU seconds of moto, the receiver, the workers and this process over one window."""

    def __init__(self, lab: Lab, workers: list[Worker]) -> None:
        self.pids = {"moto": (lab.moto.pid, False), "receiver": (lab.receiver.pid, False)}
        if lab.proxy is not None:
            self.pids["proxy"] = (lab.proxy.pid, False)
        self.pids |= {w.worker_id: (w.proc.pid, True) for w in workers}
        self.t0 = time.monotonic()
        self.own0 = time.process_time()
        self.cpu0 = {name: cpu_s(pid, kids) for name, (pid, kids) in self.pids.items()}

    def read(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        used: dict[str, Any] = {
            "wall_s": rnd(wall),
            "producer": rnd(time.process_time() - self.own0),
        }
        for name, (pid, kids) in self.pids.items():
            before, after = self.cpu0[name], cpu_s(pid, kids)
            used[name] = rnd(after - before) if before is not None and after is not None else None
        used["utilisation"] = {
            k: rnd(v / wall, 2) for k, v in used.items() if k != "wall_s" and v is not None
        }
        return used


def gaps(times: list[float]) -> dict[str, Any]:
    """How even the completions were: largest gap, and gaps over 100 ms (stalls)."""
    ordered = sorted(times)
    diffs = [b - a for a, b in itertools.pairwise(ordered)]
    return {
        "max_gap_ms": rnd(max(diffs) * 1000, 1) if diffs else None,
        "gaps_over_100ms": sum(1 for d in diffs if d > 0.1),
    }
