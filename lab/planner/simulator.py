"""The discrete-event simulation: one policy against one set of jobs, on a virtual clock.

Instances boot for ``boot_s`` (state "booting"), then take the oldest waiting job whenever they
are idle and not draining (one FIFO queue). A draining instance finishes its job, then reports
"stopped" until the policy terminates it. The policy ticks every ``policy.tick_s`` from t = 0 and
sees what the scaler would: visible = waiting jobs, in flight = running jobs plus the hidden jobs
of crashed instances, a live instance's heartbeat = now, the last 20 job durations. The scaler
itself runs off the fleet here (``self_id`` is None).

Crashes strike up instances at ``crash_per_hour`` per instance-hour: the instance stops
heartbeating, and its job, hidden until then by the heartbeat, is visible again ``visibility_s``
after the crash; no job runs twice otherwise. The run ends once the trace is over and every job
has finished; an instance is charged from launch to termination or to that end.

A policy that terminates or replaces an instance running a job, names an unknown instance or
launches above its ``max_instances`` raises ``PolicyViolation``; one that leaves jobs waiting
with none finishing for a simulated day raises ``SimulationStalled``.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass, field

from lab.planner.arrivals import Jobs, seeded
from lab.planner.errors import PolicyViolation, SimulationStalled
from lab.planner.policy import Policy
from worker.scaler.capacity import Decision, Member, Memory, Observed, State

RECENT_JOBS = 20
STALL_S = 86_400.0
_BOOT, _FINISH, _CRASH, _REVEAL = range(4)
_Event = tuple[float, int, int, "Instance | None", int]


@dataclass(frozen=True)
class SimSettings:
    """How the simulated world behaves, apart from the policy."""

    trace_s: float  # arrivals stop here; the run goes on until every job has finished
    boot_s: float = 120.0
    visibility_s: float = 300.0
    crash_per_hour: float = 0.0
    seed: int = 1


@dataclass(slots=True)
class Instance:
    """One simulated instance and its worker."""

    id: str
    launched_at: float
    up: bool = False
    job: int = -1  # the job it runs, -1 when none
    drain: bool = False
    stopped: bool = False
    ended: bool = False
    crashed_at: float | None = None
    crash_state: State = "idle"

    @property
    def takes_jobs(self) -> bool:
        """Up, healthy, not draining and idle."""
        healthy = self.crashed_at is None and not self.ended
        return healthy and self.up and self.job < 0 and not self.drain

    def state(self) -> State:
        """What its status document says."""
        if not self.up:
            return "booting"
        if self.stopped:
            return "stopped"
        if self.job < 0:
            return "idle"
        return "draining" if self.drain else "busy"

    def member(self, now: float) -> Member:
        """The scaler's view of it; a crashed one keeps its last state and heartbeat."""
        if self.crashed_at is not None:
            return Member(self.id, self.launched_at, self.crash_state, self.crashed_at, self.drain)
        heartbeat = now if self.up else None
        return Member(self.id, self.launched_at, self.state(), heartbeat, self.drain)


@dataclass
class Samples:
    """The queue and the fleet at each tick, for plots."""

    times: list[float] = field(default_factory=list)
    visible: list[int] = field(default_factory=list)
    fleet: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """What one replay produced."""

    policy: str
    finishes: tuple[float, ...]  # per job, index for index with the arrivals
    lives: tuple[tuple[float, float], ...]  # (launched, ended) per instance
    launches: int  # instances the policy launched (replacements too, the warm start not)
    replaced: int
    crashes: tuple[tuple[float, int], ...]  # (time, the job it ran or -1) per crash
    horizon_s: float
    samples: Samples


