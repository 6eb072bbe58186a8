"""Instances end to end, as a user runs them: `lab up --instances 2` on each body backend."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import clean_env, wait_until

from lab.bodies import Body, liveness

pytestmark = pytest.mark.integration
LAB = str(Path(sys.executable).parent / "lab")


@dataclass
class Up:
    """A lab brought up with instances, driven through its CLI."""

    home: Path
    env: dict[str, str]
    backend: str

    def lab(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LAB, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def status(self) -> dict[str, Any]:
        done = self.lab("status", "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def live(self) -> list[dict[str, Any]]:
        return [i for i in self.status()["instances"] if i["ec2_state"] == "running"]


@pytest.fixture(params=["process", "docker"])
def up(
    request: pytest.FixtureRequest, tmp_path: Path, unused_port: Callable[[], int]
) -> Iterator[Up]:
    if request.param == "docker":
        request.getfixturevalue("instance_image")
    env = clean_env() | {
        "FLEETLAB_LAB_HOME": str(tmp_path / "lab"),
        "FLEETLAB_EMULATOR_PORT": str(unused_port()),
        "FLEETLAB_RECEIVER_PORT": str(unused_port()),
        "FLEETLAB_LAB_VISIBILITY_TIMEOUT": "6",
    }
    found = Up(tmp_path / "lab", env, request.param)
    started = found.lab("up", "--instances", "2", "--workers", "0", "--no-samples",
                        "--backend", request.param, timeout=400)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield found
    finally:
        down = found.lab("down", timeout=180)
        assert down.returncode == 0, down.stderr
        bodies = [Body.load(p) for p in (found.home / "instances").glob("i-*")]
        assert all(b is None or liveness(b) == "dead" for b in bodies)
        assert not list((found.home / "pids").glob("*.pid"))


def submit(up: Up, request_id: str) -> str:
    done = up.lab("submit", "--service", "analyze", "--input",
                  "s3://fleetlab-local/examples/clip.fakevideo", "--param", "R=5",
                  "--request-id", request_id)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_instances_boot_from_the_bundle_serve_and_survive_a_crash(up: Up) -> None:
    ready = wait_until(
        lambda: len([i for i in up.live() if i["state"] == "idle" and i["body"] == "alive"]) == 2,
        240, "two booted instances",
    )  # fmt: skip
    assert ready
    instances = up.live()
    versions = {i["code_version"] for i in instances}
    assert len(versions) == 1 and "dev" not in versions, versions  # the bundle's version
    assert {i["backend"] for i in instances} == {up.backend}

    ids = [submit(up, f"crash-{n}") for n in range(4)]
    busy = wait_until(
        lambda: [i for i in up.live() if i["current_request"] in ids], 60, "a busy instance"
    )
    victim = busy[0]["id"]
    crashed = up.lab("instance", "crash", victim)
    assert crashed.returncode == 0, crashed.stderr

    answered: dict[str, dict[str, Any]] = {}

    def collect() -> bool:
        done = up.lab("results", "--wait", "2", "--json")
        for result in json.loads(done.stdout or "[]"):
            answered[result["message_id"]] = result
        return set(ids) <= set(answered)

    wait_until(collect, 120, "every request answered")
    assert all(answered[i]["status"] == "success" for i in ids)
    after = {i["id"]: i for i in up.status()["instances"]}
    assert after[victim]["ec2_state"] == "running" and after[victim]["body"] == "dead"

    gone = up.lab("instance", "terminate", victim)
    assert gone.returncode == 0
    wait_until(lambda: {i["id"]: i for i in up.status()["instances"]}[victim]["body"] == "stopped",
               30, "the crashed instance's body retired")  # fmt: skip
