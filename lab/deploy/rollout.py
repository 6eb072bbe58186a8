"""Rolling deploy: instances take the current bundle one at a time, without a reboot.

For each running instance: re-deploy its body (the worker drains — finishes its job, hands back
what waits — then the boot script runs again and installs the current bundle), and wait until
its status document shows the new code version with a fresh heartbeat. An instance that does not
get healthy in time is rolled back: ``current`` points at the previous bundle again, that
instance is re-deployed once more, and the rollout stops there and says so.

With no live instance to roll (all crashed, terminated, or still booting), the next instance to
boot is the canary: the rollout waits up to ``boot_s`` for one to serve the new version. If
instances ran in that time and none served it, ``current`` goes back to the previous bundle —
otherwise every replacement the scaler launches would boot the broken code, forever — and the
instances silent since the deploy are terminated, for the scaler to replace on the previous
code at once rather than after its boot timeout. Only when no instance ran at all (a fleet
scaled to zero) does the version stay current unverified, and the rollout says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.deploy import bundle
from lab.ec2 import instances
from lab.ec2.bodies import Body, backend_for, liveness
from lab.errors import LabError
from lab.runtime.resources import LabEnv
from worker.aws import Clients
from worker.state.status import Status, read_status
from worker.state.store import S3JsonStore


class RolloutFailed(LabError):
    """Raised when an instance did not get healthy on the new code and was rolled back."""

    code = "ROLLOUT_FAILED"


@dataclass(frozen=True)
class Step:
    """One instance's part of a rollout."""

    instance_id: str
    version: str
    healthy: bool
    seconds: float


def healthy(status: Status | None, version: str, since: float) -> bool:
    """Pure rule: the instance reports ``version``, is serving, and beat after ``since``."""
    if status is None or status.heartbeat_at is None:
        return False
    return status.code_version == version and status.serving and status.heartbeat_at > since


def silent(statuses: Mapping[str, Status | None], since: float) -> list[str]:
    """Pure rule: the instances that have not beaten since ``since`` (or never did)."""
    return sorted(
        instance_id
        for instance_id, status in statuses.items()
        if status is None or status.heartbeat_at is None or status.heartbeat_at <= since
    )


class Rollout:
    """Re-deploys a fleet's instances one by one to the bundle ``current`` points at."""

    def __init__(self, home: Path, env: LabEnv, clients: Clients, health_s: float,
                 grace_s: float, say: Callable[[str], None],
                 boot_s: float = 180.0) -> None:  # fmt: skip
        self.home = home
        self.boot_s = boot_s
        self.env = env
        self.clients = clients
        self.health_s = health_s
        self.grace_s = grace_s
        self.say = say
        self.store = S3JsonStore(clients.s3, env.bucket)

    def run(self) -> list[Step]:
        """Roll every running instance with a live body; raise ``RolloutFailed`` on a bad one."""
        pointer = bundle.current(self.clients.s3, self.env.bucket)
        if pointer is None:
            raise LabError("nothing deployed yet: run `lab deploy` first")
        steps = []
        started = time.time()
        for instance in instances.fleet(self.clients.ec2, self.env.env, ("running",)):
            folder = self.home / "instances" / instance.id
            body = Body.load(folder)
            if body is None or body.stopped or liveness(body) == "dead":
                self.say(f"{instance.id}: no live body, skipped (it boots the new code anyway)")
                continue
            step = self.roll(instance.id, folder, body, str(pointer["version"]))
            steps.append(step)
            if not step.healthy:
                self.rollback(instance.id, folder)
                raise RolloutFailed(
                    f"{instance.id} did not get healthy on {pointer['version']} within "
                    f"{self.health_s:g} s; rolled back, rollout stopped"
                )
        if not steps:
            self.verify_on_boot(str(pointer["version"]), started)
        return steps

    def verify_on_boot(self, version: str, since: float) -> None:
        """No instance was rolled: wait for one that boots ``version`` to serve it. If instances
        ran and none did, roll back and terminate those silent since ``since`` — they run the
        broken code or nothing — so the scaler's replacements boot the previous bundle now, not
        after a boot timeout (``RolloutFailed``)."""
        self.say(f"no live instance to roll: waiting up to {self.boot_s:g} s for one to boot it")
        deadline = time.monotonic() + self.boot_s
        ran: set[str] = set()
        seen: dict[str, Status | None] = {}
        while time.monotonic() < deadline:
            seen = {}
            for instance in instances.fleet(self.clients.ec2, self.env.env, ("running",)):
                ran.add(instance.id)
                seen[instance.id] = status = read_status(self.store, instance.id)
                if healthy(status, version, since):
                    self.say(f"{instance.id}: booted {version} and serves it")
                    return
            time.sleep(1.0)
        if not ran:
            self.say(f"no instance ran {version}: it stays current, unverified")
            return
        pointer = bundle.revert(self.clients.s3, self.env.bucket)
        doomed = silent(seen, since)
        instances.terminate(self.clients.ec2, doomed)
        raise RolloutFailed(
            f"no instance served {version} within {self.boot_s:g} s "
            f"({len(ran)} ran: {', '.join(sorted(ran))}); rolled back: current is "
            f"{pointer['version']} again; terminated {len(doomed)} silent since the deploy "
            f"({', '.join(doomed) or 'none'}), for the scaler to replace"
        )

    def roll(self, instance_id: str, folder: Path, body: Body, version: str) -> Step:
        """Re-deploy one instance and wait for it to report ``version``."""
        started = time.time()
        self.say(f"{instance_id}: draining and re-deploying to {version}")
        backend_for(body).redeploy(body, folder, self.grace_s)
        ok = self.wait_healthy(instance_id, version, started)
        took = time.time() - started
        self.say(f"{instance_id}: {'healthy' if ok else 'NOT healthy'} on {version} ({took:.1f} s)")
        return Step(instance_id, version, ok, took)

    def rollback(self, instance_id: str, folder: Path) -> None:
        """Point ``current`` back at the previous bundle and re-deploy the instance to it."""
        pointer = bundle.revert(self.clients.s3, self.env.bucket)
        self.say(f"rolling back: current is {pointer['version']} again")
        body = Body.load(folder)
        if body is None:
            return
        step = self.roll(instance_id, folder, body, str(pointer["version"]))
        if not step.healthy:
            self.say(f"{instance_id}: still not healthy after the rollback; look at its console")

    def wait_healthy(self, instance_id: str, version: str, since: float) -> bool:
        """Poll the instance's status document until healthy or the time is up."""
        deadline = time.monotonic() + self.health_s
        while time.monotonic() < deadline:
            if healthy(read_status(self.store, instance_id), version, since):
                return True
            time.sleep(0.5)
        return False
