"""The Docker SDK adapter against the real engine: a container's life through the API, labels
and state read back, and the engine's refusals raised as the lab's DockerError."""

from __future__ import annotations

import signal
import uuid

import pytest

from lab.ec2 import docker_api
from lab.errors import DockerError
from lab.runtime.procs import free_port

pytestmark = pytest.mark.integration


def test_a_container_through_the_api(instance_image: str) -> None:
    name = f"fleetlab-test-{uuid.uuid4().hex[:8]}"
    labels = {"fleetlab.instance": name, "fleetlab.lab": "test-docker-api"}
    container = docker_api.run(instance_image, ["sleep", "300"], name, {"A": "1"}, labels, {})
    try:
        status, pid = docker_api.state(container)
        assert status == "running" and pid > 0
        found = docker_api.find(container)
        assert found is not None and found.labels == labels
        assert docker_api.pause(container)
        assert docker_api.state(container)[0] == "paused"
        assert docker_api.unpause(container)
        assert docker_api.state(container)[0] == "running"
        assert docker_api.kill(container, signal.SIGKILL.name)
        assert docker_api.state(container)[0] == "exited"
    finally:
        docker_api.stop_and_remove(container, 1)
    assert docker_api.state(container) == ("", 0)
    assert docker_api.find(container) is None


def test_a_missing_container_is_gone_and_acting_on_it_is_a_clear_error(
    instance_image: str,
) -> None:
    missing = f"fleetlab-missing-{uuid.uuid4().hex[:8]}"
    assert docker_api.state(missing) == ("", 0)
    assert not docker_api.pause(missing)
    assert not docker_api.kill(missing, "SIGTERM")
    docker_api.stop_and_remove(missing, 1)  # nothing to do, no error
    with pytest.raises(DockerError, match=f"cannot restart {missing[:12]}"):
        docker_api.restart(missing, 1)
    assert not docker_api.image_exists(f"fleetlab/absent-{uuid.uuid4().hex[:8]}:none")


def test_an_unreachable_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
    docker_api.client.cache_clear()
    try:
        assert not docker_api.available()
        with pytest.raises(DockerError, match="docker: cannot"):
            docker_api.image_exists("fleetlab/instance:bookworm")
    finally:
        monkeypatch.undo()
        docker_api.client.cache_clear()
