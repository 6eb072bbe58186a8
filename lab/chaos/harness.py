"""A clean lab for one scenario: its own folder, ports, resources, receiver, hypervisor and
fleet, on an emulator of its own or one shared with the other labs of a run; real requests in,
faults injected through the hypervisor, queue and HTTP primitives, and the timeline of what was
done when.

How a scenario (or an explorer) uses it:

- **get a lab**: ``ChaosLab(base, name, seed, setup, shared)`` then ``up()`` — a clean lab under
  ``<base home>/chaos/<name>`` on free ports, its queues, bucket and log group named for it,
  ``setup.instances`` instances idle. ``shared`` (``runner.shared_for``) carries what the labs of
  one run share: a bundle built once, and an emulator started once (a lab gets a fresh set of
  resources on it; ``setup.own_emulator`` asks for an emulator of its own). Without it ``up``
  starts an emulator and builds a bundle. The bodies share the base lab's venv cache, so a
  release is installed once per machine, not once per body. ``down()`` stops what the lab
  started and frees its disk (logs, consoles and the timeline stay).
- **submit**: ``video(seconds)`` makes an input, ``submit(request_id, url, callback, copies)``
  sends it; ``sent`` records what was sent when.
- **inject**: ``fault("crash"|"freeze"|"thaw", instance_id)`` on a body, ``receiver(...)`` on
  the callback endpoint; ``mark(text)`` puts anything else on the timeline.
- **watch**: ``wait(check, timeout_s, what)`` polls (reading the response queue and sampling the
  fleet meanwhile); ``answered``, ``dead_letters``, ``live``, ``idle``, ``status``.
- **collect evidence**: ``gather()`` completes ``evidence`` from every source the workers do not
  control; ``base_rules(evidence, sent)`` checks DESIGN.md's rules on it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

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
from lab.chaos.report import Check
from lab.client.receiver import control
from lab.client.submit import Auth, JobSpec, build_xml, send
from lab.deploy.bundle import Bundle
from lab.ec2 import faults, instances
from lab.ec2.bodies import reap
from lab.errors import LabError
from lab.runtime import procs, stack
from lab.runtime.resources import LabEnv, clients_for
from lab.runtime.settings import LabSettings
from worker.aws import Clients
from worker.errors import StoreError
from worker.state.status import Status, read_status
from worker.state.store import S3JsonStore

T = TypeVar("T")

# Compressed time for every scenario's workers (and the instances' scalers).
FAST_WORKER = {
    "FLEETLAB_WAIT_TIME": "1",
    "FLEETLAB_HEARTBEAT_INTERVAL": "1",
    "FLEETLAB_CALLBACK_BACKOFF": "0.1",
    "FLEETLAB_CALLBACK_BACKOFF_CAP": "0.5",
    "FLEETLAB_LOG_FLUSH": "0.2",
    "FLEETLAB_STATUS_INTERVAL": "1",
}
CALLBACK_AUTH = Auth(*stack.CALLBACK_AUTH.split(":", 1))


class ScenarioFailed(LabError):
    """Raised when a scenario cannot go on (the lab did not reach a state it needs)."""

    code = "CHAOS_SCENARIO_FAILED"


@dataclass(frozen=True)
class Setup:
    """The lab a scenario starts from."""

    instances: int = 2
    bounds: tuple[int, int] | None = None  # scaler's min, max (default: instances, instances)
    visibility_timeout_s: int = 6
    max_receive_count: int = 3
    worker_env: Mapping[str, str] = field(default_factory=dict)
    own_emulator: bool = False  # True for a scenario that stops or empties the emulator
    spot: bool = False  # the fleet's first instances are spot instances


@dataclass(frozen=True)
class Shared:
    """What the labs of one run share: a bundle built once (published into each lab's own
    bucket), and the port of an emulator started once (each lab makes its own resources on
    it). Empty: every lab starts its own emulator and builds its own bundle."""

    built: Bundle | None = None
    emulator_port: int | None = None


def lab_home(base: LabSettings, name: str) -> Path:
    """The folder of the chaos lab ``name``: its instances' user-data and logs stay there."""
    return base.home / "chaos" / name


