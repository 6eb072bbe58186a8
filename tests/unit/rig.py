"""A whole worker on in-memory state: the real pipeline, loop, settle step, heartbeat, executor
and HTTP client, over ``MemoryQueue`` and ``DictStore`` instead of SQS and S3. No network: the
services are local binaries (/bin/echo, /bin/sh, /bin/sleep) and the only URLs are refused
loopback ports or addresses the policy refuses before any socket is opened."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from memqueue import MemoryQueue
from memstore import DictStore

from lab.client.submit import JobSpec, render_xml
from lab.runtime.procs import free_port
from worker.config import AwsTarget, Limits, Retry, UrlPolicy, WorkerConfig
from worker.consume.heartbeat import Beat, Heartbeat
from worker.consume.inbox import Inbox
from worker.consume.loop import Worker
from worker.consume.outcome import Outcome
from worker.consume.queue import Message
from worker.handle.deliver import Deliverer
from worker.handle.job import JobContext
from worker.handle.pipeline import Pipeline
from worker.handle.service_file import load_registry
from worker.net.http import SafeHttp
from worker.state.activity import ActivityLog, Event
from worker.state.claims import Claims

SERVICES = """
[services.echo]
command = ["/bin/echo", "hello", "{params}"]
input = false
timeout_seconds = 5
[services.echo.parameters.word]
kind = "pattern"
pattern = "[a-z]{1,10}"
arg = ["{value}"]

[services.say]
command = ["/bin/echo", "said", "{params}"]
input = false
timeout_seconds = 5
claim = "result"
[services.say.parameters.word]
kind = "pattern"
pattern = "[a-z]{1,10}"
arg = ["{value}"]

[services.crash-result]
command = ["/bin/sh", "-c", "kill -ABRT $$"]
input = false
claim = "result"

[services.cat]
command = ["/bin/cat", "{input}"]
input = true
timeout_seconds = 5

[services.crash]
command = ["/bin/sh", "-c", "kill -ABRT $$"]
input = false

[services.fail]
command = ["/bin/sh", "-c", "echo bad input >&2; exit 3"]
input = false

[services.hang]
command = ["/bin/sleep", "30"]
input = false
timeout_seconds = 0.3

[services.sleep]
command = ["/bin/sleep", "{params}"]
input = false
timeout_seconds = 20
[services.sleep.parameters.s]
kind = "float"
min = 0
max = 20
arg = ["{value}"]
"""

REFUSED = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused, at once


class RecordingLog(ActivityLog):
    """The real activity log (to a file), also kept as a list of events to read back."""

    def __init__(self, path: Path) -> None:
        super().__init__("w1", path)
        self.events: list[Event] = []
        self._record_lock = threading.Lock()

    def event(self, event: str, **fields: str | float | None) -> Event:
        record = super().event(event, **fields)
        with self._record_lock:
            self.events.append(record)
        return record


def request(service: str = "echo", **spec: Any) -> str:
    """A request document (not checked: tests also build bad ones)."""
    return render_xml(JobSpec(service=service, **spec)).decode()


class Rig:
    """One worker's parts, wired as ``worker.main.build`` wires them, on in-memory state."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        max_receive_count: int = 3,
        visibility_s: int = 30,
        hold_s: float = 1.0,
        heartbeat_s: float = 10.0,
        store: DictStore | None = None,
        concurrency: int = 1,
        batch_size: int = 10,
        services_extra: str = "",
    ) -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        services = tmp_path / "services.toml"
        services.write_text(SERVICES + services_extra)
        self.config = WorkerConfig(
            aws=AwsTarget(), request_queue_url="q", response_queue_url="r", bucket="b",
            log_group="g", worker_id="w1", work_dir=tmp_path / "work", services_file=services,
            limits=Limits(max_request_bytes=2048, fetch_timeout_s=2, callback_timeout_s=2),
            retry=Retry(attempts=2, base_s=0, cap_s=0), url_policy=UrlPolicy(allow_loopback=True),
            wait_time_s=0, visibility_timeout_s=visibility_s, heartbeat_interval_s=heartbeat_s,
            hold_s=hold_s, max_receive_count=max_receive_count, concurrency=concurrency,
            batch_size=batch_size,
        )  # fmt: skip
        self.queue = MemoryQueue(max_receive_count)
        self.store = store if store is not None else DictStore()
        self.log = RecordingLog(tmp_path / "activity.log")
        self.inbox = Inbox()
        self.http = SafeHttp(self.config.url_policy)
        self.pipeline = Pipeline(
            config=self.config,
            claims=Claims(self.store, "w1"),
            deliverer=Deliverer(
                self.http,
                self.queue,
                self.config.retry,
                self.config.limits,
                sleep=lambda _: None,  # type: ignore[arg-type]
            ),
            registry=load_registry(services),
            job=JobContext(self.config, self.http, s3=None),  # type: ignore[arg-type]
            log=self.log,
            inbox=self.inbox,
            wall=self.wall,
        )
        beat = Beat(heartbeat_s, visibility_s)
        self.heartbeat = Heartbeat(
            self.inbox,
            self.queue,
            beat,
            self._beat_event,
            wall=self.wall,  # type: ignore[arg-type]
        )
        self.worker = Worker(
            self.config,
            self.queue,
            self.pipeline,
            self.inbox,
            self.heartbeat,
            self.log,  # type: ignore[arg-type]
        )

    def wall(self) -> float:
        """The claims' clock: the queue's, so that advancing time also ends leases."""
        return self.queue.now

    def _beat_event(self, event: str, message_id: str) -> None:
        self.log.event(event, message_id=message_id)

    def receive(self) -> Message:
        """Receive the one visible message."""
        [message] = self.queue.receive(1, 0, self.config.visibility_timeout_s)
        return message

    def process(self, body: str) -> Outcome:
        """Send ``body``, receive it and run it through the pipeline."""
        self.queue.send(body)
        return self.pipeline.process(self.receive())

    def settle(self, *outcomes: Outcome) -> None:
        """The settle step, as the loop calls it."""
        self.worker.settle(list(outcomes))

    def names(self, message_id: str | None = None) -> list[str]:
        """Event names logged (for ``message_id``), in order."""
        return [e.event for e in self.lines(message_id)]

    def lines(self, message_id: str | None = None, event: str | None = None) -> list[Event]:
        """Events logged, filtered by message and name."""
        return [
            e
            for e in list(self.log.events)
            if (message_id is None or e.message_id == message_id)
            and (event is None or e.event == event)
        ]

    def close(self) -> None:
        self.http.close()
        self.log.close()
