"""The messages a worker holds: the one running, those waiting behind it, those decided.

Shared by the loop (which takes, decides and settles), the job thread (which marks the running
job) and the heartbeat (which only reads what to keep invisible); every access goes through one
lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from worker.consume.outcome import Leave, Outcome
from worker.consume.queue import Message
from worker.state.lease import Lease


@dataclass(frozen=True)
class Running:
    """The job in progress: its message, its lease, and when it started (monotonic)."""

    message: Message
    lease: Lease | None
    started: float


class Inbox:
    """Held messages, in the order they are to be processed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._waiting: deque[Message] = deque()
        self._running: Running | None = None
        self._decided: list[Outcome] = []
        # Held across a batch of visibility changes or deletes (heartbeat and settle step), so
        # that an extension read before a hand-back can never land after it and undo it.
        self.changing = threading.Lock()

    def add(self, messages: Iterable[Message]) -> None:
        """Queue freshly received messages."""
        with self._lock:
            self._waiting.extend(messages)

    def take(self) -> Message | None:
        """Next message to process, or None."""
        with self._lock:
            return self._waiting.popleft() if self._waiting else None

    def start(self, message: Message, lease: Lease | None) -> None:
        """Mark ``message`` as the running job."""
        with self._lock:
            self._running = Running(message, lease, self._clock())

    def stop(self) -> None:
        """No job is running any more."""
        with self._lock:
            self._running = None

    def running(self) -> Running | None:
        """The running job, if any."""
        with self._lock:
            return self._running

    def decide(self, outcome: Outcome) -> None:
        """``outcome`` is decided; the settle step applies it with the next batch."""
        with self._lock:
            self._decided.append(outcome)

    def take_decided(self) -> list[Outcome]:
        """Outcomes to settle now (and forget)."""
        with self._lock:
            decided, self._decided = self._decided, []
            return decided

    def take_waiting(self, keep: Callable[[Message], bool] = lambda _: False) -> list[Message]:
        """Unstarted messages to hand back (and forget), except those ``keep`` says to hold."""
        with self._lock:
            waiting = [m for m in self._waiting if not keep(m)]
            self._waiting = deque(m for m in self._waiting if keep(m))
            return waiting

    def held(self) -> list[Message]:
        """Every message whose visibility this worker must keep extending."""
        with self._lock:
            current = [self._running.message] if self._running else []
            # A message left to come back is no longer kept invisible.
            decided = [o.message for o in self._decided if not isinstance(o.action, Leave)]
            return current + list(self._waiting) + decided
