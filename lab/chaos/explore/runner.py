"""Play a schedule on a lab: send its jobs and start and stop its faults on time, read the
responses meanwhile, let the system settle, gather the evidence and check it."""

from __future__ import annotations

import contextlib
import heapq
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lab.chaos.evidence import (
    Evidence,
    Response,
    fleet_size,
    gather,
    read_callbacks,
    read_dead_letters,
    read_queue,
)
from lab.chaos.explore import checker, nemesis
from lab.chaos.explore.arena import Arena
from lab.chaos.explore.checker import Sent
from lab.chaos.explore.schedule import JobPlan, Schedule
from lab.chaos.explore.workload import Client
from lab.chaos.harness import ChaosLab, Setup, lab_home
from lab.ec2.bodies import reap
from lab.errors import LabError
from lab.net.latency import model_for
from lab.net.proxy import Proxy, Route
from lab.net.serve import read_counts
from lab.runtime import procs, stack
from lab.runtime import scaler as lab_scaler
from lab.runtime.resources import LabEnv, clients_for
from lab.runtime.settings import LabSettings
from worker.errors import FleetlabError

Say = Callable[[str], None]
# The explorer's lab on its own time scale: a crashed or frozen instance is replaced after 30 s
# (10 s also replaced instances a rollout was re-booting on a loaded machine).
EXPLORE_SCALER = {"stale_after_s": 30.0, "scale_in_after_s": 10.0}
# A schedule with spot interruptions runs a fleet that is half spot: its first instances are
# spot, and the scaler keeps half of it spot, so a notice always has a spot instance to hit
# (an on-demand base is left). No fallback to on-demand: the explorer looks for what the
# interruptions break; the fallback has tests of its own.
EXPLORE_SPOT = {"spot_fraction": 0.5, "spot_fallback_after": 0}
SETTLE_IDLE_S = 45.0  # give up settling once nothing new was answered for this long
SETTLE_MAX_S = 300.0
# Answered is not yet gone: a delete is settled with the next batch, and an answered poison
# request stays hidden a few seconds (its reason's lead) before SQS dead-letters it.
DRAIN_S = 15.0


@dataclass
class Outcome:
    """One run of a schedule."""

    schedule: Schedule
    env: str
    verdict: checker.Verdict | None
    timeline: list[dict[str, Any]]
    samples: list[tuple[float, int, int, int, int]]  # t, fleet, visible, in flight, answered
    seconds: float
    error: str | None = None
    figures: dict[str, float] = field(default_factory=dict)
    aws_calls: dict[str, int] = field(default_factory=dict)  # through a proxy with AWS latency

    @property
    def passed(self) -> bool:
        """The run finished and every rule held."""
        return self.error is None and self.verdict is not None and self.verdict.passed


def clean_folder(base: LabSettings, schedule: Schedule, shrinking: bool = False) -> Path:
    """Where a clean run's lab lives — its instances' user-data and logs stay there after it.
    The shrinker replays beside it, not in it: the failed run is the one to read."""
    return lab_home(base, f"explore-{schedule.seed}{'-shrink' if shrinking else ''}")


@contextlib.contextmanager
def clean_arena(base: LabSettings, schedule: Schedule, shrinking: bool = False) -> Iterator[Arena]:
    """A clean lab of the run's own (as the scenarios have), in ``clean_folder``, with the proxy
    on the instances' path when the schedule has network faults; taken down afterwards,
    whatever happens."""
    setup = Setup(
        instances=schedule.instances,
        bounds=schedule.bounds,
        visibility_timeout_s=schedule.visibility_timeout_s,
        max_receive_count=schedule.max_receive_count,
        spot=schedule.spot,
    )
    lab = ChaosLab(base, clean_folder(base, schedule, shrinking).name, schedule.seed, setup)
    proxy = None
    if schedule.proxy:  # the explorer's own proxy, with the lab's latency model as its base
        model = model_for(base.latency, schedule.seed)
        proxy = Proxy(
            [
                Route("emulator", "127.0.0.1", lab.settings.emulator_port, aws=bool(model)),
                Route("receiver", "127.0.0.1", lab.settings.receiver_port),
            ],
            seed=schedule.seed,
            latency=model,
        ).start()
        extra = {"FLEETLAB_ENDPOINT_URL": proxy.url("emulator")}
        lab.settings = replace(
            lab.settings, latency="none", instance_env={**lab.settings.instance_env, **extra}
        )
    try:
        lab.up()
        arena = Arena(lab.settings, lab.env, lab.clients, proxy, bounds=schedule.bounds)
        market = EXPLORE_SPOT if schedule.spot else {}
        lab_scaler.write_config(arena.store, EXPLORE_SCALER | market)
        start_backstop(lab.settings, lab.env)
        yield arena
    finally:
        with contextlib.suppress(FleetlabError, OSError):
            procs.stop(BACKSTOP, lab.settings.pids, grace_s=10)
            lab.down()
        reap()
        if proxy:
            proxy.stop()


