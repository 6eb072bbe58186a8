"""The worker loop: receive → work the batch, several jobs at once → settle, until told to stop.

This thread alone decides and settles what SQS does with request messages (dramatiq's consumer
thread acks alone). Each message is processed on a job thread of its own (the pipeline: no SQS
I/O on the message), which only decides its outcome. The loop starts job threads for the held
messages in their order, as many at once as the worker's cap (``FLEETLAB_CONCURRENCY``) and each
service's own ``concurrency`` allow, passing over a message whose service is at its limit (it
waits, kept invisible by the heartbeat, and starts when a job of its service ends). Meanwhile it
hands back the messages still waiting once the longest-running job has held the batch for
``hold_s`` — except one on its last receive, which SQS would dead-letter unanswered. The next
receive comes when the batch is worked through — or sooner, when the last receive came full (the
queue has more) and a slot is free with nothing waiting for it: a receive ahead, without a long
poll, so slots do not idle through a batch's tail, its deletes and the next receive's round trip.
The heartbeat, beside them, only extends visibility and renews the leases.

SIGTERM drains: no new receive and no new job, the running jobs finish, messages on their last
receive are answered, the rest are handed back, every decided outcome is settled. A long poll in
flight is waited out (``FLEETLAB_WAIT_TIME`` at most), never cut: SQS goes on polling for a client
that has gone and hands it the next message, which then stays in flight for the visibility timeout
with one of its receives spent — on its last, a dead letter no worker saw.
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
from worker.consume.slots import Group, Slots, group_of, service_limit
from worker.handle.pipeline import Pipeline
from worker.state.activity import ActivityLog

_log = logging.getLogger(__name__)
_ERROR_PAUSE_S = 2.0
_TICK_S = 0.25


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
        self.stats = Stats()
        self.settle = Settle(queue, log, self.stats)
        self.slots = Slots(config.concurrency, self.limit)
        self.jobs: dict[str, _JobThread] = {}  # by message id: job threads started, not reaped
        self.more = False  # the last receive came full: the queue has more (receive ahead)
        self.ended = threading.Event()  # set by a job thread once it has decided its outcome

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
        finally:
            self.heartbeat.close()
            self.shutdown()
        return self.stats

    def receive(self) -> list[Message]:
        """One long poll — or, with jobs running (a receive ahead), one that does not wait; an
        AWS error pauses briefly rather than ending the worker."""
        ahead = bool(self.jobs)
        self.more = False
        size = self.batch_size()
        try:
            if self.stop.is_set():
                return []
            wait_s = 0 if ahead else self.config.wait_time_s
            batch = self.queue.receive(size, wait_s, self.config.visibility_timeout_s)
        except (BotoCoreError, ClientError) as exc:
            self.log.event("error", status="RECEIVE_FAILED", detail=str(exc))
            if not ahead:  # running jobs are not kept waiting: no receive ahead till the next
                self.stop.wait(_ERROR_PAUSE_S)
            return []
        self.more = len(batch) >= size
        if not ahead:
            # Everything held came with this receive. Not after a receive ahead: the messages
            # of the running jobs were received earlier and are extended on their own schedule.
            self.heartbeat.reset()
        for message in batch:
            if self.last_receive(message):
                # Said at once, not when its turn comes: should this instance die holding it,
                # SQS dead-letters it unanswered, and this line is the reason (lab dlq, chaos).
                self.log.event("last-receive", message_id=message.message_id,
                               detail=f"receive #{message.receive_count}: held here")  # fmt: skip
        return batch

    def batch_size(self) -> int:
        """How many messages to receive: as many as start within ``hold_s``, by recent job times
        and how many of them run at once.

        Messages not started within ``hold_s`` are handed back, and every hand-back spends one of
        the message's receives under the redrive policy: receiving ten jobs of a minute each
        would burn receives of nine for nothing. Short jobs still come ten to a round trip, and
        jobs that run several at once (the cap, and the last service's own ``concurrency``)
        that many times more."""
        timed = self.stats.durations
        if not timed:
            return self.config.batch_size
        mean = sum(timed) / len(timed)
        fits = int(self.config.hold_s / max(mean, 1e-3)) * self.at_once()
        return max(1, min(self.config.batch_size, fits))

    def at_once(self, service: str | None = None) -> int:
        """How many jobs of ``service`` (default: the last one's) this worker runs at once: its
        cap and that service's own ``concurrency``; 1 before any job (it may be anything)."""
        if service is None and self.stats.last is not None:
            service = self.stats.last.service
        return 1 if service is None else min(self.config.concurrency, self.limit(service))

    def servers(self) -> int:
        """The servers this instance is worth to the scaler: the recent timed jobs' time over
        the instance-time they took (each took its time ÷ the jobs of its service run at once),
        rounded down; 1 before any. Weighted by time, a fleet whose time goes to concurrency-1
        jobs counts 1 per instance however many short jobs of other services it also ran."""
        timed = [(s, self.at_once(service)) for s, service in tuple(self.stats.timed) if service]
        occupied = sum(seconds / at_once for seconds, at_once in timed)
        total = sum(seconds for seconds, _ in timed)
        return max(1, int(total / occupied)) if occupied > 0 else 1

    def limit(self, group: Group) -> int:
        """How many jobs of ``group`` may run at once, by the registry."""
        return service_limit(self.pipeline.registry, group)

    def work_through(self) -> None:
        """Run the held messages, as many at once as the slots allow, until none waits and none
        runs, or until it is time to receive ahead; on stop, start no more (``shutdown`` hands
        the rest back) and let the running end."""
        groups: dict[str, Group] = {}

        def fits(message: Message) -> bool:
            if message.message_id not in groups:
                groups[message.message_id] = group_of(message, self.config.limits.max_request_bytes)
            return self.slots.fits(groups[message.message_id])

        while True:
            self.ended.clear()  # before the reaping: an end after it wakes the wait below
            self.reap()
            if not self.stop.is_set():
                while (message := self.inbox.take(fits)) is not None:
                    self.start_job(message, groups[message.message_id])
            if not self.jobs or self.receive_ahead():
                return
            self.ended.wait(_TICK_S)
            self.hand_back_held_too_long()

    def receive_ahead(self) -> bool:
        """Receive before the running jobs end: the last receive came full, a slot of the cap is
        free, nothing waits for one, and no job has run for half of ``hold_s`` — once one has
        run ``hold_s``, whatever waits is handed back, each hand-back a receive of the message's
        spent; what a receive ahead brings has the other half to start."""
        if not self.more or self.stop.is_set() or len(self.jobs) >= self.config.concurrency:
            return False
        if self.inbox.waiting():
            return False
        running = self.inbox.running()
        return not running or self.clock() - running[0].started < self.config.hold_s / 2

    def start_job(self, message: Message, group: Group) -> None:
        """Start ``message``'s job thread in a slot of ``group``."""
        job = _JobThread(self.pipeline, message, group, self.inbox.decide, self.ended)
        self.slots.take(group)
        self.jobs[message.message_id] = job
        job.start()

    def reap(self) -> None:
        """Free the slots of the jobs that have decided (their threads are ending: nothing
        is left for them to do, and waiting for their exit would cost the loop a tick)."""
        for message_id, job in list(self.jobs.items()):
            if job.done.is_set():
                del self.jobs[message_id]
                self.slots.free(job.group)

    def finish_last_receives(self) -> None:
        """Draining: answer the held messages on their last receive, one at a time (handed
        back, SQS would dead-letter them unanswered); ``shutdown`` hands back the rest."""
        while (message := self.inbox.take(self.last_receive)) is not None:
            self.decided(self.process(message))

    def process(self, message: Message) -> Outcome:
        """Process ``message`` on a job thread and wait for it; meanwhile hand back what waits
        too long."""
        job = _JobThread(self.pipeline, message, None, lambda _: None, threading.Event())
        job.start()
        while job.is_alive():
            job.join(_TICK_S)
            self.hand_back_held_too_long()
        return job.outcome

    def hand_back_held_too_long(self) -> None:
        """Once the longest-running job has held the batch for ``hold_s``, hand back the
        messages still waiting (other instances take them) and settle what is decided."""
        running = self.inbox.running()
        if not running or self.clock() - running[0].started < self.config.hold_s:
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
        self.inbox.decide(outcome)
        if isinstance(outcome.action, Leave):
            self.settle_decided()

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
    """Runs the pipeline on one message, hands its outcome to ``decide``, then sets ``done`` and
    ``wake``; an unexpected error becomes an outcome, not a crash. It decides; it never settles."""

    def __init__(
        self,
        pipeline: Pipeline,
        message: Message,
        group: Group,
        decide: Callable[[Outcome], None],
        wake: threading.Event,
    ) -> None:
        super().__init__(name=f"job-{message.message_id[:8]}", daemon=True)
        self._pipeline = pipeline
        self._message = message
        self._decide = decide
        self._wake = wake
        self.group = group
        self.done = threading.Event()  # the outcome is decided
        self.outcome = _internal_error(message, "the job ended without an outcome")

    def run(self) -> None:
        try:
            self.outcome = self._pipeline.process(self._message)
        except Exception as exc:  # one bad message must not end the worker
            self._pipeline.inbox.stop(self._message)
            _log.exception("unexpected error on message %s", self._message.message_id)
            self.outcome = _internal_error(self._message, f"{type(exc).__name__}: {exc}")
        finally:
            self._decide(self.outcome)  # before ``done``: a freed slot's outcome is never lost
            self.done.set()
            self._wake.set()


def _internal_error(message: Message, detail: str) -> Outcome:
    # Left alone, it comes back; after maxReceiveCount it is dead-lettered.
    return Outcome(
        "retried", message, LEAVE, event="error", status="INTERNAL_ERROR", detail=detail,
        code="INTERNAL_ERROR",
    )  # fmt: skip
