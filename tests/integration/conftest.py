"""Integration fixtures: a real emulator process (moto, or LocalStack with
``FLEETLAB_LAB_ENV=localstack``), fresh resources per test, the lab receiver and worker processes,
all talking HTTP on 127.0.0.1. Every process is stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import Up, chosen_emulator, clean_env, cli_env, wait_until

from lab.ec2 import image
from lab.ec2.bodies import Body, liveness
from lab.runtime.emulator import answers, ready
from lab.runtime.emulator import command as emulator_command
from lab.runtime.procs import descendants, free_port
from lab.runtime.resources import LAB_CREDENTIALS, LabEnv, ensure, lab_clients
from lab.runtime.settings import LabSettings, load_settings
from worker.aws import Clients

CALLBACK_AUTH = ("dirk", "tellnoone")
MEDIA_AUTH = ("dirk", "mylilsecret")
REPO = Path(__file__).resolve().parents[2]
EMULATOR_START_S = 90  # LocalStack takes about 20 s on these machines, moto under one

# One activity-log line: worker msgid reqid [date] "event service" status seconds "detail"
_LINE = re.compile(
    r"^(?P<worker>\S+) (?P<message_id>\S+) (?P<request_id>\S+) \[[^\]]+\] "
    r'"(?P<event>\S+) (?P<service>\S+)" (?P<status>\S+) (?P<seconds>\S+) "(?P<detail>.*)"$'
)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 10.0) -> int:
    """SIGTERM ``proc`` (by its pid), SIGKILL after ``grace_s``; reap it and return its code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


# ------------------------------------------------------------------------------------- emulator


@pytest.fixture
def unused_port() -> Callable[[], int]:
    """A callable returning a port nothing listens on."""
    return free_port


