"""The Docker engine through its SDK (the ``docker`` package): one client, the few calls the
lab makes, and the SDK's errors mapped onto the lab's tree (``DockerError``, ``ImageNotFound``).

Nothing here shells out: containers are created, paused, signalled, restarted and removed over
the engine's API, and their labels and state are read from it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO

import docker
from docker.errors import DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

from lab.errors import DockerError

_TIMEOUT_S = 120  # one API call; a restart or stop waits for its grace within it


@functools.cache
def client() -> docker.DockerClient:
    """The engine the environment names (``DOCKER_HOST``, else the local socket)."""
    with errors("connect to the Docker engine"):
        return docker.from_env(timeout=_TIMEOUT_S)


@contextmanager
def errors(what: str) -> Iterator[None]:
    """Turn the SDK's exceptions into ``DockerError`` naming what was being done."""
    try:
        yield
    except DockerException as exc:
        raise DockerError(f"docker: cannot {what}: {exc}") from None


def available() -> bool:
    """True if an engine answers."""
    try:
        return bool(client().ping())
    except (DockerError, DockerException):
        return False


def run(
    image: str,
    command: list[str],
    name: str,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    volumes: Mapping[str, str],
) -> str:
    """Create and start a detached container on the host network with an init process as PID
    1 (it forwards signals); return its id."""
    with errors(f"run {name}"):
        made = client().containers.run(
            image,
            command,
            name=name,
            detach=True,
            init=True,
            network_mode="host",
            environment=dict(env),
            labels=dict(labels),
            volumes={host: {"bind": inside, "mode": "rw"} for host, inside in volumes.items()},
        )
        return str(made.id)


def find(container: str) -> Container | None:
    """The container, or None if the engine does not know it (removed) or cannot be asked."""
    try:
        return client().containers.get(container)
    except (NotFound, DockerError, DockerException):
        return None


def state(container: str) -> tuple[str, int]:
    """Docker's status (running, paused, exited, ...; '' if gone) and the main process's pid."""
    found = find(container) if container else None
    if found is None:
        return "", 0
    info = found.attrs.get("State", {})
    return str(info.get("Status", "")), int(info.get("Pid") or 0)


def pause(container: str) -> bool:
    """Freeze every process of the container (the cgroup freezer); False if it cannot be."""
    return _act(container, lambda c: c.pause())


def unpause(container: str) -> bool:
    """Thaw a paused container."""
    return _act(container, lambda c: c.unpause())


def kill(container: str, signal_name: str) -> bool:
    """Send a signal to the container's PID 1 (the init, which forwards it)."""
    return _act(container, lambda c: c.kill(signal=signal_name))


def restart(container: str, grace_s: float) -> None:
    """Stop (SIGTERM, SIGKILL after ``grace_s``) and start again, with the same command."""
    with errors(f"restart {container[:12]}"):
        client().containers.get(container).restart(timeout=int(grace_s))


def stop_and_remove(container: str, grace_s: float) -> None:
    """Stop (SIGTERM, then SIGKILL after ``grace_s``) and remove; a missing one is fine."""
    found = find(container)
    if found is None:
        return
    with errors(f"stop {container[:12]}"):
        try:
            found.stop(timeout=int(grace_s))
        except NotFound:
            return
        found.remove(force=True)


def _act(container: str, action: Callable[[Container], object]) -> bool:
    found = find(container)
    if found is None:
        return False
    try:
        action(found)
    except DockerException:
        return False
    return True


def image_exists(image: str) -> bool:
    """True if the engine has ``image``."""
    with errors(f"look up image {image}"):
        try:
            client().images.get(image)
        except ImageNotFound:
            return False
        return True


def build(image: str, dockerfile: str, context: str) -> None:
    """``docker build`` through the API."""
    with errors(f"build {image}"):
        client().images.build(path=context, dockerfile=dockerfile, tag=image, rm=True)


def import_tar(stream: IO[bytes], image: str, changes: list[str]) -> None:
    """``docker import``: a root file system tar (streamed) becomes ``image``."""
    name, tag = image, "latest"
    if ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    with errors(f"import {image}"):
        client().api.import_image_from_stream(stream, repository=name, tag=tag, changes=changes)
