"""The worker loop: receive → process each message → settle, until told to stop.

This thread alone decides and settles what SQS does with request messages (dramatiq's consumer
thread acks alone). Each message is processed on a job thread of its own (the pipeline: no SQS
I/O on the message), so that while a long job runs the loop still hands back the messages
waiting behind it — after ``hold_s``, except one on its last receive, which SQS would dead-letter
unanswered. The heartbeat, beside both, only extends visibility and renews the lease.

SIGTERM drains: no new receive, the running job finishes, messages on their last receive are
answered, the rest are handed back, every decided outcome is settled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from worker.config import WorkerConfig
from worker.consume.heartbeat import Heartbeat
from worker.consume.inbox import Inbox
from worker.consume.outcome import LEAVE, Leave, Outcome, Stats, released
from worker.consume.queue import Message, RequestQueue
from worker.consume.settle import Settle
from worker.handle.pipeline import Pipeline
from worker.state.activity import ActivityLog

_log = logging.getLogger(__name__)
_ERROR_PAUSE_S = 2.0
_TICK_S = 0.25


class Interrupted(BaseException):
    """Raised from the signal handler to end an idle long poll at once."""


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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.queue = queue
        self.pipeline = pipeline
        self.inbox = inbox
        self.heartbeat = heartbeat
        self.log = log
        self.clock = clock
        self.stop = threading.Event()
        self.idle = threading.Event()
        self.stats = Stats()
        self.settle = Settle(queue, log, self.stats)

    def run(self) -> Stats:
        """Work until stopped; returns the outcome counts."""
        self.log.event("started", detail=f"polling {self.config.request_queue_url}")
        self.heartbeat.start()
        try:
            while not self.stop.is_set():
                self.settle_decided()
                self.inbox.add(self.receive())
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
        for message in batch:
            if self.last_receive(message):
                # Said at once, not when its turn comes: should this instance die holding it,
                # SQS dead-letters it unanswered, and this line is the reason (lab dlq, chaos).
                self.log.event("last-receive", message_id=message.message_id,
                               detail=f"receive #{message.receive_count}: held here")  # fmt: skip
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
            self.decided(self.process(message))

    def finish_last_receives(self) -> None:
        """Draining: answer the held messages on their last receive (handed back, SQS would
        dead-letter them unanswered); ``shutdown`` hands back the rest."""
        for message in self.inbox.take_waiting(keep=lambda m: not self.last_receive(m)):
            self.decided(self.process(message))

    def process(self, message: Message) -> Outcome:
        """Process ``message`` on a job thread; meanwhile hand back what waits too long."""
        job = _JobThread(self.pipeline, message)
        job.start()
        while job.is_alive():
            job.join(_TICK_S)
            self.hand_back_held_too_long()
        return job.outcome

    def hand_back_held_too_long(self) -> None:
        """Once the running job has held the batch for ``hold_s``, hand back the messages
        waiting behind it (other instances take them) and settle what is decided."""
        running = self.inbox.running()
        if running is None or self.clock() - running.started < self.config.hold_s:
            return
        with self.inbox.changing:
            waiting = self.inbox.take_waiting(keep=self.last_receive)
            back = [released(m, "held behind a long job") for m in waiting]
            self.settle(self.inbox.take_decided() + back)

    def last_receive(self, message: Message) -> bool:
        """Never hand back a message on its last receive: SQS would dead-letter it, unanswered,
        the next time anyone received it. It is this worker's to answer."""
        return message.last_receive(self.config.max_receive_count)

    def decided(self, outcome: Outcome) -> None:
        """Settle with the next batch; an outcome that needs no SQS call is recorded at once."""
        if isinstance(outcome.action, Leave):
            self.settle([outcome])
        else:
            self.inbox.decide(outcome)

    def settle_decided(self) -> None:
        """Settle every decided outcome (one batch call per ten messages and action)."""
        with self.inbox.changing:
            self.settle(self.inbox.take_decided())

    def shutdown(self) -> None:
        """Settle what is decided, hand back what is unstarted, log the counts."""
        with self.inbox.changing:
            back = [released(m, "draining") for m in self.inbox.take_waiting()]
            self.settle(self.inbox.take_decided() + back)
        self.log.event("stopped", detail=f"outcomes {dict(self.stats.outcomes)}")


class _JobThread(threading.Thread):
    """Runs the pipeline on one message; an unexpected error becomes an outcome, not a crash."""

    def __init__(self, pipeline: Pipeline, message: Message) -> None:
        super().__init__(name=f"job-{message.message_id[:8]}", daemon=True)
        self._pipeline = pipeline
        self._message = message
        self.outcome = _internal_error(message, "the job ended without an outcome")

    def run(self) -> None:
        try:
            self.outcome = self._pipeline.process(self._message)
        except Exception as exc:  # one bad message must not end the worker
            self._pipeline.inbox.stop()
            _log.exception("unexpected error on message %s", self._message.message_id)
            self.outcome = _internal_error(self._message, f"{type(exc).__name__}: {exc}")


def _internal_error(message: Message, detail: str) -> Outcome:
    # Left alone, it comes back; after maxReceiveCount it is dead-lettered.
    return Outcome(
        "retried", message, LEAVE, event="error", status="INTERNAL_ERROR", detail=detail,
        code="INTERNAL_ERROR",
    )  # fmt: skip