BACKSTOP = "scaler-backstop"


def start_backstop(settings: LabSettings, env: LabEnv) -> int:
    """A scaler outside the fleet (as `lab scaler run`), which leads only while no instance
    holds the lease. Without it, found by the explorer: crash the leader's body and terminate
    the other instance before the lease expires, and no scaler is left to replace either; the
    fleet stays dead and every request waits forever."""
    argv = [sys.executable, "-m", "worker.scaler"]
    loop = lab_scaler.loop_env(settings, env, "lab-backstop")
    return procs.start(
        BACKSTOP,
        argv,
        settings.pids,
        settings.logs,
        stack.base_env(settings.env) | loop,
        Path.cwd(),
    )


@contextlib.contextmanager
def running_arena(settings: LabSettings, schedule: Schedule) -> Iterator[Arena]:
    """The lab `lab up` started (left running afterwards). Its instances talk to the emulator
    directly, so only the receiver's route can go through the explorer's proxy."""
    env = LabEnv.load(settings.home)
    low, high = stack.load_bounds(settings.home)
    if not high:
        raise LabError("the running lab has no fleet of instances: `lab up` one, or use --clean")
    proxy = None
    if schedule.proxy:
        port = int((env.receiver_url or settings.receiver_url).rsplit(":", 1)[1])
        proxy = Proxy([Route("receiver", "127.0.0.1", port)], seed=schedule.seed).start()
    try:
        yield Arena(settings, env, clients_for(env), proxy, bounds=(low, high))
    finally:
        reap()
        if proxy:
            proxy.stop()


class Player:
    """Plays one schedule on one arena: the clock, the client, the faults, the evidence."""

    def __init__(self, arena: Arena, schedule: Schedule, say: Say) -> None:
        self.arena = arena
        self.schedule = schedule
        self.say = say
        self.client = Client(arena)
        self.evidence = Evidence()
        self.samples: list[tuple[float, int, int, int, int]] = []
        self.answered: set[str] = set()
        self.memos: dict[int, nemesis.Memo] = {}

    def act(self, index: int, stop: bool) -> None:
        """Start (or stop) fault ``index`` of the schedule; put what it did on the timeline."""
        fault = self.schedule.faults[index]
        kind = nemesis.REGISTRY[fault.kind]
        rng = random.Random(f"{self.schedule.seed}:{index}")  # noqa: S311 (seeded, repeatable)
        how = kind.stop if stop else kind.start
        if how is None:
            return
        try:
            what = how(self.arena, fault, rng, self.memos.setdefault(index, {"index": index}))
        except (FleetlabError, BotoCoreError, ClientError, OSError, RuntimeError) as exc:
            what = f"failed: {type(exc).__name__}: {exc}"
        self.arena.mark(fault.kind, fault.target, ("end: " if stop else "") + what, index=index)

    def poll(self) -> None:
        """Take the responses off the response queue; sample fleet, queue depth, answers."""
        arena = self.arena
        with contextlib.suppress(BotoCoreError, ClientError):
            got = read_queue(arena.clients, arena.env.response_queue_url, time.time())
            self.evidence.queue += got
            self.answered.update(r.request_id for r in got)
        if len(self.samples) % 5 == 0:  # the receiver's whole journal: not every second
            self.read_callbacks()
        size = fleet_size(arena.clients, arena.env)
        self.samples.append((round(arena.now(), 2), size, *_depth(arena), len(self.answered)))

    def run(self) -> list[Sent]:
        """Send every job and act every fault on time; return what was sent."""
        jobs = sorted(self.schedule.jobs, key=lambda j: j.at)
        starts = sorted(enumerate(self.schedule.faults), key=lambda p: p[1].at)
        stops: list[tuple[float, int]] = []
        pending: list[JobPlan] = []
        i = j = 0
        last_poll = -1.0
        while i < len(jobs) or j < len(starts) or stops or pending:
            t = self.arena.now()
            while stops and stops[0][0] <= t:  # ends first: a knob two faults share is
                self.act(heapq.heappop(stops)[1], stop=True)  # then left to the later one
            while j < len(starts) and starts[j][1].at <= t:
                index, fault = starts[j]
                self.act(index, stop=False)
                if nemesis.REGISTRY[fault.kind].stop is not None:
                    heapq.heappush(stops, (fault.at + fault.duration, index))
                j += 1
            while i < len(jobs) and jobs[i].at <= t:
                pending.append(jobs[i])
                i += 1
            self.send(pending)
            if self.arena.restarted.is_set():
                self.resubmit()
            if t - last_poll >= 1.0:
                last_poll = t
                self.poll()
            time.sleep(0.05)
        return self.client.sent

    def send(self, pending: list[JobPlan]) -> None:
        """Send what is due, in order; stop at the first failure (the emulator away)."""
        while pending:
            try:
                self.client.send(pending[0])
            except (BotoCoreError, ClientError):
                return
            pending.pop(0)

    def resubmit(self) -> None:
        """After the emulator forgot everything: the client sends again what has no answer."""
        self.arena.restarted.clear()
        self.read_callbacks()
        missing = sorted({s.key for s in self.client.sent} - self.answered)
        for key in missing:
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.resend(key)
        self.arena.mark("workload", "-", f"resubmitted {len(missing)} unanswered request(s)")

    def read_callbacks(self) -> None:
        """Count what the receiver has recorded as answered."""
        with contextlib.suppress(OSError, ValueError):
            self.answered.update(r.request_id for r in read_callbacks(self.arena.receiver_url))

    def settle(self) -> None:
        """Wait until every request sent is answered or dead-lettered, or nothing moves while
        no background act (a rollout, a restart) is under way; ``SETTLE_MAX_S`` at most."""
        deadline = time.monotonic() + SETTLE_MAX_S
        progress_at, seen = time.monotonic(), -1
        while time.monotonic() < deadline and time.monotonic() - progress_at < SETTLE_IDLE_S:
            self.poll()
            if self.arena.restarted.is_set():
                self.resubmit()
            self.read_callbacks()
            with contextlib.suppress(BotoCoreError, ClientError):
                self.evidence.dead_letters |= read_dead_letters(
                    self.arena.clients, self.arena.env.dead_letter_queue_url
                )
            done = self.answered | set(self.evidence.dead_letters.values())
            if not {s.key for s in self.client.sent} - done and not self.arena.busy:
                return
            if len(done) != seen or self.arena.busy:
                # A rollout or restart under way is the lab still acting, not a standstill.
                seen, progress_at = len(done), time.monotonic()
            time.sleep(2.0)


