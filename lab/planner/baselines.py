"""Baseline policies with the scaler's signature: a static fleet, AWS target tracking on backlog
per instance, and KEDA's aws-sqs-queue scaler under a Kubernetes HPA.

All of them replace unhealthy instances and terminate drained ones, as the scaler does, and scale
in by draining. That is generous to the two autoscalers: on AWS it takes a lifecycle hook (and on
Kubernetes a preStop hook with a long grace period) for scale-in not to kill a running job.
"""

from __future__ import annotations

import math

from lab.planner.policy import PolicyFn
from worker.scaler.capacity import Decision, Fleet, Memory, Observed, ScalerConfig, sort_members

TT_PERIOD_S = 60.0  # CloudWatch evaluates one-minute datapoints
TT_OUT_POINTS = 3  # above target for 3 consecutive minutes: scale out
TT_IN_POINTS = 15  # below 0.9 x target for 15 consecutive minutes: scale in
TT_IN_BELOW = 0.9

KEDA_SYNC_S = 15.0  # the HPA's sync period
KEDA_TOLERANCE = 0.1  # no change while |metric / target - 1| <= 0.1
KEDA_DOWN_WINDOW_S = 300.0  # scale-down stabilisation: the highest recommendation of 5 minutes


def backlog_target(config: ScalerConfig) -> float:
    """Jobs one instance may have waiting: acceptable latency / job time (AWS's SQS recipe)."""
    return config.slo_p95_s / config.job_s


def _drains(fleet: Fleet, surplus: int) -> tuple[str, ...]:
    """Serving instances to drain: idle before busy, newest first; booting ones never."""
    order = sorted(fleet.serving, key=lambda m: (m.state != "idle", -m.launched_at, m.id))
    return tuple(m.id for m in order[: max(0, surplus)])


def _act(fleet: Fleet, desired: int, config: ScalerConfig, memory: Memory, why: str) -> Decision:
    """Move the fleet's capacity (serving + booting) to ``desired`` within min and max."""
    desired = min(config.max_instances, max(config.min_instances, desired))
    live_after = fleet.capacity + len(fleet.draining)  # stopped and unhealthy ones go now
    launch = max(0, min(desired - fleet.capacity, config.max_instances - live_after))
    return Decision(
        launch=launch,
        drain=_drains(fleet, fleet.capacity - desired),
        terminate=tuple(m.id for m in fleet.stopped),
        replace=tuple(m.id for m in fleet.unhealthy),
        desired=desired,
        reason=why,
        memory=memory,
    )


def static(observed: Observed, config: ScalerConfig, memory: Memory, now: float) -> Decision:
    """Hold ``config.min_instances`` (the planner sets min = max = N): replace, never scale."""
    fleet = sort_members(observed.members, config, now)
    return _act(fleet, config.min_instances, config, Memory(at=now), "static fleet")


def _last_all(history: tuple[tuple[float, int], ...], points: int, state: int) -> bool:
    return len(history) >= points and all(s == state for _, s in history[-points:])


def target_tracking(
    observed: Observed, config: ScalerConfig, memory: Memory, now: float
) -> Decision:
    """AWS target tracking on backlog per instance at the documented target (SLO / job time)."""
    return _target_tracking(observed, config, memory, now, backlog_target(config))


def target_tracking_at(target: float) -> PolicyFn:
    """Target tracking with its target backlog per instance set to ``target``."""

    def tracking(observed: Observed, config: ScalerConfig, memory: Memory, now: float) -> Decision:
        return _target_tracking(observed, config, memory, now, target)

    return tracking


def _target_tracking(
    observed: Observed, config: ScalerConfig, memory: Memory, now: float, target: float
) -> Decision:
    """AWS target tracking on backlog per instance (visible / in service), one call a minute.

    ``memory.needs`` holds the last 15 datapoints as (time, +1 above target / -1 below 0.9 x
    target / 0 between). Booting instances count as capacity (AWS's warm-up), so no second
    launch happens while the first ones warm up.
    """
    fleet = sort_members(observed.members, config, now)
    serving = len(fleet.serving)
    metric = observed.visible / serving if serving else math.inf if observed.visible else 0.0
    breach = 1 if metric > target else -1 if metric < TT_IN_BELOW * target else 0
    history = (*memory.needs, (now, breach))[-TT_IN_POINTS:]
    wanted = math.ceil(observed.visible / target)
    desired = fleet.capacity
    if _last_all(history, TT_OUT_POINTS, 1):
        desired = max(desired, wanted)
    elif _last_all(history, TT_IN_POINTS, -1):
        desired = min(desired, wanted)
    why = f"backlog per instance {metric:.1f} vs target {target:.2f}"
    return _act(fleet, desired, config, Memory(at=now, needs=history), why)


def hpa_recommendation(current: int, metric: float, target: float) -> int:
    """The HPA's replica count for an AverageValue external metric (KEDA activates from 0 to 1)."""
    if current == 0:
        return 1 if metric > 0 else 0
    ratio = metric / (current * target)
    if abs(ratio - 1) <= KEDA_TOLERANCE:
        return current
    return math.ceil(current * ratio)


def keda(observed: Observed, config: ScalerConfig, memory: Memory, now: float) -> Decision:
    """KEDA's aws-sqs-queue scaler at the documented queueLength (SLO / job time per replica)."""
    target = backlog_target(config)
    return _keda(observed, config, memory, now, target, KEDA_DOWN_WINDOW_S)


def keda_at(queue_length: int, down_window_s: float = KEDA_DOWN_WINDOW_S) -> PolicyFn:
    """KEDA with its queueLength per replica (a whole number, as KEDA parses it) and the HPA's
    scale-down stabilisation window set."""

    def scaled(observed: Observed, config: ScalerConfig, memory: Memory, now: float) -> Decision:
        return _keda(observed, config, memory, now, queue_length, down_window_s)

    return scaled


def _keda(
    observed: Observed,
    config: ScalerConfig,
    memory: Memory,
    now: float,
    queue_length: float,
    down_window_s: float,
) -> Decision:
    """KEDA aws-sqs-queue (queue length = visible + in flight) driving an HPA, every 15 s.

    ``memory.needs`` is the HPA's recommendation window; like the HPA it starts with the current
    replica count, so a fresh controller does not scale down at once. Scale-up is limited to
    max(2 x current, current + 4) per period; scale-down goes to the window's highest
    recommendation. KEDA's scale to zero (cooldownPeriod, also 300 s) is folded into that window.
    """
    fleet = sort_members(observed.members, config, now)
    current = fleet.capacity
    metric = observed.visible + observed.in_flight
    recommended = hpa_recommendation(current, metric, queue_length)
    seen = memory.needs or ((now, current),)
    window = (*(r for r in seen if r[0] > now - down_window_s), (now, recommended))
    if recommended > current:
        desired = min(recommended, max(2 * current, current + 4))
    else:
        desired = min(current, max(r for _, r in window))
    why = f"queue {metric} for {current} replicas; recommendation {recommended}"
    return _act(fleet, desired, config, Memory(at=now, needs=window), why)
