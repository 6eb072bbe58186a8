"""Which launches are spot: a share of the fleet on spot above an on-demand base, and back to
on-demand alone after repeated interruptions. A pure policy of the fleet, the recent
interruptions and ``now``; the scaler loop only counts and launches.

The interruptions are counted in shared state (``Interruptions``, ``scaler/interruptions.json``),
not in the leading scaler's memory: a new leader (the old one's instance was the one reclaimed,
say) goes on from the same count, so the fallback to on-demand does not forget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Market:
    """The fleet's market settings (``spot_*`` in ``scaler/config.json``)."""

    spot_fraction: float = 0.0  # of the fleet; 0: all on-demand
    fallback_after: int = 3  # this many interruptions within the window: on-demand only (0: never)
    window_s: float = 3600.0


@dataclass(frozen=True)
class Interruptions:
    """The fleet's spot interruptions: instance id -> when a scaler first saw it under notice
    (epoch seconds). Keyed by instance, so a notice seen on many ticks, or by two leaders in
    turn, counts once."""

    seen: Mapping[str, float] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        """The stored form."""
        return {"seen": dict(sorted(self.seen.items()))}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Interruptions:
        """Read the stored form; entries that are not an id and a time are dropped."""
        raw = doc.get("seen")
        if not isinstance(raw, dict):
            return cls()
        kept = {
            str(k): float(v)
            for k, v in raw.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        return cls(kept)


def noted(
    known: Interruptions, under_notice: Iterable[str], now: float, window_s: float
) -> Interruptions:
    """``known`` with the instances ``under_notice`` added (first seen ``now``, unless seen
    before) and those first seen longer than ``window_s`` before ``now`` forgotten."""
    seen = {k: at for k, at in known.seen.items() if now - at <= window_s}
    for instance_id in under_notice:
        seen.setdefault(instance_id, now)
    return Interruptions(seen)


def spot_launches(launch: int, markets: Mapping[str, str], market: Market, recent: int) -> int:
    """How many of ``launch`` new instances to make spot, given the live fleet's ``markets`` (id
    -> "spot"/"on-demand") and ``recent`` interruptions: enough that the fleet after the launch
    is ``spot_fraction`` spot (rounded down: the on-demand base is never short), none once
    interruptions came ``fallback_after`` times within the window."""
    if launch <= 0 or market.spot_fraction <= 0 or recent >= market.fallback_after > 0:
        return 0
    total = len(markets) + launch
    spot_now = sum(1 for m in markets.values() if m == "spot")
    wanted = int(total * market.spot_fraction) - spot_now
    return max(0, min(launch, wanted))


def recent_interruptions(first_seen: Iterable[float], now: float, window_s: float) -> int:
    """Interruptions first seen within the window before ``now``."""
    return sum(1 for at in first_seen if now - at <= window_s)
