"""The emulator the lab starts: a moto server (``local``) or LocalStack (``localstack``), on
127.0.0.1, as a process of the lab's own; readiness is each one's health endpoint."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from lab.errors import LabError, StartFailed
from lab.runtime import fidelity, localstack, procs
from lab.runtime.settings import LabSettings

NAME = "emulator"


def moto_ready(endpoint: str) -> bool:
    """True when a moto server answers."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310 (loopback)
            return True
    except (urllib.error.URLError, OSError):
        return False


def ready(env_name: str, endpoint: str) -> bool:
    """True when the emulator of environment ``env_name`` answers its health check there."""
    if env_name == "localstack":
        return localstack.ready(endpoint)
    return moto_ready(endpoint)


def answers(url: str) -> bool:
    """True when anything at all answers a GET of ``url``, even with an error (an emulator may
    not be ready yet)."""
    try:
        with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
            return True
    except urllib.error.HTTPError as exc:
        exc.close()
        return True
    except (urllib.error.URLError, OSError):
        return False


def command(settings: LabSettings) -> tuple[list[str], dict[str, str]]:
    """The emulator's command line and the variables it needs (installing LocalStack if asked
    for and missing). Either runs through ``fidelity``, which first patches in what AWS does
    and the emulators do not."""
    if settings.env == "local":
        port = str(settings.emulator_port)
        return [sys.executable, fidelity.__file__, "moto.server", "-H", "127.0.0.1", "-p", port], {}
    if settings.env == "localstack":
        data = settings.home / "localstack"
        (data / "tmp").mkdir(parents=True, exist_ok=True)
        python = localstack.install(settings.tools)
        return localstack.argv(python), localstack.environment(settings.emulator_port, data)
    raise LabError(f"environment {settings.env!r} has no emulator: the lab starts none for it")


def start(settings: LabSettings, env: Mapping[str, str], timeout_s: float = 90.0) -> int:
    """Start the emulator and wait until it is ready; return its pid. Refuses when something
    already answers on its port (another lab)."""
    if answers(settings.endpoint_url):
        raise StartFailed(f"something already answers on {settings.endpoint_url}; is a lab up?")
    argv, extra = command(settings)
    pid = procs.start(NAME, argv, settings.pids, settings.logs, {**env, **extra}, Path.cwd())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready(settings.env, settings.endpoint_url):
            return pid
        if not procs.alive(pid):
            log = settings.logs / f"{NAME}.log"
            raise StartFailed(f"the {settings.env} emulator exited; see {log}")
        time.sleep(0.2)
    procs.stop(NAME, settings.pids)
    raise StartFailed(f"the {settings.env} emulator was not ready after {timeout_s:g} s")


def restart(settings: LabSettings, env: Mapping[str, str]) -> int:
    """Stop the emulator by its pid and start it again, empty (neither keeps state)."""
    procs.stop(NAME, settings.pids)
    deadline = time.monotonic() + 15
    while answers(settings.endpoint_url) and time.monotonic() < deadline:
        time.sleep(0.1)
    return start(settings, env)
