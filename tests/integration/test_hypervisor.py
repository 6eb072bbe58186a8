"""The hypervisor on the emulator's EC2: bodies follow instances, faults act on bodies, restarts
re-adopt."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
from support import clean_env, wait_until

from lab.ec2 import faults, instances
from lab.ec2.bodies import Body, liveness

pytestmark = pytest.mark.integration

# A body that says it booted, puts a release on its disk, notes SIGTERM in a log of its own (so
# a test can see a graceful stop), and idles.
USER_DATA = """#!/bin/bash
echo "booted $FLEETLAB_INSTANCE_ID in $FLEETLAB_ROOT"
mkdir -p "$FLEETLAB_ROOT/releases/v1" && head -c 1000000 /dev/zero >"$FLEETLAB_ROOT/releases/v1/lib"
trap 'echo terminated > "$FLEETLAB_ROOT/stopped.log"; exit 0' TERM
while true; do sleep 0.2; done
"""


class Fleet:
    """A hypervisor process over one uniquely tagged fleet."""

    def __init__(self, lab, name: str, backend: str) -> None:  # type: ignore[no-untyped-def]
        self.lab = lab
        self.name = name
        self.backend = backend
        self.ec2 = lab.clients.ec2
        self.proc: subprocess.Popen[bytes] | None = None

    def start_hypervisor(self) -> None:
        argv = [sys.executable, "-m", "lab.ec2.hypervisor", "--home", str(self.lab.home),
                "--fleet", self.name, "--interval", "0.2", "--grace", "5",
                "--backend", self.backend]  # fmt: skip
        with (self.lab.home / "hypervisor.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, env=clean_env(), stdout=log, stderr=log)

    def body(self, instance_id: str) -> Body | None:
        return Body.load(self.lab.home / "instances" / instance_id)

    def console(self, instance_id: str) -> str:
        path = self.lab.home / "instances" / instance_id / "console.log"
        return path.read_text() if path.exists() else ""


@pytest.fixture(params=["process", "docker"])
def fleet(request: pytest.FixtureRequest, lab) -> Iterator[Fleet]:  # type: ignore[no-untyped-def]
    if request.param == "docker":
        request.getfixturevalue("instance_image")
    lab.env.save(lab.home)
    name = f"t-{uuid.uuid4().hex[:10]}"
    instances.ensure_template(lab.clients.ec2, name, USER_DATA)
    found = Fleet(lab, name, request.param)
    found.start_hypervisor()
    yield found
    live = [i.id for i in instances.fleet(found.ec2, name)]
    instances.terminate(found.ec2, live)
    for instance_id in live:
        wait_until(lambda i=instance_id: (b := found.body(i)) and b.stopped, 20, "bodies stopped")
    if found.proc is not None:
        found.proc.send_signal(signal.SIGTERM)
        found.proc.wait(10)


def booted(fleet: Fleet, instance_id: str) -> Callable[[], bool]:
    # The record is saved once the body runs, which may be just after its first console line.
    return lambda: (
        fleet.body(instance_id) is not None
        and f"booted {instance_id}" in fleet.console(instance_id)
    )


def test_bodies_follow_instances_and_faults_act_on_bodies(fleet: Fleet) -> None:
    first, second = instances.launch(fleet.ec2, fleet.name, 2)
    for instance_id in (first, second):
        wait_until(booted(fleet, instance_id), 20, f"{instance_id} to boot")
    body = fleet.body(first)
    assert body is not None and liveness(body) == "alive"
    assert body.backend == fleet.backend

    faults.act(fleet.lab.home, first, "freeze")
    wait_until(lambda: liveness(body) == "frozen", 5, "freeze")
    faults.act(fleet.lab.home, first, "thaw")
    wait_until(lambda: liveness(body) == "alive", 5, "thaw")

    # crash: the body dies, EC2 still says running, and no new body is made for it.
    faults.act(fleet.lab.home, first, "crash")
    wait_until(lambda: liveness(body) == "dead", 5, "crash")
    states = {i.id: i.state for i in instances.fleet(fleet.ec2, fleet.name)}
    assert states[first] == "running"
    after = fleet.body(first)
    assert after is not None and after.pid == body.pid
    with pytest.raises(Exception, match="not running"):
        faults.act(fleet.lab.home, first, "freeze")
    assert (fleet.lab.home / "instances" / first / "root" / "releases").exists()  # a dead VM's disk

    # terminate through EC2: the hypervisor stops the body gracefully (SIGTERM reached it),
    # then clears its disk: the release goes, the console and the logs stay.
    root = fleet.lab.home / "instances" / second / "root"
    wait_until((root / "releases" / "v1" / "lib").exists, 5, "a release on the disk")
    instances.terminate(fleet.ec2, [second])
    wait_until(lambda: (b := fleet.body(second)) is not None and b.stopped, 15, "stop")
    assert (root / "stopped.log").read_text().strip() == "terminated"
    wait_until(lambda: not (root / "releases").exists(), 10, "the disk cleared")
    assert f"booted {second}" in fleet.console(second)


def test_scale_and_restart_readopts_without_duplicates(fleet: Fleet) -> None:
    launched, _ = instances.scale(fleet.ec2, fleet.name, 3)
    assert len(launched) == 3
    for instance_id in launched:
        wait_until(booted(fleet, instance_id), 20, f"{instance_id} to boot")
    pids = {i: fleet.body(i).pid for i in launched}  # type: ignore[union-attr]

    # The hypervisor dies and comes back: the same bodies, no second body per instance.
    assert fleet.proc is not None
    fleet.proc.kill()
    fleet.proc.wait(5)
    fleet.start_hypervisor()
    _, doomed = instances.scale(fleet.ec2, fleet.name, 1)
    [kept] = set(launched) - set(doomed)
    assert len(doomed) == 2
    for instance_id in doomed:
        wait_until(lambda i=instance_id: (b := fleet.body(i)) and b.stopped, 15, "scale-in stop")
    keep = fleet.body(kept)
    assert keep is not None and keep.pid == pids[kept] and liveness(keep) == "alive"
    assert fleet.console(kept).count("booted") == 1
    assert [i.id for i in instances.fleet(fleet.ec2, fleet.name)] == [kept]


@pytest.mark.parametrize("fleet", ["docker"], indirect=True)
def test_no_container_outlives_its_instance(fleet: Fleet) -> None:
    [instance_id] = instances.launch(fleet.ec2, fleet.name, 1)
    wait_until(booted(fleet, instance_id), 20, "boot")
    faults.act(fleet.lab.home, instance_id, "crash")
    instances.terminate(fleet.ec2, [instance_id])
    wait_until(lambda: (b := fleet.body(instance_id)) is not None and b.stopped, 15, "stop")
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=fleetlab.instance={instance_id}"],
        capture_output=True, check=True,
    )  # fmt: skip
    assert left.stdout.strip() == b""
