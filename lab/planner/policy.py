"""A scaling policy as the simulator runs it: a ``decide`` with the scaler's own signature, its
configuration, how often it ticks and how many instances are up when the trace begins."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from worker.scaler.capacity import Decision, Memory, Observed, ScalerConfig

PolicyFn = Callable[[Observed, ScalerConfig, Memory, float], Decision]


@dataclass(frozen=True)
class Policy:
    """One policy to replay: ``decide(observed, config, memory, now)`` every ``tick_s`` seconds."""

    name: str
    decide: PolicyFn
    config: ScalerConfig
    tick_s: float
    initial: int  # instances already up at t = 0 (the fleet ran before the trace began)
