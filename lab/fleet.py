"""The lab's long-running processes: emulator, receiver, workers; up and down by pid file."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lab import emulator, procs, samples
from lab.errors import StartFailed
from lab.resources import LAB_CREDENTIALS, AwsClients, LabEnv, ensure
from lab.settings import LabSettings

RECEIVER = "receiver"
CALLBACK_AUTH = "dirk:tellnoone"  # the article's example credentials, as in schemas/examples
MEDIA_AUTH = "dirk:mylilsecret"
LAB_SPEED = "0.01"  # a 180 s video takes 1.8 s of CPU in the lab


def base_env() -> dict[str, str]:
    """The parent environment without AWS settings that would point elsewhere."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLEETLAB_"))}
    return keep | LAB_CREDENTIALS | {"AWS_EC2_METADATA_DISABLED": "true"}


def up(settings: LabSettings, workers: int) -> LabEnv:
    """Start the emulator, create resources, start the receiver and ``workers`` workers."""
    env = base_env()
    emulator.start(settings, env)
    lab_env = ensure(settings, AwsClients(settings.region, settings.endpoint_url))
    lab_env.save(settings.home)
    files = samples.make(settings.home / "receiver" / "media")
    samples.upload(AwsClients.for_env(lab_env).s3, lab_env.bucket, files)
    start_receiver(settings, env)
    for index in range(1, workers + 1):
        start_worker(settings, lab_env, f"worker-{index}")
    return lab_env


def start_receiver(settings: LabSettings, env: dict[str, str]) -> int:
    """Start the callback receiver and wait until it answers."""
    argv = [
        sys.executable, "-m", "lab.receiver", "--port", str(settings.receiver_port),
        "--dir", str(settings.home / "receiver"),
        "--callback-auth", CALLBACK_AUTH, "--media-auth", MEDIA_AUTH,
    ]  # fmt: skip
    pid = procs.start(RECEIVER, argv, settings.pids, settings.logs, env, Path.cwd())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{settings.receiver_url}/callbacks", timeout=1):  # noqa: S310
                return pid
        except (urllib.error.URLError, OSError):
            if not procs.alive(pid):
                break
            time.sleep(0.05)
    raise StartFailed(f"callback receiver did not start; see {settings.logs / 'receiver.log'}")


def start_worker(
    settings: LabSettings, lab_env: LabEnv, name: str, extra: dict[str, str] | None = None
) -> int:
    """Start one worker process named ``name`` with its own working folder."""
    env = base_env() | lab_env.worker_env() | {
        "FLEETLAB_WORKER_ID": name,
        "FLEETLAB_WORK_DIR": str(settings.home / "workers" / name),
        "FLEETLAB_SPEED": LAB_SPEED,
    } | (extra or {})  # fmt: skip
    argv = [sys.executable, "-m", "worker"]
    return procs.start(name, argv, settings.pids, settings.logs, env, Path.cwd())


def down(settings: LabSettings) -> list[str]:
    """Stop workers first (they drain), then the receiver and the emulator; return what stopped."""
    names = list(procs.running(settings.pids))
    order = sorted(names, key=lambda n: (n in (RECEIVER, emulator.NAME), n == emulator.NAME))
    return [name for name in order if procs.stop(name, settings.pids)]
