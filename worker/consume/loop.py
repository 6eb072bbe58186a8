"""The worker loop: receive a batch, process each message, delete the answered ones, repeat.

SIGTERM drains: no new receive, the running job finishes, unstarted messages are handed back.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

from worker.config import WorkerConfig
from worker.consume.heartbeat import Heartbeat
from worker.consume.inbox import Inbox
from worker.consume.outcome import Outcome
from worker.consume.queue import Message, RequestQueue
from worker.handle.pipeline import Pipeline
from worker.state.activity import ActivityLog

_log = logging.getLogger(__name__)
_ERROR_PAUSE_S = 2.0
_TIMED = 20  # job durations kept for the status document (the scaler's mean job time)


class Interrupted(BaseException):
    """Raised from the signal handler to end an idle long poll at once."""


@dataclass
class Stats:
    """Outcomes so far, by kind."""

    outcomes: Counter[str] = field(default_factory=Counter)
    last: Outcome | None = None
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=_TIMED))

    def record(self, outcome: Outcome) -> None:
        """Count one outcome; time the ones that ran a job to its answer."""
        self.outcomes[outcome.kind] += 1
        self.last = outcome
        if outcome.kind in ("delivered", "error-delivered") and outcome.seconds > 0:
            self.durations.append(round(outcome.seconds, 3))


class Worker:
    """Runs the pipeline over the request queue until ``stop`` is set."""

    def __init__(
        self,
        config: WorkerConfig,
        queue: RequestQueue,
        pipeline: Pipeline,
        inbox: Inbox,
        heartbeat: Heartbeat,
        log: ActivityLog,
    ) -> None:
        self.config = config
        self.queue = queue
        self.pipeline = pipeline
        self.inbox = inbox
        self.heartbeat = heartbeat
        self.log = log
        self.stop = threading.Event()
        self.idle = threading.Event()
        self.stats = Stats()

    def run(self) -> Stats:
        """Work until stopped; returns the outcome counts."""
        self.log.event("started", detail=f"polling {self.config.request_queue_url}")
        self.heartbeat.start()
        try:
            while not self.stop.is_set():
                self.settle()
                batch = self.receive()
                self.inbox.add(batch)
                self.work_through()
            self.finish_last_receives()
        except Interrupted:
            pass
        finally:
            self.heartbeat.close()
            self.shutdown()
        return self.stats

    def receive(self) -> list[Message]:
        """One long poll; an AWS error pauses briefly rather than ending the worker."""
        self.idle.set()
        try:
            if self.stop.is_set():
                return []
            batch = self.queue.receive(
                self.batch_size(), self.config.wait_time_s, self.config.visibility_timeout_s
            )
        except (BotoCoreError, ClientError) as exc:
            self.log.event("error", status="RECEIVE_FAILED", detail=str(exc))
            self.stop.wait(_ERROR_PAUSE_S)
            return []
        finally:
            self.idle.clear()
        self.heartbeat.reset()
        return batch

    def batch_size(self) -> int:
        """How many messages to receive: as many as start within ``hold_s``, by recent job times.

        Messages not started within ``hold_s`` are handed back, and every hand-back spends one of
        the message's receives under the redrive policy: receiving ten jobs of a minute each
        would burn receives of nine for nothing. Short jobs still come ten to a round trip."""
        timed = self.stats.durations
        if not timed:
            return self.config.batch_size
        mean = sum(timed) / len(timed)
        return max(1, min(self.config.batch_size, int(self.config.hold_s / max(mean, 1e-3))))

    def work_through(self) -> None:
        """Process held messages in order; on stop, leave the rest for ``shutdown``."""
        while not self.stop.is_set():
            message = self.inbox.take()
            if message is None:
                return
            self.process(message)

    def finish_last_receives(self) -> None:
        """Draining: answer the held messages on their last receive (handed back, SQS would
        dead-letter them unanswered); ``shutdown`` hands back the rest."""
        last = self.config.max_receive_count
        for message in self.inbox.take_waiting(keep=lambda m: not m.last_receive(last)):
            self.process(message)

    def process(self, message: Message) -> None:
        """Run one message through the pipeline and record its outcome."""
        try:
            outcome = self.pipeline.process(message)
        except Exception as exc:  # one bad message must not end the worker
            # Not deleted, so it comes back; after maxReceiveCount it is dead-lettered.
            self.inbox.stop()
            self.log.event(
                "error",
                message_id=message.message_id,
                status="INTERNAL_ERROR",
                detail=f"{type(exc).__name__}: {exc}",
            )
            _log.exception("unexpected error on message %s", message.message_id)
            outcome = Outcome("retried", message.message_id, 0.0, code="INTERNAL_ERROR")
        self.stats.record(outcome)

    def settle(self) -> None:
        """Delete every answered message (one batch call per ten)."""
        settled = self.inbox.take_settled()
        if not settled:
            return
        try:
            failed = self.queue.delete(settled)
        except (BotoCoreError, ClientError) as exc:
            # Not deleted means it comes back; its claim is done, so it is only re-sent.
            self.log.event("error", status="DELETE_FAILED", detail=str(exc))
            return
        for message in settled:
            if message not in failed:
                self.log.event("deleted", message_id=message.message_id)

    def shutdown(self) -> None:
        """Delete what is answered, hand back what is unstarted, flush the log."""
        self.settle()
        waiting = self.inbox.take_waiting()
        if waiting:
            try:
                self.queue.set_visibility(waiting, 0)
            except (BotoCoreError, ClientError) as exc:
                _log.warning("could not hand back %d messages: %s", len(waiting), exc)
            for message in waiting:
                self.log.event("released", message_id=message.message_id, detail="draining")
        self.log.event("stopped", detail=f"outcomes {dict(self.stats.outcomes)}")
