"""Small helpers the integration tests share: free ports, a clean environment, polling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# What the suite hands on to every lab it starts: which emulator, and where emulators live.
HANDED_ON = ("FLEETLAB_LAB_ENV", "FLEETLAB_TOOLS")


def clean_env() -> dict[str, str]:
    """The test process's environment without anything that points AWS or fleetlab elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLEETLAB_"))}


def chosen_emulator() -> dict[str, str]:
    """The suite's own choice of emulator (``FLEETLAB_LAB_ENV``, ``FLEETLAB_TOOLS``), if any."""
    return {k: os.environ[k] for k in HANDED_ON if os.environ.get(k)}


def cli_env(home: Path, emulator_port: int, receiver_port: int | None = None) -> dict[str, str]:
    """The environment of a `lab` command run by a test: a clean one, the suite's emulator,
    the lab's home and ports."""
    env = clean_env() | chosen_emulator()
    env |= {"FLEETLAB_LAB_HOME": str(home), "FLEETLAB_EMULATOR_PORT": str(emulator_port)}
    if receiver_port is not None:
        env["FLEETLAB_RECEIVER_PORT"] = str(receiver_port)
    return env


def wait_until(
    check: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


LAB_CLI = str(Path(sys.executable).parent / "lab")


@dataclass
class Up:
    """A lab brought up with instances, driven through its CLI."""

    home: Path
    env: dict[str, str]
    backend: str

    def lab(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LAB_CLI, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def status(self) -> dict[str, Any]:
        done = self.lab("status", "--json")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def live(self) -> list[dict[str, Any]]:
        return [i for i in self.status()["instances"] if i["ec2_state"] == "running"]


def submit(up: Up, request_id: str) -> str:
    done = up.lab("submit", "--service", "analyze", "--input",
                  "s3://fleetlab-local/examples/clip.fakevideo", "--param", "R=5",
                  "--request-id", request_id)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
