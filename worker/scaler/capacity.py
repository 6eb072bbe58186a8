"""The scaler's policy: from what the queue and the fleet look like, and ``now``, what to do.

``decide`` is a pure function. It never reads a clock or calls AWS: the scaler loop feeds it what
it observed and applies the ``Decision``; the planner (``lab plan``) feeds it a simulated fleet on
a virtual clock. What it carries from one tick to the next is in ``Memory``, handed back with the
decision.

How many instances: the latency budget is spent on a standing queue rather than on idle
instances (a queue band). The fleet grows when the backlog's newest job would wait longer than
its share of the budget (the launch line), and shrinks only to what keeps the queue under that
line for an hour of arrivals at the high end of their noise (the drain line), or, with an empty
queue, by the instances idle now. The arrival rate is not observable on SQS; it is estimated as
completions (jobs running / mean job time, Little's law on the servers) plus the growth of the
queue, smoothed over an hour and over ten minutes. A worker receives ahead of its free slots, so
SQS's "in flight" is more than what runs: no more run than the servers up, and the rest wait in
a worker's batch, which is queued work like the visible messages (``Work``). A server is one job
slot: an instance whose worker runs k jobs at once is k servers (its ``slots``, as its status
says, weighted by the time its jobs took), so the fleet needs the servers divided by k.

Rules a user relies on: never below ``min_instances`` nor above ``max_instances``; booting
instances count as capacity already on its way; scale-in only drains (a drained instance is
terminated once its worker has stopped, so no running job is ever killed); an instance whose
heartbeat went stale (crashed, frozen) or that never came up is terminated and replaced; and
scale-in waits until the need has stayed lower for ``scale_in_after_s`` (no flapping), and
``steady_scale_in`` times as long unless the fast estimate shows demand falling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from worker.scaler.erlang import DEFAULT_QUANTILE
from worker.scaler.market import Market

State = Literal["booting", "idle", "busy", "draining", "stopped"]
MIN_TIMED_FOR_SCV = 5  # fewer timed jobs say little about how much job times vary


@dataclass(frozen=True)
class ScalerConfig:
    """What the policy is asked to hold; times in seconds."""

    min_instances: int = 0
    max_instances: int = 10
    slo_p95_s: float = 900.0  # latency target: submission to response, 95th percentile
    job_s: float = 180.0  # job time assumed until jobs have been timed
    boot_s: float = 120.0  # launch to a polling worker, as expected
    boot_timeout_s: float = 600.0  # an instance silent for this long after launch is replaced
    stale_after_s: float = 60.0  # a heartbeat older than this: crashed or frozen, replace it
    billing_s: float = 1.0  # billing granularity: 1 (per second) or 3600 (per hour)
    billing_margin_s: float = 300.0  # hourly billing: drain only in the last part of a paid hour
    scale_in_after_s: float = 60.0  # the need must stay lower this long before a drain
    steady_scale_in: float = 2.5  # ... this many times as long unless demand is seen falling
    rate_window_s: float = 3600.0  # smoothing time constant of the rate and job-time estimates
    quantile: float = DEFAULT_QUANTILE
    min_billed_s: float = 60.0  # the least a launch is billed (AWS per second: one minute)
    scale_in_sigma: float = 1.0  # drain only below the need at the rate + this many sd of noise
    launch_sigma: float = 3.0  # on a rise, launch for the rate - this many sd of noise
    rise_sigma: float = 2.0  # a rise: the fast estimate above the slow by this many of its sd
    catch_up_share: float = 0.8  # a backlog must clear within this share of the wait budget
    drain_hold_s: float = 3600.0  # a drain must last this long before the queue calls one back
    hold_sigma: float = 1.5  # ... against its arrivals plus this many sd of their count
    # Which launches are spot (worker/scaler/market.py): here, beside the bounds, so that
    # `lab provision` sets them once and a deploy (which rewrites the user-data) keeps them.
    spot_fraction: float = 0.0  # of the fleet; 0: all on-demand
    spot_fallback_after: int = 3  # interruptions within the window: on-demand only (0: never)
    spot_fallback_window_s: float = 3600.0

    @property
    def market(self) -> Market:
        """The spot settings as the market policy takes them."""
        return Market(self.spot_fraction, self.spot_fallback_after, self.spot_fallback_window_s)

    def problems(self) -> list[str]:
        """What is wrong with this configuration (empty when it is usable)."""
        found = []
        if not 0 <= self.min_instances <= self.max_instances:
            found.append(
                f"need 0 <= min ({self.min_instances}) <= max ({self.max_instances}) instances"
            )
        positive = ("slo_p95_s", "job_s", "stale_after_s", "billing_s", "rate_window_s",
                    "drain_hold_s", "spot_fallback_window_s")  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                found.append(f"{name} must be positive")
        for name in (
            "boot_s",
            "boot_timeout_s",
            "billing_margin_s",
            "scale_in_after_s",
            "steady_scale_in",
            "min_billed_s",
            "scale_in_sigma",
            "launch_sigma",
            "rise_sigma",
            "hold_sigma",
            "spot_fallback_after",
        ):
            if getattr(self, name) < 0:
                found.append(f"{name} must not be negative")
        if not 0 < self.catch_up_share <= 1:
            found.append("catch_up_share must be in (0, 1]")
        if not 0 < self.quantile < 1:
            found.append("quantile must be between 0 and 1")
        if not 0 <= self.spot_fraction <= 1:
            found.append("spot_fraction must be between 0 and 1")
        return found


@dataclass(frozen=True)
class Member:
    """One instance of the fleet: EC2's view joined with its status document (if any yet)."""

    id: str
    launched_at: float
    state: State = "booting"  # "booting" until its worker wrote a status document
    heartbeat_at: float | None = None
    drain_requested: bool = False
    interrupted: bool = False  # under a spot interruption notice: leaving, whatever it says
    slots: int = 1  # the servers it is worth (its status document says; 1 until then)


