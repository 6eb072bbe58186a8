"""Retry delays: capped exponential backoff with full jitter, a pure function of the attempt."""

from __future__ import annotations

from worker.config import Retry


def backoff_delay(attempt: int, retry: Retry, draw: float) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based); ``draw`` is uniform in [0, 1).

    Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads retries from
    many workers so that a recovering endpoint is not hit by all of them at once.
    """
    ceiling = min(retry.cap_s, retry.base_s * (2.0 ** max(0, attempt)))
    return max(0.0, min(1.0, draw)) * ceiling
