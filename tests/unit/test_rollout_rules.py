"""The rollout's pure rules: what counts as healthy on a version, and who stayed silent."""

from __future__ import annotations

from lab.deploy.rollout import healthy, silent
from worker.state.status import Status


def status(version: str, beat: float | None, state: str = "idle") -> Status:
    return Status.from_doc(
        {"state": state, "code_version": version, "heartbeat_at": beat}, "i-0123456789abcdef0"
    )


def test_healthy_needs_the_version_serving_and_a_beat_after_the_start() -> None:
    assert healthy(status("v2", 101.0), "v2", 100.0)
    assert not healthy(status("v1", 101.0), "v2", 100.0)  # still the old code
    assert not healthy(status("v2", 99.0), "v2", 100.0)  # a beat from before the deploy
    assert not healthy(status("v2", None), "v2", 100.0)
    assert not healthy(None, "v2", 100.0)


def test_silent_since_the_deploy_are_those_without_a_later_beat() -> None:
    statuses = {
        "i-new-never-wrote": None,
        "i-crashed-before": status("v1", 90.0),
        "i-never-beat": status("v1", None),
        "i-serving-old": status("v1", 130.0),
        "i-at-the-instant": status("v1", 100.0),
    }
    assert silent(statuses, 100.0) == [
        "i-at-the-instant", "i-crashed-before", "i-never-beat", "i-new-never-wrote",
    ]  # fmt: skip
    assert silent({}, 100.0) == []
