"""Scaler loops for unit tests: on an in-memory store, without AWS clients, on the test's clock;
their activity logs are closed by ``close_all`` (each test module's autouse fixture calls it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from memstore import DictStore

from worker.config import AwsTarget, ScalerSettings
from worker.scaler.loop import Scaler
from worker.state.activity import ActivityLog

_OPEN: list[ActivityLog] = []


def scaler(
    store: DictStore, owner: str, clock: Callable[[], float] | None, tmp_path: Path
) -> Scaler:
    """A scaler for fleet ``local`` competing for the lease as ``owner``."""
    settings = ScalerSettings(
        aws=AwsTarget(), request_queue_url="q", bucket="b", log_group="g", fleet="local",
        owner=owner, work_dir=tmp_path, interval_s=2.0, lease_s=10.0,
    )  # fmt: skip
    log = ActivityLog(owner, tmp_path / f"{owner}.log")
    _OPEN.append(log)
    wall = clock or time.time
    return Scaler(settings, None, store, log, wall=wall, clock=clock or time.monotonic)  # type: ignore[arg-type]


def close_all() -> None:
    """Close every log a ``scaler`` opened."""
    while _OPEN:
        _OPEN.pop().close()
