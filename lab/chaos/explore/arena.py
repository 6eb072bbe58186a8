"""The lab an exploration runs on, and the means the nemesis acts through: bodies, EC2, the
request queue, the callback receiver's /control, the lab's proxy, deploys and the emulator."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from lab.client.receiver import control
from lab.ec2 import faults, instances, notices, spot
from lab.net.proxy import Fault, Proxy
from lab.runtime import scaler as lab_scaler
from lab.runtime.resources import LabEnv
from lab.runtime.settings import LabSettings
from worker.aws import Clients
from worker.state.status import read_status
from worker.state.store import S3JsonStore


@dataclass
class Arena:
    """A running lab (clean, or the one `lab up` started) seen from the explorer."""

    settings: LabSettings
    env: LabEnv
    clients: Clients
    proxy: Proxy | None
    bounds: tuple[int, int] = (0, 1_000_000)  # the scaler's min and max
    started: float = field(default_factory=time.monotonic)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)  # every request body sent, for copies
    restarted: threading.Event = field(default_factory=threading.Event)
    busy: set[str] = field(default_factory=set)  # long faults under way (one of a kind)
    expired: set[str] = field(default_factory=set)  # messages the nemesis took and let go
    # requests whose last receive the nemesis took: SQS dead-letters them, no worker saw them
    spent: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def store(self) -> S3JsonStore:
        return S3JsonStore(self.clients.s3, self.env.bucket)

    @property
    def receiver_url(self) -> str:
        """The receiver's own URL (the explorer reads its journal there)."""
        return self.env.receiver_url or self.settings.receiver_url

    @property
    def callback_url(self) -> str:
        """Where requests ask for their callbacks: through the proxy when there is one."""
        base = self.proxy.url("receiver") if self.proxy else self.receiver_url
        return f"{base}/callback"

    def now(self) -> float:
        """Seconds since the run began."""
        return time.monotonic() - self.started

    def mark(self, kind: str, target: str, what: str, **extra: Any) -> None:
        """Put an act on the timeline."""
        entry = {"at": round(self.now(), 2), "kind": kind, "target": target, "what": what}
        with self.lock:
            self.timeline.append(entry | extra)

    # ------------------------------------------------------------------------------ targets

    def live(self) -> list[str]:
        """Instances EC2 says are running, sorted (so a seeded choice is repeatable)."""
        return sorted(i.id for i in instances.fleet(self.clients.ec2, self.env.env, ("running",)))

    def pick(self, rng: random.Random) -> str | None:
        """A running instance chosen by ``rng``, or None."""
        live = self.live()
        return rng.choice(live) if live else None

    def pick_spot(self, rng: random.Random) -> tuple[str, bool] | None:
        """A running spot instance not yet under notice (AWS gives one), chosen by ``rng`` -- a
        busy one when there is one: a notice puts its job at stake -- and whether it was busy;
        None when the fleet has none."""
        running = instances.fleet(self.clients.ec2, self.env.env, ("running",))
        home = self.settings.home / "instances"
        spot_ids = sorted(
            i.id
            for i in running
            if i.market == "spot" and notices.load(home / i.id).interruption_at is None
        )
        busy = [i for i in spot_ids if self._state(i) == "busy"]
        pool = busy or spot_ids
        return (rng.choice(pool), bool(busy)) if pool else None

    def _state(self, instance_id: str) -> str | None:
        status = read_status(self.store, instance_id)
        return status.state if status else None

    def leader(self) -> str | None:
        """The instance holding the scaler's lease, if any."""
        state = lab_scaler.read_state(self.store)
        return str(state["leader"]) if state and state.get("leader") else None

    # --------------------------------------------------------------------------------- acts

    def body(self, action: str, instance_id: str) -> None:
        """crash, freeze or thaw an instance's body."""
        faults.act(self.settings.home, instance_id, action)

    def terminate(self, instance_id: str) -> None:
        """Terminate an instance through EC2 (its body gets SIGTERM, then SIGKILL)."""
        instances.terminate(self.clients.ec2, [instance_id])

    def interrupt(self, instance_id: str, notice_s: float) -> None:
        """Post a spot interruption notice: EC2 (the hypervisor) reclaims the instance when it
        runs out, ``notice_s`` from now."""
        found = {i.id: i for i in instances.fleet(self.clients.ec2, self.env.env)}
        spot.interrupt(self.settings.home, found.get(instance_id), instance_id, notice_s,
                       time.time())  # fmt: skip

    def receiver(self, **command: Any) -> None:
        """A command to the callback receiver's /control (``fail_next``, ``delay_s``)."""
        control(self.receiver_url, **command)

    def route(self, name: str, fault: Fault) -> None:
        """Set a proxy route's fault."""
        if self.proxy is None:
            raise RuntimeError("no proxy in this lab")
        self.proxy.set(name, fault)
