"""The heartbeat: beside the running job, keep held messages invisible and the claim alive.

It also hands back messages that wait behind a long job (after ``hold_s``), so that other
instances can take them, and deletes answered ones early instead of at the end of the batch.
Short jobs finish before the first beat, so they cost no extra round trips.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from worker.consume.inbox import Inbox
from worker.consume.queue import Message, RequestQueue
from worker.state.activity import EventName

_log = logging.getLogger(__name__)
_TICK_S = 0.25


@dataclass(frozen=True)
class Beat:
    """Timing of the heartbeat, in seconds."""

    interval_s: float
    visibility_s: int
    hold_s: float
    max_receive_count: int = 0  # the redrive policy's; 0: none

    def keep(self, message: Message) -> bool:
        """Never hand back a message on its last receive: SQS would dead-letter it, unanswered,
        the next time anyone received it. It is this worker's to answer."""
        return message.last_receive(self.max_receive_count)


class Heartbeat:
    """A daemon thread that beats until ``close``."""

    def __init__(
        self,
        inbox: Inbox,
        queue: RequestQueue,
        beat: Beat,
        on_event: Callable[[EventName, str], None],
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inbox = inbox
        self._queue = queue
        self._beat = beat
        self._on_event = on_event
        self._wall = wall
        self._clock = clock
        self._closed = threading.Event()
        self._last = clock()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        """Start beating."""
        self._thread.start()

    def close(self) -> None:
        """Stop beating and wait for the thread."""
        self._closed.set()
        self._thread.join(timeout=10)

    def reset(self) -> None:
        """A fresh receive just set every held message's visibility: count from now."""
        self._last = self._clock()

    def _run(self) -> None:
        while not self._closed.wait(_TICK_S):
            try:
                self.tick()
            except (BotoCoreError, ClientError) as exc:
                # A missed beat is survivable: the next one retries well inside the timeout.
                _log.warning("heartbeat failed: %s", exc)

    def tick(self) -> None:
        """One beat: release, flush, extend and renew as due (public for tests)."""
        running = self._inbox.running()
        now = self._clock()
        if running is not None and now - running.started >= self._beat.hold_s:
            self._hand_back()
        if now - self._last < self._beat.interval_s:
            return
        self._last = now
        held = self._inbox.held()
        if held:
            self._queue.set_visibility(held, self._beat.visibility_s)
        lease = running.lease if running is not None else None
        if lease is not None and not lease.renew(self._wall(), self._beat.visibility_s):
            assert running is not None
            self._on_event("lease-lost", running.message.message_id)

    def _hand_back(self) -> None:
        settled = self._inbox.take_settled()
        if settled:
            self._queue.delete(settled)
            for message in settled:
                self._on_event("deleted", message.message_id)
        waiting = self._inbox.take_waiting(keep=self._beat.keep)
        if waiting:
            self._queue.set_visibility(waiting, 0)
            for message in waiting:
                self._on_event("released", message.message_id)
