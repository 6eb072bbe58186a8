"""The hypervisor: gives the emulator's EC2 instances bodies, and takes them away again.

It polls EC2 for the fleet's instances. A pending or running instance without a body gets one,
running that instance's own user-data; a terminated (or stopping) one has its body stopped —
SIGTERM, then SIGKILL after a grace period — and its disk cleared but for its logs. A body that
dies on its own stays dead (disk and all) while EC2 says "running", as a crashed process on a
live VM would: that is the fault the lab wants to show.
Restarted, the hypervisor re-adopts the bodies its records name (pid + start time). Run it with
``python -m lab.ec2.hypervisor``; ``lab up`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from botocore.exceptions import BotoCoreError, ClientError

from lab.ec2 import disks, instances
from lab.ec2.bodies import (
    Backend,
    Body,
    DockerBackend,
    ProcessBackend,
    backend_for,
    body_env,
    liveness,
    reap,
)
from lab.runtime.resources import LabEnv, clients_for

_log = logging.getLogger("hypervisor")


class Hypervisor:
    """One reconciliation loop over the fleet's instances and their bodies."""

    def __init__(
        self,
        env: LabEnv,
        home: Path,
        fleet_name: str,
        backend: Backend,
        grace_s: float = 30.0,
        venv_cache: Path | None = None,
    ) -> None:
        self.env = env
        self.venv_cache = str(venv_cache or "")
        self.folder = home / "instances"
        self.fleet_name = fleet_name
        self.grace_s = grace_s
        self.backend = backend
        self.ec2 = clients_for(env).ec2
        self.stopping: set[str] = set()
        self.done = threading.Event()

    def reconcile(self) -> None:
        """Bring bodies in line with what EC2 says, once."""
        reap()
        every = instances.LIVE_STATES + instances.GONE_STATES
        known = instances.fleet(self.ec2, self.fleet_name, every)
        for instance in known:
            folder = self.folder / instance.id
            body = Body.load(folder)
            if instance.state in instances.LIVE_STATES and body is None:
                self.give_body(instance.id, folder)
            elif instance.state in instances.GONE_STATES and body and not body.stopped:
                self.take_body(body, folder)
        self.stop_orphans({i.id for i in known})

    def stop_orphans(self, known: set[str]) -> None:
        """Stop bodies whose instance EC2 no longer knows at all: an emulator that restarted
        empty forgot them, and a body without an instance would work on unseen."""
        folders = sorted(self.folder.iterdir()) if self.folder.is_dir() else []
        for folder in folders:
            body = Body.load(folder)
            if body and not body.stopped and body.instance_id not in known:
                _log.info("%s is unknown to EC2: its body is an orphan", body.instance_id)
                self.take_body(body, folder)

    def give_body(self, instance_id: str, folder: Path) -> None:
        """Start a body for a new instance, running its own user-data."""
        folder.mkdir(parents=True, exist_ok=True)
        script = instances.user_data(self.ec2, instance_id)
        body = self.backend.start(instance_id, folder, script, body_env(self.venv_cache))
        _log.info("body for %s: %s pid %d", instance_id, body.backend, body.pid)

    def take_body(self, body: Body, folder: Path) -> None:
        """Stop a terminated instance's body, in the background (it may take the grace period),
        then free its disk: its code and scratch go, its console and logs stay."""
        if body.instance_id in self.stopping:
            return
        self.stopping.add(body.instance_id)

        def stop() -> None:
            # Dead bodies too: what is left of them (a crashed container) goes as well.
            _log.info("stopping body of %s (%s)", body.instance_id, liveness(body))
            backend_for(body).stop(body, self.grace_s)
            Body(**{**body.__dict__, "stopped": True}).save(folder)
            freed = disks.clear(folder)
            _log.info("cleared the disk of %s: %.1f MB freed", body.instance_id, freed / 1e6)
            self.stopping.discard(body.instance_id)

        threading.Thread(target=stop, name=f"stop-{body.instance_id}", daemon=False).start()

    def run(self, interval_s: float) -> None:
        """Reconcile until told to stop; EC2 errors (an emulator restart) are retried."""
        while not self.done.is_set():
            try:
                self.reconcile()
            except (BotoCoreError, ClientError) as exc:
                _log.warning("cannot reach EC2: %s", exc)
            self.done.wait(interval_s)


def lab_label(home: Path) -> str:
    """A label naming this lab's containers, so that cleaning up touches no one else's."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    """Run the hypervisor for the lab in ``--home`` until SIGTERM."""
    parser = argparse.ArgumentParser(description="fleetlab hypervisor")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--fleet", help="fleet (environment) name; default: the lab's")
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--backend", choices=["process", "docker"], default="process")
    parser.add_argument("--image", default="fleetlab/instance:bookworm")
    parser.add_argument("--venv-cache", type=Path, help="the bodies' shared venv cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    backend: Backend = (
        DockerBackend(args.image, lab_label(args.home))
        if args.backend == "docker"
        else ProcessBackend()
    )
    lab_env = LabEnv.load(args.home)
    fleet_name = args.fleet or lab_env.env
    hypervisor = Hypervisor(lab_env, args.home, fleet_name, backend, args.grace, args.venv_cache)

    def finish(_signum: int, _frame: FrameType | None) -> None:
        # Bodies live on (as VMs do when their hypervisor restarts); `lab down` stops them
        # by terminating the instances first.
        hypervisor.done.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    hypervisor.run(args.interval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