@dataclass(frozen=True)
class Observed:
    """One look at the queue and the fleet."""

    visible: int
    in_flight: int
    delayed: int
    members: tuple[Member, ...]
    job_seconds: tuple[float, ...] = ()  # recent job durations
    self_id: str | None = None  # the instance the scaler itself runs on, drained last

    @property
    def backlog(self) -> int:
        """The requests waiting on the queue: visible now, or delayed (see ``Work.backlog``)."""
        return self.visible + self.delayed


@dataclass(frozen=True)
class Work:
    """The requests as the policy counts them: on a server, or waiting for one."""

    running: int  # in flight and running: at most the servers up
    backlog: int  # visible, delayed, or in flight but held unstarted (a worker's batch)

    @property
    def outstanding(self) -> int:
        """Every request not yet answered: waiting, or running."""
        return self.running + self.backlog


@dataclass(frozen=True)
class Memory:
    """What the policy carries between ticks."""

    at: float | None = None
    rate: float = 0.0  # smoothed arrivals per second
    fast: float = 0.0  # the same, smoothed over a sixth of the window: sees a step sooner
    job_s: float | None = None  # smoothed job time
    scv: float | None = None  # smoothed squared coefficient of variation of the job time
    outstanding: int = 0  # visible + in flight + delayed at the last tick
    slots: int = 1  # servers per instance, as the serving instances last said
    needs: tuple[tuple[float, int], ...] = ()  # recent (time, need), for the scale-in window


@dataclass(frozen=True)
class Decision:
    """What to do now, and why."""

    launch: int = 0
    drain: tuple[str, ...] = ()  # tell these to stop receiving, finish and stop
    terminate: tuple[str, ...] = ()  # drained and stopped: safe to terminate
    replace: tuple[str, ...] = ()  # unhealthy: terminate (their launches are in ``launch``)
    desired: int = 0
    reason: str = ""
    memory: Memory = field(default_factory=Memory)

    @property
    def acts(self) -> bool:
        """True if the decision changes the fleet."""
        return bool(self.launch or self.drain or self.terminate or self.replace)


@dataclass(frozen=True)
class Fleet:
    """The members sorted by what the policy may do with them."""

    serving: tuple[Member, ...]
    booting: tuple[Member, ...]
    draining: tuple[Member, ...]
    stopped: tuple[Member, ...]
    unhealthy: tuple[Member, ...]

    @property
    def capacity(self) -> int:
        """Instances that serve now or soon."""
        return len(self.serving) + len(self.booting)


