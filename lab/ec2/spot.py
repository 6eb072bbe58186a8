"""Spot interruptions and rebalance recommendations, as EC2 gives them to a spot instance.

``interrupt`` posts the two-minute notice (``spot/instance-action`` in the instance's metadata);
when it runs out the hypervisor terminates the instance through EC2, as AWS reclaims it.
``rebalance`` posts a rebalance recommendation (``events/recommendations/rebalance``): a hint
that the instance is at raised risk, with no deadline. Only spot instances get either.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lab.ec2 import notices
from lab.ec2.metadata import Notices
from lab.errors import LabError
from worker.scaler.ec2 import Instance

NOTICE_S = 120.0  # AWS's warning before it reclaims a spot instance
MIN_NOTICE_S = 10.0  # compressed, the notice still spans a few of the worker's metadata polls


def default_notice_s(speed: float) -> float:
    """The notice in the lab: two minutes compressed by the lab's ``speed``, never so short
    that a worker polling every few seconds could miss it."""
    return max(MIN_NOTICE_S, NOTICE_S * speed)


def _spot(instance: Instance | None, instance_id: str) -> Instance:
    if instance is None or instance.state not in ("pending", "running"):
        raise LabError(f"{instance_id} is not a running instance of this fleet")
    if instance.market != "spot":
        raise LabError(f"{instance_id} is an on-demand instance: only spot instances get notices")
    return instance


def interrupt(home: Path, instance: Instance | None, instance_id: str, notice_s: float,
              now: float) -> Notices:  # fmt: skip
    """Post the interruption notice: the instance is reclaimed ``notice_s`` from ``now``."""
    if not 0 < notice_s <= 3600:
        raise LabError(f"--notice must be between 0 and 3600 seconds, not {notice_s:g}")
    _spot(instance, instance_id)
    return notices.post(home / "instances" / instance_id, interruption_at=now + notice_s)


def rebalance(home: Path, instance: Instance | None, instance_id: str, now: float) -> Notices:
    """Post a rebalance recommendation for the instance."""
    _spot(instance, instance_id)
    return notices.post(home / "instances" / instance_id, rebalance_at=now)


def due(folder: Path, live: Iterable[Instance], now: float) -> list[str]:
    """The live instances whose interruption notice has run out: to be terminated now."""
    found = []
    for instance in live:
        at = notices.load(folder / instance.id).interruption_at
        if at is not None and at <= now:
            found.append(instance.id)
    return found
