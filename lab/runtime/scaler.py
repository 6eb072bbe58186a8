"""The lab's side of the scaler: its settings document, its published state, a foreground run.

The scaler's settings live in S3 (``scaler/config.json``) because every instance's scaler, and
``lab scaler run``, read the same ones every tick; the lab's defaults are on the lab's time
scale (a three-minute video takes 1.8 s at ``FLEETLAB_SPEED=0.01``).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from typing import Any

from lab.runtime.resources import LabEnv
from lab.runtime.settings import LabSettings
from worker.scaler.capacity import ScalerConfig
from worker.scaler.loop import config_from, read_config
from worker.state.layout import SCALER_CONFIG, SCALER_STATE
from worker.state.store import JsonStore

__all__ = ["LAB_SCALING", "read_config", "read_state", "run", "write_config"]

# A lab job takes ~2 s, so every time scale shrinks with it: p95 target, boot, windows.
LAB_SCALING = ScalerConfig(
    slo_p95_s=30.0,
    job_s=2.0,
    boot_s=8.0,
    boot_timeout_s=120.0,
    stale_after_s=60.0,
    scale_in_after_s=20.0,
    rate_window_s=15.0,
)


def write_config(
    store: JsonStore, changes: dict[str, Any], defaults: ScalerConfig = LAB_SCALING
) -> ScalerConfig:
    """Merge ``changes`` into the stored settings (``defaults`` when none); validated."""
    current = read_config(store) or defaults
    config = config_from(asdict(current) | changes)
    store.put(SCALER_CONFIG, asdict(config))
    return config


def read_state(store: JsonStore) -> dict[str, Any] | None:
    """What the leading scaler last published: leader, token, desired, reason."""
    found = store.read(SCALER_STATE)
    return found.doc if found else None


def loop_env(settings: LabSettings, lab_env: LabEnv, owner: str) -> dict[str, str]:
    """The environment a scaler in the lab runs with (instances get it through user-data)."""
    return lab_env.worker_env() | {
        "FLEETLAB_FLEET": lab_env.env,
        "FLEETLAB_WORKER_ID": owner,
        "FLEETLAB_WORK_DIR": str(settings.home / "scaler" / owner),
        "FLEETLAB_SCALER_INTERVAL": str(settings.scaler_interval_s),
        "FLEETLAB_SCALER_LEASE": str(settings.scaler_lease_s),
    }


def run(settings: LabSettings, lab_env: LabEnv, env: dict[str, str], once: bool = False) -> int:
    """Run ``python -m worker.scaler`` (the instances' very loop) in the foreground until it
    stops or Ctrl-C, which reaches it too: it hands the lease on and exits. Its exit code."""
    argv = [sys.executable, "-m", "worker.scaler", *(["--once"] if once else [])]
    child = subprocess.Popen(argv, env=env | loop_env(settings, lab_env, "lab-scaler"))
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT: wait for its clean exit