def sort_members(members: Sequence[Member], config: ScalerConfig, now: float) -> Fleet:
    """Split the fleet: serving, booting, draining, drained-and-stopped, unhealthy."""
    serving: list[Member] = []
    booting: list[Member] = []
    draining: list[Member] = []
    stopped: list[Member] = []
    unhealthy: list[Member] = []
    for member in members:
        if member.state == "booting" or member.heartbeat_at is None:
            silent = now - member.launched_at > config.boot_timeout_s
            (unhealthy if silent else booting).append(member)
        elif member.interrupted:
            # Reclaimed within minutes: no capacity any more, so its replacement launches now.
            draining.append(member)
        elif member.drain_requested and member.state == "stopped":
            stopped.append(member)
        elif now - member.heartbeat_at > config.stale_after_s:
            unhealthy.append(member)
        elif member.drain_requested:
            draining.append(member)
        elif member.state in ("draining", "stopped"):
            # Stopped by someone else (a re-deploy restarts it): coming back, unless it goes
            # quiet for stale_after_s, when the check above replaces it.
            booting.append(member)
        else:
            serving.append(member)
    return Fleet(tuple(serving), tuple(booting), tuple(draining), tuple(stopped), tuple(unhealthy))


def count_work(observed: Observed, fleet: Fleet) -> Work:
    """Split SQS's in-flight count: a worker takes a batch off the queue ahead of its free
    slots, so no more run than the servers of the instances up (serving or draining, each worth
    its ``slots``); the rest wait, in a worker's batch or behind a dead instance's visibility
    timeout, and count with the queue."""
    servers = sum(m.slots for m in (*fleet.serving, *fleet.draining))
    running = min(observed.in_flight, servers)
    return Work(running, observed.backlog + observed.in_flight - running)


def job_time(
    observed: Observed, memory: Memory, config: ScalerConfig, now: float
) -> tuple[float, float | None]:
    """Mean job time and its squared coefficient of variation (None until enough were timed):
    the recent durations, smoothed like the rate (a mean of twenty varied jobs swings by a fifth
    from tick to tick); the configured guess before any were timed."""
    timed = [s for s in observed.job_seconds if s > 0]
    if not timed:
        return memory.job_s or config.job_s, memory.scv
    mean = sum(timed) / len(timed)
    scv = None
    if len(timed) >= MIN_TIMED_FOR_SCV:
        scv = sum((s - mean) ** 2 for s in timed) / (len(timed) - 1) / mean**2
    if memory.job_s is None or memory.at is None:
        return mean, scv
    weight = 1.0 - math.exp(-max(0.0, now - memory.at) / config.rate_window_s)
    if scv is not None and memory.scv is not None:
        scv = memory.scv + weight * (scv - memory.scv)
    return memory.job_s + weight * (mean - memory.job_s), scv if scv is not None else memory.scv


def estimate_rate(
    work: Work, memory: Memory, job_s: float, config: ScalerConfig, now: float
) -> tuple[float, float]:
    """Arrivals/s, smoothed slow and fast: completions (running / job time) plus the growth of
    what is outstanding. The slow estimate is used; it jumps to the fast one when the two differ
    by more than Poisson noise could explain (3 sigma): a step in demand, not a blip."""
    outstanding = work.outstanding
    completions = work.running / job_s
    if memory.at is None or now <= memory.at:
        return completions, completions
    elapsed = now - memory.at
    sample = completions + (outstanding - memory.outstanding) / elapsed
    quick = config.rate_window_s / 6
    slow = memory.rate + (1.0 - math.exp(-elapsed / config.rate_window_s)) * (sample - memory.rate)
    fast = memory.fast + (1.0 - math.exp(-elapsed / quick)) * (sample - memory.fast)
    slow, fast = max(0.0, slow), max(0.0, fast)
    noise = math.sqrt(max(slow, fast, 1.0 / quick) / (2 * quick))  # sd of the fast estimate
    return (fast if abs(fast - slow) > 3 * noise else slow), fast


def budget_s(job_s: float, config: ScalerConfig, scv: float | None = None) -> float:
    """What a job may wait and still be on time: the SLO less a long job's run, the mean plus one
    standard deviation of the timed jobs (just the mean until they were timed, or when they all
    take the same time). With heavy-tailed jobs the mean would leave the long ones no time."""
    spread = math.sqrt(scv) if scv else 0.0
    return max(config.slo_p95_s - job_s * (1 + spread), 0.1 * job_s)


