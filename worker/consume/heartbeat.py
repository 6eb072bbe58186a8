"""The heartbeat: beside the running jobs, keep held messages invisible and the claims alive.

It only extends visibility and renews the lease; it never deletes and never hands back (that is
the settle step's, on the loop thread). Short jobs finish before the first beat, so they cost no
extra round trips.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from worker.consume.inbox import Inbox
from worker.consume.queue import RequestQueue
from worker.errors import StoreError
from worker.state.activity import EventName

_log = logging.getLogger(__name__)
_TICK_S = 0.25


@dataclass(frozen=True)
class Beat:
    """Timing of the heartbeat, in seconds."""

    interval_s: float
    visibility_s: int


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
            except (BotoCoreError, ClientError, StoreError) as exc:
                # A missed beat is survivable: the next one retries well inside the timeout.
                _log.warning("heartbeat failed: %s", exc)

    def tick(self) -> None:
        """One beat, when due: extend every held message and renew every running job's claim
        (public for tests)."""
        now = self._clock()
        if now - self._last < self._beat.interval_s:
            return
        self._last = now
        with self._inbox.changing:
            held = self._inbox.held()
            if held:
                failed = self._queue.change_visibility([(m, self._beat.visibility_s) for m in held])
                for message, why in failed.items():
                    _log.warning("could not extend %s: %s", message.message_id, why)
        for running in self._inbox.running():
            lease = running.lease
            if lease is not None and not lease.renew(self._wall(), self._beat.visibility_s):
                self._on_event("lease-lost", running.message.message_id)
