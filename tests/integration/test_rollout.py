"""Rolling deploys on a running fleet: every instance moves, no job is lost, a bad bundle rolls back."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from support import Up, submit, wait_until

pytestmark = pytest.mark.integration


def versions(up: Up) -> set[str]:
    return {str(i["code_version"]) for i in up.live()}


def all_serving(up: Up, version: str) -> bool:
    live = up.live()
    return len(live) == 2 and all(
        i["code_version"] == version and i["state"] == "idle" and i["body"] == "alive" for i in live
    )


# A hang guard that fits the test: two rollouts, each given up to 400 s by its own call below
# (the suite's default of 120 s cut a docker rollout short on a busy machine).
@pytest.mark.timeout(900)
def test_rollout_moves_every_instance_loses_nothing_and_rolls_back_a_bad_bundle(up: Up) -> None:
    wait_until(lambda: len([i for i in up.live() if i["state"] == "idle"]) == 2, 240, "boot")
    [first] = versions(up)
    ids = [submit(up, f"roll-{n}") for n in range(6)]  # in the queue while the fleet rolls

    rolled = up.lab("deploy", "--rollout", "--health-timeout", "90", "--grace", "30", timeout=400)
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    second = re.search(r"^deployed (\S+)", rolled.stdout, re.MULTILINE)
    assert second is not None and second.group(1) != first
    assert "rollout done: 2 instance(s)" in rolled.stdout
    assert rolled.stdout.count("healthy on") == 2
    wait_until(lambda: all_serving(up, second.group(1)), 60, "both instances on the new code")

    ids += [submit(up, f"roll-late-{n}") for n in range(2)]
    bad = up.lab("deploy", "--rollout", "--broken", "--health-timeout", "20", "--grace", "30",
                 timeout=400)  # fmt: skip
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "rolled back, rollout stopped" in bad.stderr
    assert f"current is {second.group(1)} again" in bad.stdout
    # The broken bundle reached one instance at most, and that one is back on the good code.
    wait_until(lambda: all_serving(up, second.group(1)), 90, "the fleet back on the good code")

    answered: dict[str, dict[str, Any]] = {}

    def collect() -> bool:
        for result in json.loads(up.lab("results", "--wait", "2", "--json").stdout or "[]"):
            answered[result["message_id"]] = result
        return set(ids) <= set(answered)

    wait_until(collect, 120, "every request answered")
    assert all(answered[i]["status"] == "success" for i in ids)

    # No live body to roll (both crashed): the instances that run in the next seconds are the
    # canary; none serves the broken code, so it does not stay current for the scaler's
    # replacements to boot.
    for instance in up.live():
        assert up.lab("instance", "crash", instance["id"]).returncode == 0
    unseen = up.lab("deploy", "--rollout", "--broken", "--boot-timeout", "15", timeout=400)
    assert unseen.returncode == 1, unseen.stdout + unseen.stderr
    assert "no live instance to roll" in unseen.stdout
    assert f"rolled back: current is {second.group(1)} again" in unseen.stderr
    assert "terminated 2 silent since the deploy" in unseen.stderr
