"""The nemesis: a registry of fault kinds. Each kind says how to draw one (how long, aimed at
what, with which parameters) and how to start and stop it on an ``Arena``. A new kind is one
``register`` call; the explorer draws from whatever is registered.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lab.chaos.evidence import request_key
from lab.chaos.explore.arena import Arena
from lab.chaos.explore.schedule import FaultPlan
from lab.deploy import rollout
from lab.ec2 import spot
from lab.net.proxy import Fault
from lab.runtime import emulator, recovery, stack
from worker.errors import FleetlabError

Memo = dict[str, Any]  # what a fault's start leaves for its stop
Act = Callable[[Arena, FaultPlan, random.Random, Memo], str]


@dataclass(frozen=True)
class Kind:
    """One kind of fault."""

    name: str
    summary: str
    draw: Callable[[random.Random], FaultPlan]  # ``at`` is set by the caller
    start: Act  # returns what it did, in words
    stop: Act | None = None  # undoes it after ``duration`` (None: a single act)
    needs_proxy: bool = False  # acts on the instances' routes through the lab's proxy
    needs_spot: bool = False  # acts on spot instances: the clean lab's fleet is then part spot
    default: bool = True  # drawn when no --faults list names the kinds


REGISTRY: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind of fault (a later one of the same name replaces it)."""
    REGISTRY[kind.name] = kind
    return kind


def kinds(names: list[str] | None) -> list[Kind]:
    """The kinds named (all defaults when None); ``KeyError`` names an unknown one."""
    if names is None:
        return [k for k in REGISTRY.values() if k.default]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(
            f"unknown fault kind {', '.join(unknown)}: choose from {', '.join(REGISTRY)}"
        )
    return [REGISTRY[n] for n in names]


def plan(kind: str, duration: float = 0.0, target: str = "any", **params: object) -> FaultPlan:
    """A fault of ``kind`` (its ``at`` set later)."""
    return FaultPlan(0.0, kind, round(duration, 2), target, dict(params))


def background(arena: Arena, name: str, index: int, work: Callable[[], str]) -> str:
    """Run a long act (a rollout, a restart) on a thread, one of a kind at a time."""
    with arena.lock:
        if name in arena.busy:
            return "skipped: one already under way"
        arena.busy.add(name)

    def go() -> None:
        try:
            arena.mark(name, "-", work(), index=index)
        except (FleetlabError, BotoCoreError, ClientError, OSError) as exc:
            arena.mark(name, "-", f"ended: {type(exc).__name__}: {exc}", index=index)
        finally:
            with arena.lock:
                arena.busy.discard(name)

    threading.Thread(target=go, name=f"nemesis-{name}", daemon=True).start()
    return "started"


# ----------------------------------------------------------------------------- instance kinds


def _instance(arena: Arena, fault: FaultPlan, rng: random.Random) -> str | None:
    if fault.target != "leader":
        return arena.pick(rng)
    leader = arena.leader()  # the lab's backstop scaler may lead: it has no body to crash
    return leader if leader in arena.live() else None