def play(arena: Arena, schedule: Schedule, say: Say, mine: str = "") -> Outcome:
    """Run ``schedule`` on ``arena`` and check the evidence. ``mine``: a request-id prefix that
    marks this run's traffic on a shared lab (responses to others are not this run's)."""
    arena.started = began = time.monotonic()
    player = Player(arena, schedule, say)
    sent = player.run()
    arena.mark("workload", "-", f"{len(sent)} message(s) sent; settling")
    say(f"explore: {len(sent)} sent, {len(schedule.faults)} fault(s); settling")
    player.settle()
    visible, in_flight = _drained(arena, DRAIN_S)
    unsettled = None
    if visible + in_flight:  # not lost: the fleet did not get to them (too slow, or stuck)
        unsettled = f"did not settle: {visible + in_flight} message(s) still in the request queue"
        arena.mark("workload", "-", unsettled)
    time.sleep(1.5)  # the workers ship their log lines every 0.2 s
    spent = frozenset(arena.spent)
    evidence = gather(arena.clients, arena.env, player.evidence, time.time(), spent)
    if mine:
        keys = {s.key for s in sent}

        def ours(r: Response) -> bool:
            return r.request_id in keys or r.request_id.startswith(mine)

        evidence.callbacks = [r for r in evidence.callbacks if ours(r)]
        evidence.queue = [r for r in evidence.queue if ours(r)]
    fleet_samples = [(began + t, n) for t, n, *_ in player.samples]
    context = checker.Context(fleet=fleet_samples, bounds=arena.bounds, spent=spent)
    verdict = checker.check(evidence, sent, context)
    arena.mark("checked", "-", "passed" if verdict.passed else "FAILED")
    seconds = time.monotonic() - began
    return Outcome(
        schedule, arena.env.env, verdict, arena.timeline, player.samples, seconds, unsettled,
        aws_calls=aws_calls(arena),
    )  # fmt: skip


def aws_calls(arena: Arena) -> dict[str, int]:
    """The instances' AWS calls by operation that went through a proxy with a latency model:
    the explorer's own, else the lab's (`lab.net.serve`); none on a direct network."""
    if arena.proxy is not None and arena.proxy.latency is not None:
        return arena.proxy.calls().get("emulator", {})
    if arena.settings.latency == "none":
        return {}
    try:
        return read_counts(stack.proxy_counts(arena.settings)).get("emulator", {})
    except ValueError:
        return {}


def _drained(arena: Arena, patience_s: float) -> tuple[int, int]:
    """The request queue's depth (visible, in flight), once empty or after ``patience_s``."""
    deadline = time.monotonic() + patience_s
    while sum(depth := _depth(arena)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return depth


def _depth(arena: Arena) -> tuple[int, int]:
    try:
        attributes = arena.clients.sqs.get_queue_attributes(
            QueueUrl=arena.env.request_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
    except (BotoCoreError, ClientError):
        return 0, 0
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )
