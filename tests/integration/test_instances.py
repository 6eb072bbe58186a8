"""Instances end to end, as a user runs them: `lab up --instances 2` on each body backend."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support import Up, submit, wait_until

pytestmark = pytest.mark.integration
LAB = str(Path(sys.executable).parent / "lab")


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

    # Eight 2 s jobs on two instances: a busy instance shows in `lab status` for about 8 s
    # (four gave a window short enough for the status polls to miss on a busy machine).
    ids = [submit(up, f"crash-{n}") for n in range(8)]
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
