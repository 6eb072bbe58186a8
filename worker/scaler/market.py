"""Which launches are spot: a share of the fleet on spot above an on-demand base, and back to
on-demand alone after repeated interruptions. A pure policy of the fleet, the recent
interruptions and ``now``; the scaler loop only counts and launches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Market:
    """The fleet's market settings (``FLEETLAB_SPOT_*``)."""

    spot_fraction: float = 0.0  # of the fleet; 0: all on-demand
    fallback_after: int = 3  # this many interruptions within the window: on-demand only
    window_s: float = 3600.0


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