class Simulation:
    """Replays ``jobs`` against ``policy``; ``run()`` once."""

    def __init__(self, policy: Policy, jobs: Jobs, settings: SimSettings) -> None:
        self.policy, self.jobs, self.settings = policy, jobs, settings
        self.now = 0.0
        self.events: list[_Event] = []
        self.order = itertools.count()
        self.names = itertools.count(1)
        self.queue: deque[int] = deque()
        self.idle: list[Instance] = []  # may hold instances that no longer take jobs: skipped
        self.live: dict[str, Instance] = {}
        self.lives: list[tuple[float, float]] = []
        self.finishes = [-1.0] * len(jobs)
        self.recent: deque[float] = deque(maxlen=RECENT_JOBS)
        self.arrived = self.finished = self.running = self.hidden = 0
        self.ticks = self.launches = self.replaced = 0
        self.crashed: list[tuple[float, int]] = []
        self.last_finish = 0.0
        self.progress = (0.0, 0)  # (time, jobs finished) when last seen moving or empty
        self.memory = Memory()
        self.samples = Samples()
        self.crashes = seeded("crashes", settings.seed)

    def run(self) -> Run:
        """Replay until the trace is over and every job has finished."""
        for _ in range(self.policy.initial):
            self._launch(up=True)
        while self._step():
            pass
        end = max(self.settings.trace_s, self.last_finish)
        lives = self.lives + [(i.launched_at, end) for i in self.live.values()]
        return Run(
            self.policy.name,
            tuple(self.finishes),
            tuple(lives),
            self.launches,
            self.replaced,
            tuple(self.crashed),
            end,
            self.samples,
        )

    def _step(self) -> bool:
        """Handle the next event (instance events, arrivals, then ticks); False at the end."""
        at_event = self.events[0][0] if self.events else math.inf
        arrivals = self.jobs.arrivals
        at_arrival = arrivals[self.arrived] if self.arrived < len(arrivals) else math.inf
        at_tick = self.ticks * self.policy.tick_s
        now = min(at_event, at_arrival, at_tick)
        if self.finished == len(arrivals) and now > max(self.settings.trace_s, self.last_finish):
            return False
        self.now = now
        if at_event == now:
            self._event(heapq.heappop(self.events))
        elif at_arrival == now:
            self._arrive()
        else:
            self._tick()
        return True

    def _push(self, at: float, kind: int, instance: Instance | None, job: int = -1) -> None:
        heapq.heappush(self.events, (at, next(self.order), kind, instance, job))

    def _event(self, event: _Event) -> None:
        _, _, kind, instance, job = event
        if kind == _REVEAL:
            self._reveal(job)
        elif instance is None or instance.ended:
            return
        elif kind == _FINISH:
            self._finish(instance, job)
        elif kind == _BOOT:
            instance.up = True
            self._schedule_crash(instance)
            self._free(instance)
        else:
            self._crash(instance)

    def _next_idle(self) -> Instance | None:
        while self.idle:
            instance = self.idle.pop()
            if instance.takes_jobs:
                return instance
        return None

    def _run(self, instance: Instance, job: int) -> None:
        instance.job = job
        self.running += 1
        self._push(self.now + self.jobs.durations[job], _FINISH, instance, job)

    def _free(self, instance: Instance) -> None:
        """An instance with nothing to run: stop if draining, else take the next job or wait."""
        if instance.drain:
            instance.stopped = True
        elif self.queue:
            self._run(instance, self.queue.popleft())
        else:
            self.idle.append(instance)

    def _arrive(self) -> None:
        job = self.arrived
        self.arrived += 1
        instance = self._next_idle()
        if instance is None:
            self.queue.append(job)
        else:
            self._run(instance, job)

    def _finish(self, instance: Instance, job: int) -> None:
        if instance.job != job:  # crashed meanwhile: the job went back to the queue
            return
        self.finishes[job] = self.now
        self.finished += 1
        self.running -= 1
        self.last_finish = self.now
        self.recent.append(self.jobs.durations[job])
        instance.job = -1
        self._free(instance)

    def _schedule_crash(self, instance: Instance) -> None:
        rate = self.settings.crash_per_hour / 3600
        if rate > 0:
            self._push(self.now + self.crashes.expovariate(rate), _CRASH, instance)

    def _crash(self, instance: Instance) -> None:
        if instance.stopped or instance.crashed_at is not None:
            return
        instance.crash_state = instance.state()
        instance.crashed_at = self.now
        self.crashed.append((self.now, instance.job))
        if instance.job >= 0:
            self.running -= 1
            self.hidden += 1
            self._push(self.now + self.settings.visibility_s, _REVEAL, None, instance.job)
            instance.job = -1

    def _reveal(self, job: int) -> None:
        """A crashed instance's job is visible again; it is the oldest message, so it goes first."""
        self.hidden -= 1
        instance = self._next_idle()
        if instance is None:
            self.queue.appendleft(job)
        else:
            self._run(instance, job)

    def _tick(self) -> None:
        now = self.now
        self.ticks += 1
        observed = Observed(
            visible=len(self.queue),
            in_flight=self.running + self.hidden,
            delayed=0,
            members=tuple(i.member(now) for i in self.live.values()),
            job_seconds=tuple(self.recent),
        )
        decision = self.policy.decide(observed, self.policy.config, self.memory, now)
        self.memory = decision.memory
        self._apply(decision)
        self.samples.times.append(now)
        self.samples.visible.append(len(self.queue))
        self.samples.fleet.append(len(self.live))
        self._check_progress()

    def _apply(self, decision: Decision) -> None:
        for instance_id in decision.terminate:
            self._end(instance_id, "terminated")
        for instance_id in decision.replace:
            self._end(instance_id, "replaced")
            self.replaced += 1
        for instance_id in decision.drain:
            instance = self._known(instance_id, "drained")
            instance.drain = True
            if instance.up and instance.job < 0 and instance.crashed_at is None:
                instance.stopped = True
        limit = self.policy.config.max_instances
        if len(self.live) + decision.launch > limit:
            raise PolicyViolation(
                f"{self.policy.name} launched {decision.launch} at t={self.now:.0f} s with "
                f"{len(self.live)} live: above its max of {limit}"
            )
        for _ in range(decision.launch):
            self._launch()

    def _known(self, instance_id: str, verb: str) -> Instance:
        instance = self.live.get(instance_id)
        if instance is None:
            raise PolicyViolation(
                f"{self.policy.name} {verb} {instance_id} at t={self.now:.0f} s: no such live "
                "instance"
            )
        return instance

    def _end(self, instance_id: str, verb: str) -> None:
        """Terminate an instance; one still running a job would lose it, which is a violation."""
        instance = self._known(instance_id, verb)
        if instance.job >= 0:
            raise PolicyViolation(
                f"{self.policy.name} {verb} {instance_id} at t={self.now:.0f} s while it ran a "
                "job: scale-in must drain and wait for the instance to stop"
            )
        instance.ended = True
        del self.live[instance_id]
        self.lives.append((instance.launched_at, self.now))

    def _launch(self, *, up: bool = False) -> None:
        instance = Instance(f"i-{next(self.names):06d}", self.now, up=up)
        self.live[instance.id] = instance
        if up:  # the warm start: already running when the trace begins
            self._schedule_crash(instance)
            self.idle.append(instance)
        else:
            self.launches += 1
            self._push(self.now + self.settings.boot_s, _BOOT, instance)

    def _check_progress(self) -> None:
        waiting = self.arrived - self.finished
        if waiting == 0 or self.finished != self.progress[1]:
            self.progress = (self.now, self.finished)
        elif self.now - self.progress[0] > STALL_S:
            raise SimulationStalled(
                f"{self.policy.name}: {waiting} job(s) waited and none finished for a simulated "
                f"day (t={self.now:.0f} s, {len(self.live)} live instance(s))"
            )


def simulate(policy: Policy, jobs: Jobs, settings: SimSettings) -> Run:
    """Replay ``jobs`` against ``policy`` (see the module's docstring for the rules)."""
    return Simulation(policy, jobs, settings).run()
