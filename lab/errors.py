"""Errors of the lab, under the one fleetlab root."""

from __future__ import annotations

from worker.errors import FleetlabError


class LabError(FleetlabError):
    """Raised when the lab cannot do what was asked (start, stop, find its state)."""

    code = "LAB_ERROR"


class NotRunning(LabError):
    """Raised when a command needs a running lab and there is none."""

    code = "LAB_NOT_RUNNING"


class StartFailed(LabError):
    """Raised when a lab process (emulator, worker, receiver) does not come up."""

    code = "START_FAILED"


class NotOurs(LabError):
    """Raised when a resource by the fleet's name exists but is not tagged for this environment:
    provisioning does not adopt it, teardown does not remove it."""

    code = "NOT_OURS"


class NoCredentials(LabError):
    """Raised when AWS has no credentials for the lab, or refuses the ones it has."""

    code = "NO_CREDENTIALS"


class ImageNotFound(LabError):
    """Raised when the image the fleet should boot cannot be found."""

    code = "IMAGE_NOT_FOUND"


class DockerError(LabError):
    """Raised when the Docker engine refuses or fails a call (run, restart, build, import)."""

    code = "DOCKER_ERROR"