class ChaosLab:
    """One scenario's lab, from ``up`` to ``down``."""

    def __init__(
        self,
        base: LabSettings,
        name: str,
        seed: int,
        setup: Setup,
        shared: Shared | None = None,
    ) -> None:
        self.name = name
        self.rng = random.Random(f"{seed}:{name}")  # noqa: S311 (timings, not secrets); same seed, same choices and timings
        self.setup = setup
        self.built = shared.built if shared else None
        port = None if setup.own_emulator or shared is None else shared.emulator_port
        self.own_emulator = port is None
        self.settings = replace(
            base,
            home=lab_home(base, name),
            shared=base.shared or base.home,
            emulator_port=procs.free_port() if port is None else port,
            receiver_port=procs.free_port(),
            proxy_port=procs.free_port(),
            # Named for the scenario: on a shared emulator, nothing of an earlier lab's shows.
            request_queue=f"{base.request_queue}-{name}",
            response_queue=f"{base.response_queue}-{name}",
            dead_letter_queue=f"{base.dead_letter_queue}-{name}",
            bucket=f"{base.bucket}-{name}",
            log_group=f"{base.log_group}/{name}",
            visibility_timeout_s=setup.visibility_timeout_s,
            max_receive_count=setup.max_receive_count,
            instance_env=FAST_WORKER | dict(setup.worker_env),
        )
        self.started = time.monotonic()
        self.timeline: list[tuple[float, str]] = []
        self.evidence = Evidence()
        self.sent: dict[str, float] = {}  # request id -> wall time sent
        self.fleet_samples: list[tuple[float, int]] = []
        self.figures: dict[str, float] = {}
        self._env: LabEnv | None = None
        self._clients: Clients | None = None

    # ---------------------------------------------------------------------------- up and down

    @property
    def env(self) -> LabEnv:
        if self._env is None:
            raise ScenarioFailed("the scenario's lab is not up")
        return self._env

    @property
    def clients(self) -> Clients:
        if self._clients is None:
            self._clients = clients_for(self.env)
        return self._clients

    @property
    def receiver_url(self) -> str:
        if self.env.receiver_url is None:
            raise ScenarioFailed("this lab has no callback receiver")
        return self.env.receiver_url

    @property
    def store(self) -> S3JsonStore:
        return S3JsonStore(self.clients.s3, self.env.bucket)

    def up(self) -> None:
        """A clean lab: the scenario's folder emptied, then everything started afresh."""
        home = self.settings.home
        if procs.running(self.settings.pids):
            stack.down(self.settings, grace_s=10)
        shutil.rmtree(home, ignore_errors=True)
        setup = self.setup
        self._env = stack.up(self.settings, 0, setup.instances, "process", setup.bounds,
                             built=self.built, own_emulator=self.own_emulator,
                             spot=setup.spot)  # fmt: skip
        where = "its own" if self.own_emulator else "a shared"
        self.mark(f"lab up: {setup.instances} instance(s) on {where} {self.settings.env} emulator")
        self.wait(lambda: len(self.idle()) >= self.setup.instances, 90, "instances idle")

    def down(self) -> None:
        """Stop everything this scenario started (not a shared emulator) and free its disk: its
        folder keeps the logs, the bodies' consoles and activity logs, nothing else of size."""
        stack.down(self.settings, grace_s=20)
        reap()  # bodies a rollout restarted are this process's children
        shutil.rmtree(self.settings.home / "bundles", ignore_errors=True)  # bad-bundle's build

    # ------------------------------------------------------------------------------- timeline

    def now(self) -> float:
        """Seconds since the scenario began."""
        return time.monotonic() - self.started

    def mark(self, what: str) -> None:
        """Put ``what`` on the timeline."""
        self.timeline.append((self.now(), what))

    def pause(self, low_s: float, high_s: float) -> float:
        """Sleep a seeded random time in [low_s, high_s]; return it."""
        seconds = self.rng.uniform(low_s, high_s)
        time.sleep(seconds)
        return seconds

    # ---------------------------------------------------------------------------------- input

    def video(self, seconds: float, fault: str | None = None) -> str:
        """An input the analyser spends about ``seconds`` on in the lab (or fails on with
        ``fault``): its CPU time, spread over every core as the binary does, at the lab's speed."""
        duration = seconds * (os.cpu_count() or 1) / self.settings.job_speed
        header = f"FAKEVIDEO duration={duration:g}" + (f" fault={fault}" if fault else "")
        key = f"chaos/{duration:g}{'-' + fault if fault else ''}.fakevideo"
        self.clients.s3.put_object(Bucket=self.env.bucket, Key=key, Body=header.encode() + b"\n")
        return f"s3://{self.env.bucket}/{key}"

    def submit(
        self, request_id: str, input_url: str, callback: bool = False, copies: int = 1
    ) -> list[str]:
        """Send a request (``copies`` identical messages); return the SQS message ids."""
        spec = JobSpec(
            "analyze",
            input_url,
            params=[("R", str(self.rng.randint(-100, 100)))],
            response="callback" if callback else "queue",
            callback_url=f"{self.receiver_url}/callback" if callback else None,
            callback_auth=CALLBACK_AUTH if callback else None,
            request_id=request_id,
        )
        body = build_xml(spec)
        self.sent.setdefault(request_id, time.time())
        return [send(self.clients.sqs, self.env.request_queue_url, body) for _ in range(copies)]

    # ------------------------------------------------------------------------------- watching

    def wait(self, check: Callable[[], T | None], timeout_s: float, what: str) -> T:
        """Poll ``check`` (reading the response queue and sampling the fleet meanwhile) until it
        returns something truthy; ``ScenarioFailed`` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.poll()
            value = check()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise ScenarioFailed(
                    f"timed out after {timeout_s:g} s waiting for {what}; fleet: {self.snapshot()}"
                )
            time.sleep(0.25)

    def snapshot(self) -> str:
        """The fleet in one line — each instance's EC2 state and its worker's — for a failure's
        message, so a timeout seen only in a CI log still says what the lab looked like."""
        try:
            found = instances.fleet(self.clients.ec2, self.env.env)
            parts = []
            for i in found:
                status = self.status(i.id)
                parts.append(f"{i.id} {i.state}/{status.state if status else 'no status'}")
        except (BotoCoreError, ClientError, StoreError) as exc:
            return f"unreadable ({type(exc).__name__})"
        return ", ".join(parts) or "no instances"

    def poll(self) -> None:
        """Read the response queue (reading takes the messages) and sample the fleet's size; an
        emulator that is away (restarting, say) is simply not read this time."""
        with contextlib.suppress(BotoCoreError, ClientError):
            self.evidence.queue += read_queue(
                self.clients, self.env.response_queue_url, time.time()
            )
        self.fleet_samples.append((time.time(), fleet_size(self.clients, self.env)))

    def dead_letters(self) -> list[str]:
        """Request ids in the dead-letter queue so far (kept: a read hides them a while)."""
        found = read_dead_letters(self.clients, self.env.dead_letter_queue_url)
        self.evidence.dead_letters |= found
        return sorted(self.evidence.dead_letters.values())

    def answered(self, request_ids: list[str] | None = None) -> bool:
        """True once every request in ``request_ids`` (default: all sent) has a response."""
        wanted = set(self.sent if request_ids is None else request_ids)
        have = {r.request_id for r in self.evidence.queue} | {
            r.request_id for r in self.callbacks()
        }
        return wanted <= have

    def callbacks(self) -> list[Response]:
        """What the callback receiver has recorded so far."""
        return read_callbacks(self.receiver_url)

    def status(self, instance_id: str) -> Status | None:
        """An instance's status document (None before its first one)."""
        return read_status(self.store, instance_id)

    def live(self) -> list[str]:
        """Instances EC2 says are running."""
        return [i.id for i in instances.fleet(self.clients.ec2, self.env.env, ("running",))]

    def idle(self) -> list[str]:
        """Running instances whose worker says idle."""
        return [i for i in self.live() if (s := self.status(i)) and s.state == "idle"]

    def running_job(self, message_id: str) -> str | None:
        """The instance whose worker reports ``message_id`` as its current job."""
        for instance_id in self.live():
            status = self.status(instance_id)
            if status and status.current_request == message_id:
                return instance_id
        return None

    # --------------------------------------------------------------------------------- faults

    def fault(self, action: str, instance_id: str) -> None:
        """crash, freeze or thaw an instance's body (EC2 is not told)."""
        faults.act(self.settings.home, instance_id, action)
        self.mark(f"{action} {instance_id}")

    def receiver(self, **command: Any) -> None:
        """Send a fault command to the callback receiver (``fail_next``, ``delay_s``)."""
        control(self.receiver_url, **command)
        self.mark(f"receiver {', '.join(f'{k}={v}' for k, v in command.items())}")

    # ------------------------------------------------------------------------------- evidence

    def gather(self) -> Evidence:
        """Complete the evidence from every source; flushes of the activity log are awaited."""
        time.sleep(1.0)  # the workers ship their log lines every 0.2 s
        return gather(self.clients, self.env, self.evidence, time.time())


def check(rule: str, ok: bool, detail: str = "") -> Check:
    """A checked rule."""
    return Check(rule, bool(ok), detail)


def base_rules(evidence: Evidence, sent: list[str]) -> list[Check]:
    """DESIGN.md's rules every scenario checks on its evidence."""
    tally = evidence.tally(sent)
    unexplained = sorted(evidence.unexplained_dead_letters() & set(sent))
    differing = [
        r
        for r in sent
        if len({x.body.strip() for x in evidence.responses if x.request_id == r}) > 1
    ]
    return [
        check(
            "nothing lost",
            tally.lost == 0,
            f"{tally.lost} of {tally.sent} neither answered nor dead-lettered"
            if tally.lost
            else f"{tally.sent} accounted for",
        ),
        check("dead letters carry their reason", not unexplained, ", ".join(unexplained)),
        check("repeated responses are identical", not differing, ", ".join(differing)),
    ]
