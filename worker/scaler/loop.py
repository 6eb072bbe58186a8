"""The scaler loop (``python -m worker.scaler``): lead, observe, decide, apply, log; repeat.

It runs on every instance beside the worker (and as ``lab scaler run`` outside the fleet), but
only the holder of the leader lease acts. The lease is a claim in S3 (``claims/scaler-leader``):
created with ``IfNoneMatch``, renewed every tick with ``IfMatch``, taken over with a higher token
only after it expired. A leader that cannot renew has lost it and stops acting at once; one whose
tick ran for more than half the lease (a frozen process, say) skips acting, since another may
already lead. The policy is ``worker.scaler.capacity.decide``; its settings are the JSON document
``scaler/config.json``, read every tick so that a change applies without a deploy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from types import FrameType
from typing import Any, get_args

from botocore.exceptions import BotoCoreError, ClientError

from worker.aws import Clients
from worker.config import ScalerSettings, load_scaler_settings
from worker.consume.queue import depth
from worker.errors import (
    ClaimBusy,
    ClaimLost,
    ConfigError,
    FleetlabError,
    PreconditionFailed,
    StoreError,
)
from worker.scaler import ec2
from worker.scaler.capacity import Decision, Member, Memory, Observed, ScalerConfig, State, decide
from worker.scaler.market import Interruptions, Market, noted, recent_interruptions, spot_launches
from worker.state.activity import ActivityLog, CloudWatchSink, EventName
from worker.state.claims import Acquired, Claim, Claims
from worker.state.layout import (
    SCALER_CONFIG,
    SCALER_INTERRUPTIONS,
    SCALER_LEADER,
    SCALER_STATE,
    status_key,
)
from worker.state.status import DrainRequest, Status, read_status
from worker.state.store import JsonStore, S3JsonStore

_log = logging.getLogger(__name__)
_STATES: tuple[str, ...] = get_args(State)


def config_from(doc: Mapping[str, Any]) -> ScalerConfig:
    """The scaler's settings from their stored document; ``ConfigError`` names what is wrong."""
    kinds = {f.name: f.type for f in fields(ScalerConfig)}
    unknown = sorted(set(doc) - set(kinds))
    if unknown:
        raise ConfigError(f"{SCALER_CONFIG}: unknown setting(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in doc.items():
        whole = kinds[name] == "int"
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise ConfigError(
                f"{SCALER_CONFIG}: {name} must be {'an integer' if whole else 'a number'}"
            )
        values[name] = value if whole else float(value)
    config = ScalerConfig(**values)
    if problems := config.problems():
        raise ConfigError(f"{SCALER_CONFIG}: {'; '.join(problems)}")
    return config


def read_config(store: JsonStore) -> ScalerConfig | None:
    """The stored settings, or None when the scaler is not configured; ``ConfigError`` if bad."""
    found = store.read(SCALER_CONFIG)
    return config_from(found.doc) if found else None


def member(instance: ec2.Instance, status: Status | None) -> Member:
    """An instance joined with its worker's status document (None: not written yet; an
    unreadable heartbeat counts as never heard from)."""
    if status is None:
        return Member(instance.id, instance.launched_at)
    return Member(
        id=instance.id,
        launched_at=instance.launched_at,
        state=status.state if status.state in _STATES else "busy",  # type: ignore[arg-type]
        heartbeat_at=status.heartbeat_at,
        drain_requested=status.drain_requested is not None,
        interrupted=status.interruption_at is not None,
        slots=status.slots,
    )


def timed(statuses: Sequence[Status]) -> tuple[float, ...]:
    """Recent job durations the workers report."""
    return tuple(s for status in statuses for s in status.job_seconds if s > 0)


class Scaler:
    """The loop around the policy: one ``tick`` reads, decides and acts if it leads."""

    def __init__(
        self,
        settings: ScalerSettings,
        clients: Clients,
        store: JsonStore,
        log: ActivityLog,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.store = store
        self.log = log
        self.wall = wall
        self.clock = clock
        self.claims = Claims(store, settings.owner)
        self.lease: Claim | None = None
        self.renewed_at = 0.0
        self.memory = Memory()
        self.markets: dict[str, str] = {}  # live instance id -> "spot" / "on-demand"
        self.ticks = 0
        self.said: str | None = None  # the last reason logged, so a steady fleet logs nothing
        self.stop = threading.Event()

    def run(self) -> None:
        """Tick every ``interval_s`` until ``stop`` is set; then hand the lease on."""
        self.log.event("started", detail=f"scaler for fleet {self.settings.fleet}")
        try:
            while not self.stop.is_set():
                self.tick_safely()
                self.stop.wait(self.settings.interval_s)
        finally:
            self.resign()
            self.log.event("stopped", detail="scaler")

    def tick_safely(self) -> Decision | None:
        """``tick``, with AWS and state errors logged: the next tick tries again."""
        try:
            return self.tick()
        except (BotoCoreError, ClientError, StoreError) as exc:
            self.log.event("error", status="SCALER_FAILED", detail=f"{type(exc).__name__}: {exc}")
            return None

    def tick(self) -> Decision | None:
        """Lead (or not), observe, decide, apply; the decision, or None if not acting."""
        self.ticks += 1
        config = self.policy()
        now = self.wall()
        if config is None or not self.lead(now):
            return None
        observed = self.observe()
        decision = decide(observed, config, self.memory, now)
        if self.clock() - self.renewed_at > self.settings.lease_s / 2:
            # Observing took so long that the lease may have lapsed and been taken: do nothing.
            self.say("skipped", "tick took over half the lease; not acting on a stale view")
            return None
        self.memory = decision.memory
        noticed = [m.id for m in observed.members if m.interrupted]
        known = Interruptions()
        if noticed or decision.launch:
            known = self.interruptions(noticed, now, config.market.window_s)
        self.apply(decision, config.market, known, now)
        self.publish(decision, observed, now)
        return decision

    def policy(self) -> ScalerConfig | None:
        """The policy's settings; None (and one log line) when absent or invalid."""
        try:
            config = read_config(self.store)
        except ConfigError as exc:
            self.say("error", str(exc), status=exc.code)
            return None
        if config is None:
            self.say("idle", f"no {SCALER_CONFIG}: not scaling")
        return config

    def lead(self, now: float) -> bool:
        """Renew the lease, or take it if free or expired; True while this scaler leads."""
        if self.lease is not None:
            try:
                self.lease = self.claims.renew(self.lease, now, self.settings.lease_s)
            except ClaimLost:
                self.log.event("follower", detail="lost the scaler lease to another instance")
                self.lease, self.memory = None, Memory()
                return False
            self.renewed_at = self.clock()
            return True
        try:
            got = self.claims.acquire(
                SCALER_LEADER, self.settings.owner, now, self.settings.lease_s
            )
        except ClaimBusy:
            return False
        if not isinstance(got, Acquired):
            return False
        self.lease, self.renewed_at = got.claim, self.clock()
        self.log.event("leader", detail=f"holds the scaler lease, token {got.claim.token}")
        return True

    def resign(self) -> None:
        """Let the lease expire now, so another instance takes over without waiting it out."""
        if self.lease is None:
            return
        # If this fails the lease simply expires within lease_s.
        with contextlib.suppress(ClaimLost, StoreError, BotoCoreError, ClientError):
            self.claims.renew(self.lease, self.wall() - 1, 0)
        self.lease = None

    def observe(self) -> Observed:
        """The queue's counts, the fleet from EC2 and each instance's status document."""
        counts = depth(self.clients.sqs, self.settings.request_queue_url)
        found = ec2.fleet(self.clients.ec2, self.settings.fleet)
        docs = {i.id: doc for i in found if (doc := read_status(self.store, i.id))}
        self.markets = {i.id: i.market for i in found}
        return Observed(
            visible=counts.visible,
            in_flight=counts.in_flight,
            delayed=counts.delayed,
            members=tuple(member(i, docs.get(i.id)) for i in found),
            job_seconds=timed(list(docs.values())),
            self_id=self.settings.owner,
        )

    def interruptions(self, noticed: Sequence[str], now: float, window_s: float) -> Interruptions:
        """The fleet's interruptions within the window, from shared state, with the instances
        ``noticed`` under notice now added. A conditional write, read again when another
        scaler wrote in between (two that both think they lead lose none of each other's)."""
        for _ in range(3):
            found = self.store.read(SCALER_INTERRUPTIONS)
            known = Interruptions.from_doc(found.doc) if found else Interruptions()
            updated = noted(known, noticed, now, window_s)
            if updated == known:
                return known
            try:
                if found is None:
                    self.store.create(SCALER_INTERRUPTIONS, updated.to_doc())
                else:
                    self.store.replace(SCALER_INTERRUPTIONS, updated.to_doc(), found.etag)
            except PreconditionFailed:
                continue
            return updated
        raise StoreError(f"{SCALER_INTERRUPTIONS}: three writes in a row lost to another writer")

    def apply(self, decision: Decision, market: Market, known: Interruptions, now: float) -> None:
        """Terminate the stopped and the unhealthy, request drains, launch (spot as ``market``
        says, given the ``known`` interruptions); log each act."""
        assert self.lease is not None
        doomed = [*decision.terminate, *decision.replace]
        if self.settings.owner in doomed:
            self.resign()  # this instance goes: hand the lease on first
        if doomed:
            ec2.terminate(self.clients.ec2, doomed)
            for instance_id in decision.terminate:
                self.log.event("terminated", detail=f"{instance_id}: drained and stopped")
            for instance_id in decision.replace:
                self.log.event("replaced", status="UNHEALTHY", detail=f"{instance_id}: terminated")
        token = self.lease.token if self.lease else 0
        for instance_id in decision.drain:
            if self.request_drain(instance_id, now, token):
                self.log.event("drain", detail=f"{instance_id}: asked to stop receiving")
        if decision.launch:
            # One token per decision, unique for good: EC2 answers a repeated token with the
            # instances its first use started (for a day or more after they end), so a token that
            # recurs — a fleet torn down and provisioned again, its lease tokens and ticks
            # counting from 1 — would launch nothing. (≤ 64 characters with the spot suffix.)
            client_token = f"{self.settings.fleet[:16]}-{uuid.uuid4().hex}"
            launched = self.launch(decision.launch, client_token, market, known, now)
            self.log.event("launched", detail=f"{', '.join(launched)}")
        if decision.acts:
            self.say("scaled", decision.reason, force=True)
        else:
            self.say("holding", f"desired {decision.desired}")

    def launch(
        self, count: int, client_token: str, market: Market, known: Interruptions, now: float
    ) -> list[str]:
        """Launch ``count``: spot as the market policy says, the rest on-demand."""
        recent = recent_interruptions(known.seen.values(), now, market.window_s)
        spot = spot_launches(count, self.markets, market, recent)
        fleet, ec2_client = self.settings.fleet, self.clients.ec2
        launched = ec2.launch(ec2_client, fleet, spot, f"{client_token}-s", spot=True)
        return launched + ec2.launch(ec2_client, fleet, count - spot, client_token)

    def request_drain(self, instance_id: str, now: float, token: int) -> bool:
        """Add ``drain_requested`` to the worker's status document, keeping its other fields."""
        key = status_key(instance_id)
        for _ in range(3):
            found = self.store.read(key)
            if found is None or Status.from_doc(found.doc).drain_requested is not None:
                return False
            mark = DrainRequest(at=now, by=self.settings.owner, token=token).to_doc()
            try:
                self.store.replace(key, found.doc | {"drain_requested": mark}, found.etag)
                return True
            except StoreError:
                continue  # the worker wrote in between: read again
        return False

    def publish(self, decision: Decision, observed: Observed, now: float) -> None:
        """What ``lab status`` shows: who leads, what it saw, what it decided and why."""
        self.store.put(
            SCALER_STATE,
            {
                "leader": self.settings.owner,
                "token": self.lease.token if self.lease else None,
                "at": now,
                "desired": decision.desired,
                "reason": decision.reason,
                "visible": observed.visible,
                "in_flight": observed.in_flight,
                "instances": len(observed.members),
                "rate_per_hour": round(decision.memory.rate * 3600, 1),
            },
        )

    def say(self, event: EventName, detail: str, status: str = "ok", force: bool = False) -> None:
        """Log ``detail`` unless it is what was said last (a steady fleet logs nothing)."""
        if force or detail != self.said:
            self.log.event(event, status=status, detail=detail)
        self.said = detail


def build(settings: ScalerSettings) -> Scaler:
    """Wire a scaler from its settings."""
    clients = Clients(settings.aws)
    store = S3JsonStore(clients.s3, settings.bucket)
    stream = f"{settings.owner}-scaler"
    sink = CloudWatchSink(clients.logs, settings.log_group, stream)
    log = ActivityLog(stream, settings.work_dir / "scaler.log", sink, flush_s=settings.log_flush_s)
    return Scaler(settings, clients, store, log)


def main(argv: list[str] | None = None) -> int:
    """Run the scaler until SIGTERM/SIGINT (0); ``--once``: one tick, the decision as JSON."""
    parser = argparse.ArgumentParser(description="fleetlab scaler")
    parser.add_argument("--once", action="store_true", help="one tick; print the decision")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        settings = load_scaler_settings()
        settings.work_dir.mkdir(parents=True, exist_ok=True)
        scaler = build(settings)
    except FleetlabError as exc:
        print(f"fleetlab-scaler: {exc}", file=sys.stderr)
        return 2
    if args.once:
        decision = scaler.tick_safely()
        scaler.resign()
        scaler.log.close()
        shown = asdict(decision) if decision else None
        if shown:
            shown.pop("memory")
        print(json.dumps({"leader": decision is not None, "decision": shown}))
        return 0

    def stop(_signum: int, _frame: FrameType | None) -> None:
        scaler.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        scaler.run()
    finally:
        scaler.log.close()
    return 0
