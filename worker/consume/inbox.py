"""The messages a worker holds: those taken to run (some running), those waiting, those decided.

Shared by the loop (which takes, starts job threads and settles), the job threads (which mark
their job running and decide its outcome) and the heartbeat (which only reads what to keep
invisible); every access goes through one lock.
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
        self._taken: dict[str, Message] = {}  # by message id: taken to run, not yet decided
        self._running: dict[str, Running] = {}  # by message id: those of them past their claim
        self._decided: list[Outcome] = []
        # Held across a batch of visibility changes or deletes (heartbeat and settle step), so
        # that an extension read before a hand-back can never land after it and undo it.
        self.changing = threading.Lock()

    def add(self, messages: Iterable[Message]) -> None:
        """Queue freshly received messages."""
        with self._lock:
            self._waiting.extend(messages)

    def take(self, fits: Callable[[Message], bool] = lambda _: True) -> Message | None:
        """The first waiting message ``fits`` accepts, taken to run (held until decided); None
        if there is none. Those it passes over keep their place."""
        with self._lock:
            for message in self._waiting:
                if fits(message):
                    self._waiting.remove(message)
                    self._taken[message.message_id] = message
                    return message
            return None

    def waiting(self) -> int:
        """How many messages wait to be taken."""
        with self._lock:
            return len(self._waiting)

    def start(self, message: Message, lease: Lease | None) -> None:
        """Mark ``message``'s job as running (its run begins now)."""
        with self._lock:
            self._running[message.message_id] = Running(message, lease, self._clock())

    def stop(self, message: Message) -> None:
        """``message``'s job is no longer running."""
        with self._lock:
            self._running.pop(message.message_id, None)

    def running(self) -> list[Running]:
        """The running jobs, the longest-running first."""
        with self._lock:
            return sorted(self._running.values(), key=lambda r: r.started)

    def decide(self, outcome: Outcome) -> None:
        """``outcome`` is decided; the settle step applies it with the next batch."""
        with self._lock:
            self._taken.pop(outcome.message_id, None)
            self._running.pop(outcome.message_id, None)
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
            taken = list(self._taken.values())
            # A message left to come back is no longer kept invisible.
            decided = [o.message for o in self._decided if not isinstance(o.action, Leave)]
            return taken + list(self._waiting) + decided