def _crash(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    victim = _instance(arena, fault, rng)
    if victim is None:
        return "no instance to crash"
    arena.body("crash", victim)
    return f"crashed {victim}"


def _freeze(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    victim = arena.pick(rng)
    if victim is None:
        return "no instance to freeze"
    arena.body("freeze", victim)
    memo["frozen"] = victim  # its stop thaws the same body
    return f"froze {victim}"


def _thaw(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    victim = memo.get("frozen")
    if not isinstance(victim, str):
        return "nothing frozen"
    try:
        arena.body("thaw", victim)
    except FleetlabError as exc:  # terminated as unhealthy meanwhile: gone with its body
        return f"{victim} not thawed: {exc}"
    return f"thawed {victim}"


def _terminate(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    victim = arena.pick(rng)
    if victim is None:
        return "no instance to terminate"
    arena.terminate(victim)
    return f"terminated {victim} through EC2"


def _interrupt(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    """A spot interruption as AWS gives one: the notice in the instance's metadata, the
    instance reclaimed through EC2 when it runs out. Its worker should hand its job back at
    once; the checker then finds the job answered once, by another instance."""
    picked = arena.pick_spot(rng)
    if picked is None:
        return "no spot instance to interrupt (none, or all under notice)"
    victim, busy = picked
    notice = float(fault.params.get("notice_s", spot.MIN_NOTICE_S))
    arena.interrupt(victim, notice)
    memo["interrupted"] = victim
    return f"{notice:g} s interruption notice to {victim} ({'busy' if busy else 'idle'})"


def _reclaimed(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    victim = memo.get("interrupted")
    if not isinstance(victim, str):
        return "nothing interrupted"
    if victim in arena.live():
        return f"{victim} still running after its notice"
    return f"{victim} reclaimed through EC2"


# ---------------------------------------------------------------------------- queue kinds


def _duplicate(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    if not arena.bodies:
        return "nothing sent yet"
    body = rng.choice(arena.bodies)
    copies = int(fault.params.get("copies", 2))
    for _ in range(copies):
        arena.clients.sqs.send_message(
            QueueUrl=arena.env.request_queue_url, MessageBody=body.decode()
        )
    return f"{copies} more copies of a request sent"


def _expire(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    """A consumer takes messages and loses them: they come back when its 1 s hold expires,
    with their receive count raised, and go to whichever worker receives next. A message it
    took before is handed back at once: its receives are the redrive policy's budget, and a
    queue that returns its oldest first would otherwise feed it the same one every time.

    A take that lands on a message's last receive spends it: SQS dead-letters it on the next
    receive, and no worker ever sees it to log why. Nothing can undo a receive, so the fault
    says so, and the checker takes this fault's word as the dead letter's reason."""
    sqs, url = arena.clients.sqs, arena.env.request_queue_url
    taken = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=int(fault.params.get("messages", 2)),
        VisibilityTimeout=1,
        WaitTimeSeconds=0,
        MessageSystemAttributeNames=["ApproximateReceiveCount"],
    ).get("Messages", [])
    again = [m for m in taken if m["MessageId"] in arena.expired]
    for message in again:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )
    arena.expired.update(m["MessageId"] for m in taken)
    limit = arena.env.max_receive_count
    spent = sorted(
        request_key(m["Body"], m["MessageId"])
        for m in taken
        if 0 < limit <= int(m.get("Attributes", {}).get("ApproximateReceiveCount", "0"))
    )
    arena.spent.update(spent)
    what = f"{len(taken) - len(again)} message(s) taken and left to expire ({len(again)} again)"
    if spent:
        what += f"; {', '.join(spent)} on its last receive: dead-lettered by this fault"
    return what


# ----------------------------------------------------------------------------- callback kinds


def _callback_500(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    n = int(fault.params.get("fail_next", 2))
    arena.receiver(fail_next=n)
    return f"the receiver answers the next {n} callback(s) 500"


def _callback_slow(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    delay = float(fault.params.get("delay_s", 1.0))
    arena.receiver(delay_s=delay)
    return f"the receiver answers after {delay:g} s"


def _callback_fast(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    arena.receiver(delay_s=0)
    return "the receiver answers at once again"


# ------------------------------------------------------------------------------ network kinds


def _route(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    spec = Fault(**{k: v for k, v in fault.params.items() if k in Fault.__dataclass_fields__})
    arena.route(fault.target, spec)
    return f"route {fault.target}: {spec}"


def _heal(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    arena.route(fault.target, Fault())
    return f"route {fault.target} healed"


# ---------------------------------------------------------------------------- fleet-wide kinds


def _bad_deploy(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    def work() -> str:
        made = stack.deploy(arena.settings, arena.env, arena.clients, broken=True)

        def say(what: str) -> None:
            arena.mark("bad-deploy", "-", what)

        roll = rollout.Rollout(arena.settings.home, arena.env, arena.clients, 8, 10, say, boot_s=40)
        try:
            roll.run()
        except rollout.RolloutFailed as exc:
            return f"{made.version}: {exc}"
        return f"{made.version}: the rollout did not stop (no instance ran it)"

    return background(arena, "bad-deploy", int(memo.get("index", -1)), work)


def _restart_emulator(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    def work() -> str:
        emulator.restart(arena.settings, stack.base_env(arena.settings.env))
        done = recovery.recover(arena.settings, arena.env)
        arena.restarted.set()  # the client resubmits what it has no answer for
        return f"emulator restarted (empty); {'; '.join(done) or 'nothing to recover'}"

    return background(arena, "emulator-restart", int(memo.get("index", -1)), work)


def _draw_interruption(rng: random.Random) -> FaultPlan:
    # AWS's two minutes, compressed as the lab compresses them (at least 10 s, so that the
    # worker's 2 s metadata poll sees it); the fault lasts until a moment after the reclaim.
    notice = round(rng.uniform(spot.MIN_NOTICE_S, 2 * spot.MIN_NOTICE_S), 1)
    return plan("spot-interruption", notice + RECLAIM_SLACK_S, "spot", notice_s=notice)


RECLAIM_SLACK_S = 2.0  # the hypervisor reclaims within its 0.5 s tick; then EC2 says so


for _kind in (
    Kind("crash", "SIGKILL an instance's body (EC2 still says running)",
         lambda r: plan("crash"), _crash),
    Kind("freeze", "SIGSTOP a body for a while (a zombie holding its messages), then SIGCONT",
         lambda r: plan("freeze", r.uniform(2, 12)), _freeze, _thaw),
    Kind("terminate", "terminate an instance through EC2 (the scaler replaces it)",
         lambda r: plan("terminate"), _terminate),
    Kind("leader-kill", "crash the body of the scaler's lease holder",
         lambda r: plan("leader-kill", target="leader"), _crash),
    Kind("spot-interruption", "a spot instance (a busy one if any) gets its interruption notice; "
         "EC2 reclaims it when the notice runs out",
         _draw_interruption, _interrupt, _reclaimed, needs_spot=True),
    Kind("duplicate", "send more copies of a request already sent",
         lambda r: plan("duplicate", copies=r.randint(1, 3)), _duplicate),
    Kind("visibility-expiry", "take messages off the queue and let their visibility expire",
         lambda r: plan("visibility-expiry", messages=r.randint(1, 2)), _expire),
    Kind("callback-500", "the receiver answers the next callbacks with 500",
         lambda r: plan("callback-500", fail_next=r.randint(1, 4)), _callback_500),
    Kind("callback-slow", "the receiver answers slowly for a while",
         lambda r: plan("callback-slow", r.uniform(3, 10), delay_s=round(r.uniform(0.3, 2.0), 2)),
         _callback_slow, _callback_fast),
    Kind("callback-refuse", "connections to the receiver are reset for a while (proxy)",
         lambda r: plan("callback-refuse", r.uniform(2, 8), "receiver", refuse=True),
         _route, _heal, needs_proxy=True),
    Kind("bad-deploy", "publish a bundle whose start-up fails and roll it out (rolled back)",
         lambda r: plan("bad-deploy"), _bad_deploy),
    Kind("net-latency", "added latency between instances and an endpoint (proxy)",
         lambda r: plan("net-latency", r.uniform(3, 12), r.choice(["emulator", "receiver"]),
                        latency_s=round(r.uniform(0.02, 0.3), 3)), _route, _heal, needs_proxy=True),
    Kind("net-reset", "connections to an endpoint dropped now and then (proxy)",
         lambda r: plan("net-reset", r.uniform(3, 10), r.choice(["emulator", "receiver"]),
                        reset_p=round(r.uniform(0.02, 0.15), 3)), _route, _heal, needs_proxy=True),
    Kind("net-partition", "nothing passes between instances and an endpoint for a while (proxy)",
         lambda r: plan("net-partition", r.uniform(1, 6), r.choice(["emulator", "receiver"]),
                        partition=True), _route, _heal, needs_proxy=True),
    Kind("emulator-restart", "stop and start the emulator (it forgets everything; the lab "
         "recovers, the client resubmits what has no answer)",
         lambda r: plan("emulator-restart"), _restart_emulator, default=False),
):  # fmt: skip
    register(_kind)


def draw(rng: random.Random, chosen: list[Kind], times: list[float]) -> list[FaultPlan]:
    """One fault per start time, each of a kind drawn from ``chosen``."""
    return [replace(rng.choice(chosen).draw(rng), at=at) for at in times] if chosen else []