@dataclass(frozen=True)
class Emulator:
    """The session's emulator: which environment it stands for, and where it listens."""

    env: str
    port: int


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The emulator ``FLEETLAB_LAB_ENV`` names (moto by default) for the whole session: the
    command line and readiness check ``lab up`` uses, on a free port."""
    settings = load_settings(
        chosen_emulator()
        | {
            "FLEETLAB_LAB_HOME": str(tmp_path_factory.mktemp("emulator")),
            "FLEETLAB_EMULATOR_PORT": str(free_port()),
        }
    )
    argv, extra = emulator_command(settings)
    log_path = settings.logs / "emulator.log"
    log_path.parent.mkdir(parents=True)
    began = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=clean_env() | LAB_CREDENTIALS | extra,
        )

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the {settings.env} emulator exited; see {log_path}")
        return ready(settings.env, settings.endpoint_url)

    try:
        wait_until(up, EMULATOR_START_S, f"the {settings.env} emulator; see {log_path}", 0.2)
        print(f"\n{settings.env} emulator ready in {time.monotonic() - began:.1f} s")
        yield Emulator(settings.env, settings.emulator_port)
    finally:
        stop_process(proc, grace_s=15)


# ------------------------------------------------------------------------------------ resources


@dataclass
class Lab:
    """One test's private set of resources on the session's emulator."""

    env: LabEnv
    clients: Clients
    home: Path

    def send(self, body: str | bytes) -> str:
        """Send one plain request message; return its SQS message id."""
        text = body.decode() if isinstance(body, bytes) else body
        reply = self.clients.sqs.send_message(QueueUrl=self.env.request_queue_url, MessageBody=text)
        return reply["MessageId"]

    def depth(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) of a queue (default: the request queue)."""
        attrs = self.clients.sqs.get_queue_attributes(
            QueueUrl=url or self.env.request_queue_url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return (
            int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        )

    def get_bytes(self, key: str, bucket: str | None = None) -> bytes:
        """Read one S3 object, closing its body."""
        body = self.clients.s3.get_object(Bucket=bucket or self.env.bucket, Key=key)["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def put_bytes(self, key: str, data: bytes) -> str:
        """Store ``data`` in the test bucket; return its s3:// URL."""
        self.clients.s3.put_object(Bucket=self.env.bucket, Key=key, Body=data)
        return f"s3://{self.env.bucket}/{key}"

    def claim(self, key: str) -> dict[str, Any]:
        """The claim document ``claims/KEY.json``."""
        return dict(json.loads(self.get_bytes(f"claims/{key}.json")))

    def log_events(self) -> list[str]:
        """Every CloudWatch Logs message in the test's log group."""
        messages: list[str] = []
        paginator = self.clients.logs.get_paginator("filter_log_events")
        for page in paginator.paginate(logGroupName=self.env.log_group):
            messages.extend(e.get("message", "") for e in page.get("events", []))
        return messages


def _close_clients(clients: Clients) -> None:
    for client in (clients.sqs, clients.s3, clients.logs, clients.ec2):
        client.close()


@pytest.fixture
def make_lab(emulator: Emulator, tmp_path: Path) -> Iterator[Callable[..., Lab]]:
    """Factory: fresh, uniquely named queues, bucket and log group on the session's emulator."""
    made: list[Clients] = []

    def make(visibility_timeout_s: int = 4, max_receive_count: int = 3) -> Lab:
        tag = uuid.uuid4().hex[:12]
        settings = LabSettings(
            home=tmp_path / f"lab-{tag}",
            env=emulator.env,
            emulator_port=emulator.port,
            request_queue=f"t-{tag}-requests",
            response_queue=f"t-{tag}-responses",
            dead_letter_queue=f"t-{tag}-dead-letters",
            bucket=f"fleetlab-t-{tag}",
            log_group=f"/fleetlab/t-{tag}",
            visibility_timeout_s=visibility_timeout_s,
            max_receive_count=max_receive_count,
        )
        clients = lab_clients(settings.region, settings.endpoint_url)
        made.append(clients)
        return Lab(env=ensure(settings, clients, emulator.env), clients=clients, home=settings.home)

    yield make
    for clients in made:
        _close_clients(clients)


@pytest.fixture
def lab(make_lab: Callable[..., Lab]) -> Lab:
    """Fresh resources with the default test settings (visibility 4 s, 3 receives)."""
    return make_lab()


# ------------------------------------------------------------------------------------- receiver


@dataclass
class Receiver:
    """The lab's callback receiver and media server, running as its own process."""

    port: int
    folder: Path
    callback_auth: tuple[str, str] = CALLBACK_AUTH
    media_auth: tuple[str, str] = MEDIA_AUTH

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def media(self) -> Path:
        return self.folder / "media"

    def callbacks(self) -> list[dict[str, Any]]:
        """Every callback the receiver recorded (its journal)."""
        with urllib.request.urlopen(f"{self.url}/callbacks", timeout=5) as reply:
            return list(json.loads(reply.read()))

    def control(self, **command: Any) -> None:
        """POST /control, e.g. ``fail_next=2`` or ``delay_s=1``."""
        request = urllib.request.Request(
            f"{self.url}/control",
            data=json.dumps(command).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 200


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """``python -m lab.client.receiver`` on a free port with the lab's credentials."""
    port = free_port()
    folder = tmp_path / "receiver"
    (folder / "media").mkdir(parents=True)
    argv = [
        sys.executable, "-m", "lab.client.receiver", "--port", str(port), "--dir", str(folder),
        "--callback-auth", ":".join(CALLBACK_AUTH), "--media-auth", ":".join(MEDIA_AUTH),
    ]  # fmt: skip
    with (tmp_path / "receiver.log").open("wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=REPO
        )
    found = Receiver(port, folder)
    try:
        deadline = time.monotonic() + 15
        while not answers(f"{found.url}/callbacks"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the lab receiver did not start")
            time.sleep(0.05)
        yield found
    finally:
        stop_process(proc, grace_s=3)


# -------------------------------------------------------------------------------------- workers


@dataclass
class Activity:
    """One parsed activity-log line."""

    worker: str
    message_id: str
    request_id: str
    event: str
    service: str
    status: str
    seconds: str
    detail: str


@dataclass
class WorkerProc:
    """A worker process started by a test."""

    name: str
    proc: subprocess.Popen[bytes]
    work_dir: Path
    output: Path
    children: list[int] = field(default_factory=list)

    @property
    def activity_path(self) -> Path:
        return self.work_dir / "activity.log"

    def activity_text(self) -> str:
        try:
            return self.activity_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def activity(self) -> list[Activity]:
        """Every line of the worker's local activity log, parsed."""
        found = []
        for line in self.activity_text().splitlines():
            match = _LINE.match(line)
            assert match, f"activity line does not parse: {line!r}"
            found.append(Activity(**match.groupdict()))
        return found

    def events(
        self, event: str, message_id: str | None = None, request_id: str | None = None
    ) -> list[Activity]:
        """Activity lines of one kind, optionally for one message or request id."""
        return [
            a
            for a in self.activity()
            if a.event == event
            and (message_id is None or a.message_id == message_id)
            and (request_id is None or a.request_id == request_id)
        ]

    def wait_for(
        self, event: str, message_id: str | None = None, timeout_s: float = 30
    ) -> list[Activity]:
        """Wait until the activity log has an ``event`` line (for ``message_id``)."""
        return list(
            wait_until(
                lambda: self.alive_or_fail() and self.events(event, message_id),
                timeout_s,
                f"{self.name}: {event!r} in the activity log",
                interval_s=0.05,
            )
        )

    def alive_or_fail(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()}")
        return True

    def log_text(self) -> str:
        """The worker's stdout and stderr."""
        return self.output.read_text(encoding="utf-8", errors="replace")

    def stop(self, grace_s: float = 15.0) -> int:
        """SIGTERM (the worker drains), SIGKILL after ``grace_s``; return the exit code."""
        code = stop_process(self.proc, grace_s)
        self.reap_children()
        return code

    def terminate(self) -> None:
        """Send SIGTERM (drain) without waiting."""
        os.kill(self.proc.pid, signal.SIGTERM)

    def kill(self) -> list[int]:
        """SIGKILL the worker and its binary, as if its machine died; return the binary's pids."""
        self.children = descendants(self.proc.pid)
        killed = list(self.children)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.reap_children()
        return killed

    def reap_children(self) -> None:
        # Binaries run in their own session; a killed worker leaves them orphaned.
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.children = []


def worker_env(lab_env: LabEnv, name: str, work_dir: Path) -> dict[str, str]:
    """The environment of a test worker: fast polls, fast retries, short flushes."""
    return (
        clean_env()
        | lab_env.worker_env()
        | {
            "FLEETLAB_WORKER_ID": name,
            "FLEETLAB_WORK_DIR": str(work_dir),
            "FLEETLAB_SPEED": "0.01",
            "FLEETLAB_WAIT_TIME": "1",
            "FLEETLAB_HEARTBEAT_INTERVAL": "1",
            "FLEETLAB_CALLBACK_BACKOFF": "0.05",
            "FLEETLAB_CALLBACK_BACKOFF_CAP": "0.2",
            "FLEETLAB_LOG_FLUSH": "0.2",
            "FLEETLAB_STATUS_INTERVAL": "1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        | LAB_CREDENTIALS
    )


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProc]]:
    """Factory: ``start_worker(lab, name=..., **extra_env)`` starts ``python -m worker``."""
    started: list[WorkerProc] = []

    def start(lab: Lab, name: str | None = None, **extra: str) -> WorkerProc:
        name = name or f"worker-{len(started) + 1}"
        work_dir = tmp_path / "workers" / name
        work_dir.mkdir(parents=True)
        output = tmp_path / "workers" / f"{name}.out"
        env = worker_env(lab.env, name, work_dir) | extra
        with output.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )
        worker = WorkerProc(name, proc, work_dir, output)
        started.append(worker)
        worker.wait_for("started", timeout_s=30)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.children = descendants(worker.proc.pid)
        worker.stop(grace_s=5)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The docker body backend runs on moto only (set FLEETLAB_DOCKER_EVERYWHERE=1 to run it
    on LocalStack as well). Bodies and emulators are independent axes: a body talks to the
    emulator over HTTP like a process body does, and the process backend covers LocalStack;
    the cross product cost CI about 3 minutes of its 55-minute budget for nothing else."""
    if os.environ.get("FLEETLAB_LAB_ENV") != "localstack" or os.environ.get(
        "FLEETLAB_DOCKER_EVERYWHERE"
    ):
        return
    docker = [i for i in items if "docker" in _params(i)]
    if docker:
        config.hook.pytest_deselected(items=docker)
        items[:] = [i for i in items if i not in docker]


def _params(item: pytest.Item) -> list[object]:
    callspec = getattr(item, "callspec", None)
    return list(callspec.params.values()) if callspec is not None else []


@pytest.fixture(scope="session")
def instance_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The lab's instance image, built offline once (skipped only outside CI without Docker)."""
    if (
        shutil.which("docker") is None
        or subprocess.run(["docker", "info"], capture_output=True, check=False).returncode
    ):
        if os.environ.get("CI"):
            pytest.fail(
                "CI must run the docker backend: start an engine with scripts/dockerd start"
            )
        pytest.skip("no Docker engine here (make test starts one)")
    image.build(tmp_path_factory.mktemp("image"))
    return image.IMAGE


@pytest.fixture(params=["process", "docker"])
def up(
    request: pytest.FixtureRequest, tmp_path: Path, unused_port: Callable[[], int]
) -> Iterator[Up]:
    if request.param == "docker":
        request.getfixturevalue("instance_image")
    env = cli_env(tmp_path / "lab", unused_port(), unused_port())
    env["FLEETLAB_LAB_VISIBILITY_TIMEOUT"] = "6"
    found = Up(tmp_path / "lab", env, request.param)
    started = found.lab("up", "--instances", "2", "--workers", "0", "--no-samples",
                        "--backend", request.param, timeout=400)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield found
    finally:
        down = found.lab("down", timeout=180)
        assert down.returncode == 0, down.stderr
        bodies = [Body.load(p) for p in (found.home / "instances").glob("i-*")]
        assert all(b is None or liveness(b) == "dead" for b in bodies)
        assert not list((found.home / "pids").glob("*.pid"))