def slots_per_instance(fleet: Fleet, memory: Memory) -> int:
    """Servers per instance: the median of the servers the serving instances say they are worth
    (the lower middle one: a mixed fleet is not counted bigger than it is); the last known
    without any."""
    said = sorted(m.slots for m in fleet.serving)
    return max(1, said[(len(said) - 1) // 2]) if said else memory.slots


def instances(servers: int, slots: int) -> int:
    """Instances that give ``servers`` job slots at ``slots`` each."""
    return math.ceil(servers / max(1, slots))


def need(
    work: Work,
    rate: float,
    fast: float,
    job_s: float,
    clear_s: float,
    config: ScalerConfig,
    slots: int = 1,
) -> tuple[int, str]:
    """Instances to launch up to (before min/max), and the reason in words.

    The latency budget is spent on a queue, not on idle instances: the fleet grows when the
    backlog's newest job, B·job/c on c servers, would wait longer than ``clear_s`` (the launch
    line). Only on a rise the estimates can tell from noise (the fast one above the slow by
    ``rise_sigma`` of its sd) is it sized ahead of the queue, for the work at the rate less
    ``launch_sigma`` sd (a utilisation of one: the queue covers the rest). A launch for a rate
    that merely wobbles would be drained again within the hour.
    """
    ahead = 0
    if fast > rate + config.rise_sigma * fast_noise(rate, config):
        low = max(0.0, rate - config.launch_sigma * rate_noise(rate, config))
        ahead = instances(math.ceil(low * job_s - 1e-9), slots)
    backlog = work.backlog
    catch_up = instances(math.ceil(backlog * job_s / clear_s), slots)
    per = f", {slots} jobs at once each" if slots > 1 else ""
    if catch_up > ahead:
        return catch_up, f"backlog {backlog} must clear within {clear_s:.0f} s{per}"
    return ahead, (
        f"{rate * 3600:.0f} jobs/h of {job_s:.0f} s; queue spends {clear_s:.0f} s wait{per}"
    )


def rate_noise(rate: float, config: ScalerConfig) -> float:
    """The standard deviation of the slow rate estimate from Poisson arrivals alone: an
    exponential average over ``rate_window_s`` of a process of ``rate`` per second."""
    return math.sqrt(rate / (2 * config.rate_window_s))


def fast_noise(rate: float, config: ScalerConfig) -> float:
    """The same for the fast estimate, smoothed over a sixth of the window."""
    return rate_noise(rate, config) * math.sqrt(6)


def keep_need(
    work: Work,
    fleet: Fleet,
    rate: float,
    fast: float,
    job_s: float,
    clear_s: float,
    config: ScalerConfig,
    slots: int = 1,
) -> int:
    """The fewest instances scale-in may leave: fewer would need a launch back within
    ``drain_hold_s``. A fleet of c below the work keeps its instances busy on a growing queue,
    which is free; what costs is an idle instance or a launch (a boot's paid idle time). So c may
    drop to what keeps the backlog B under the launch line (c·clear_s/job) for the hold h against
    the arrivals A at the high rate r, counted with ``hold_sigma`` sd of their Poisson noise:
    c ≥ (B + A)·job / (h + clear_s), A = r·h + hold_sigma·√(r·h). The high rate is:

    - noise: the slow estimate plus ``scale_in_sigma`` sd; with an empty queue, the lower of that
      and the fast estimate plus its sd (it sees a fall an hour sooner; while a queue stands, the
      queue itself shows a fall, and the noisier fast estimate would drain into wobbles);
    - trend: at least the rate projected one boot time (plus the scale-in window) ahead from the
      fast estimate's lead over the slow one, so a rising demand is not drained into.

    With an empty queue, instances idle now are evidence the estimates lag a falling demand: the
    fleet may drop to those busy. And it may drop to zero when a launch for each arrival (a boot
    and a scale-in window, at the rate the fast estimate sees) costs less than one instance idle.
    """
    window = config.rate_window_s
    noise = rate_noise(rate, config)
    slope = (fast - rate) / (window * 5 / 6)  # a ramp puts the fast EMA this far ahead
    ahead = fast + slope * (window / 6 + config.boot_s + config.scale_in_after_s)
    backlog = work.backlog
    high = rate + config.scale_in_sigma * noise
    if not backlog:
        high = min(high, fast + fast_noise(rate, config))
    high = max(high, ahead)
    hold = config.drain_hold_s
    arrivals = high * hold + config.hold_sigma * math.sqrt(high * hold)
    keep = math.ceil((backlog + arrivals) * job_s / (hold + clear_s) - 1e-9)
    if backlog:
        return instances(keep, slots)
    idle = sum(1 for m in fleet.serving if m.state == "idle")
    busy = (fleet.capacity - idle) * max(1, slots)
    keep = max(work.running, min(busy, math.ceil(high * job_s - 1e-9)))
    seen = max(0.0, min(high, fast))
    if keep == 0 and seen * (config.boot_s + config.scale_in_after_s) >= 1 - seen * job_s:
        return 1
    return instances(keep, slots)


def decide(observed: Observed, config: ScalerConfig, memory: Memory, now: float) -> Decision:
    """The policy: launch, drain, terminate and replace, from ``observed`` at time ``now``."""
    job_s, scv = job_time(observed, memory, config, now)
    fleet = sort_members(observed.members, config, now)
    work = count_work(observed, fleet)
    rate, fast = estimate_rate(work, memory, job_s, config, now)
    slots = slots_per_instance(fleet, memory)
    clear_s = budget_s(job_s, config, scv) * config.catch_up_share
    wanted, why = need(work, rate, fast, job_s, clear_s, config, slots)
    wanted = min(config.max_instances, max(config.min_instances, wanted))
    keep_n = keep_need(work, fleet, rate, fast, job_s, clear_s, config, slots)
    keep = min(config.max_instances, max(wanted, keep_n))
    # A drain waits out the window, ``steady_scale_in`` times longer while the surplus could be
    # noise. It is not when the fast estimate shows demand falling (by one sd), nor when, with
    # an empty queue, more are surplus than the busy count's sd (Poisson: the root of the work):
    # then each minute of idle instances is paid for nothing.
    idle_surplus = not work.backlog and (fleet.capacity - keep > math.sqrt(rate * job_s))
    falling = fast < rate - fast_noise(rate, config) or idle_surplus
    wait_s = config.scale_in_after_s * (1.0 if falling else max(1.0, config.steady_scale_in))
    kept = now - config.scale_in_after_s * max(1.0, config.steady_scale_in)
    # A scaler that just started (a new leader) knows no history: it keeps the fleet it found
    # for one window rather than drain it on a single look at an idle moment.
    known = memory.needs if memory.at is not None else ((now, fleet.capacity),)
    needs = (*(n for n in known if n[0] > kept), (now, keep))
    memory = Memory(
        at=now,
        rate=rate,
        fast=fast,
        job_s=job_s,
        scv=scv,
        outstanding=work.outstanding,
        needs=needs,
        slots=slots,
    )
    # scale in only to the highest need of the window
    held = max((n for t, n in needs if t > now - wait_s), default=keep)
    target = wanted if wanted >= fleet.capacity else min(fleet.capacity, held)
    live_after = fleet.capacity + len(fleet.draining)  # unhealthy and stopped ones go now
    launch = max(0, min(target - fleet.capacity, config.max_instances - live_after))
    drain = pick_drains(fleet, fleet.capacity - target, config, now, observed.self_id)
    reason = why
    if launch:
        reason = f"launch {launch}: need {wanted}, have {fleet.capacity}; {why}"
    elif drain:
        reason = f"drain {len(drain)}: need {held} over {wait_s:.0f} s; {why}"
    if fleet.unhealthy:
        reason += f"; replace unhealthy {', '.join(m.id for m in fleet.unhealthy)}"
    return Decision(
        launch=launch,
        drain=drain,
        terminate=tuple(m.id for m in fleet.stopped),
        replace=tuple(m.id for m in fleet.unhealthy),
        desired=target,
        reason=reason,
        memory=memory,
    )


def pick_drains(
    fleet: Fleet, surplus: int, config: ScalerConfig, now: float, self_id: str | None
) -> tuple[str, ...]:
    """Which serving instances to drain: idle before busy, the scaler's own last; with hourly
    billing only those near the end of a paid hour (the rest of the hour is paid anyway)."""
    surplus = min(surplus, len(fleet.serving))  # booting ones are never drained
    if surplus <= 0:
        return ()

    def paid_left(member: Member) -> float:
        if config.billing_s <= 1:
            return 0.0
        used = max(0.0, now - member.launched_at) % config.billing_s
        return config.billing_s - used

    # An instance younger than the minimum bill is paid for that long anyway: keep it until then.
    eligible = [
        m
        for m in fleet.serving
        if paid_left(m) <= config.billing_margin_s and now - m.launched_at >= config.min_billed_s
    ]
    order = sorted(eligible, key=lambda m: (m.id == self_id, m.state != "idle", paid_left(m)))
    return tuple(m.id for m in order[:surplus])
