"""Lab settings: one frozen dataclass built at the CLI edge; names, ports, the state folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from lab.runtime import environment

EMULATOR_PORTS = {"local": 5000, "localstack": 4566}
# What a stock Debian 12 image lacks for the boot script (venv), the audio services (sox), the
# image service (imagemagick) and the encrypt service (age).
AWS_BOOT_PACKAGES = ("python3-venv", "sox", "imagemagick", "age")


@dataclass(frozen=True)
class LabSettings:
    """Where the lab keeps its state and what it calls its resources."""

    home: Path
    env: str = "local"
    region: str = "us-east-1"
    emulator_port: int = 5000
    receiver_port: int = 8765
    request_queue: str = "fleetlab-requests"
    response_queue: str = "fleetlab-responses"
    dead_letter_queue: str = "fleetlab-dead-letters"
    bucket: str = "fleetlab-local"
    log_group: str = "/fleetlab/local"
    visibility_timeout_s: int = 30
    max_receive_count: int = 5
    scaler_interval_s: float = 2.0  # the lab's scalers tick fast: its jobs take seconds
    scaler_lease_s: float = 10.0
    job_speed: float = 0.01  # FLEETLAB_SPEED: a 180 s video takes 1.8 s of CPU in the lab
    boot_packages: tuple[str, ...] = ()  # Debian packages the boot script installs if missing
    aws_endpoint_url: str | None = None  # env aws: AWS_ENDPOINT_URL if set (tests: moto)
    tools: Path = Path.home() / ".cache" / "fleetlab"  # emulators installed on demand
    instance_env: Mapping[str, str] = field(default_factory=dict)  # extra worker settings
    # What labs on this machine share: the bodies' venv cache and the bundles' wheel cache (a
    # chaos lab shares its parent lab's); default: the home.
    shared: Path | None = None
    services_dir: Path | None = None  # a team's own services folder, carried in every bundle
    # The lab's network (lab/net): "aws" puts the lab's proxy, with AWS's latencies, between
    # the instances (and plain workers) and the emulator, listening on proxy_port.
    latency: str = "none"
    proxy_port: int = 5001

    @property
    def endpoint_url(self) -> str:
        """The emulator's endpoint."""
        return f"http://127.0.0.1:{self.emulator_port}"

    @property
    def proxy_url(self) -> str:
        """Where instances reach the emulator through the lab's proxy (``latency`` not none)."""
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def receiver_url(self) -> str:
        """The callback receiver's base URL."""
        return f"http://127.0.0.1:{self.receiver_port}"

    @property
    def pids(self) -> Path:
        """Folder of pid files: what `lab down` may stop, and nothing else."""
        return self.home / "pids"

    @property
    def logs(self) -> Path:
        """Folder of process logs."""
        return self.home / "logs"

    @property
    def venv_cache(self) -> Path:
        """The venvs every body of this machine installs once and links to (disks.py)."""
        return (self.shared or self.home) / "venvs"

    @property
    def wheel_cache(self) -> Path:
        """The dependency wheels bundles are built from, fetched from the index once."""
        return (self.shared or self.home) / "bundles" / "wheel-cache"


def load_settings(env: Mapping[str, str] | None = None, name: str | None = None) -> LabSettings:
    """Build settings from ``FLEETLAB_LAB_HOME`` (default ``./.lab``), the environment chosen
    there (or ``name``), and port overrides."""
    env = os.environ if env is None else env
    home = Path(env.get("FLEETLAB_LAB_HOME") or Path.cwd() / ".lab").resolve()
    name = environment.check(name) if name else environment.selected(home, env)
    tools = env.get("FLEETLAB_TOOLS")
    real: dict[str, Any] = {} if name in environment.EMULATED else _REAL_TIME
    emulator_port = int(env.get("FLEETLAB_EMULATOR_PORT") or EMULATOR_PORTS.get(name, 5000))
    return LabSettings(
        **real,
        home=home,
        env=name,
        region=_region(env, profile=bool(real)),
        emulator_port=emulator_port,
        proxy_port=int(env.get("FLEETLAB_PROXY_PORT") or emulator_port + 1),
        latency=environment.latency(home),
        tools=Path(tools).resolve() if tools else LabSettings.tools,
        receiver_port=int(env.get("FLEETLAB_RECEIVER_PORT") or 8765),
        visibility_timeout_s=int(env.get("FLEETLAB_LAB_VISIBILITY_TIMEOUT") or 30),
        aws_endpoint_url=(env.get("AWS_ENDPOINT_URL") or None) if real else None,
        services_dir=environment.services_dir(home, env),
    )


def _region(env: Mapping[str, str], profile: bool) -> str:
    # On AWS the profile's region counts too, as for any AWS tool; the emulators ignore it.
    named = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if named or not profile:
        return named or "us-east-1"
    return boto3.session.Session().region_name or "us-east-1"


# On AWS the jobs take real minutes: the worker's and the scaler's own defaults, real packages.
_REAL_TIME: dict[str, Any] = {
    "scaler_interval_s": 30.0,
    "scaler_lease_s": 90.0,
    "job_speed": 1.0,
    "boot_packages": AWS_BOOT_PACKAGES,
}
