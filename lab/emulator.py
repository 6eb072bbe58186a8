"""The embedded emulator: a moto server process on 127.0.0.1."""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from lab import procs
from lab.errors import StartFailed
from lab.settings import LabSettings

NAME = "emulator"


def ready(endpoint: str) -> bool:
    """True when the moto server answers."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):  # noqa: S310 (loopback)
            return True
    except (urllib.error.URLError, OSError):
        return False


def start(settings: LabSettings, env: Mapping[str, str], timeout_s: float = 30.0) -> int:
    """Start moto (unless it already answers) and wait until it is ready; return its pid."""
    argv = [
        sys.executable,
        "-m",
        "moto.server",
        "-H",
        "127.0.0.1",
        "-p",
        str(settings.emulator_port),
    ]
    if ready(settings.endpoint_url):
        raise StartFailed(f"something already answers on {settings.endpoint_url}; is a lab up?")
    pid = procs.start(NAME, argv, settings.pids, settings.logs, env, Path.cwd())
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready(settings.endpoint_url):
            return pid
        if not procs.alive(pid):
            raise StartFailed(f"moto server exited; see {settings.logs / 'emulator.log'}")
        time.sleep(0.1)
    procs.stop(NAME, settings.pids)
    raise StartFailed(f"moto server not ready after {timeout_s:g} s")
