"""Every message ends with exactly one outcome: what became of it, and what SQS must do with it.

Processing (``worker.handle.pipeline``) and the loop decide an ``Outcome``; the settle step
(``worker.consume.settle``) alone performs its ``action`` and records it, once, with what SQS
really did. Logs, stats and tests read this.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Literal

from worker.consume.queue import Message
from worker.state.activity import EventName

_TIMED = 20  # job durations kept for the status document (the scaler's mean job time)


@dataclass(frozen=True)
class Delete:
    """Answered: delete the message."""


@dataclass(frozen=True)
class RetryAfter:
    """Visible again in ``seconds``: not answered yet, or answered and kept for the dead-letter
    queue (its next receive is past ``maxReceiveCount``, so the redrive policy moves it there;
    the seconds give its logged reason the lead)."""

    seconds: int


@dataclass(frozen=True)
class HandBack:
    """Visible again now (visibility 0), for another worker to take: unstarted, or stopped
    unfinished (a spot interruption, a rebalance recommendation)."""


@dataclass(frozen=True)
class Leave:
    """No call: the message comes back when its visibility runs out, and after
    ``maxReceiveCount`` receives the redrive policy moves it to the dead-letter queue."""


Action = Delete | RetryAfter | HandBack | Leave
DELETE, HAND_BACK, LEAVE = Delete(), HandBack(), Leave()

Kind = Literal[
    "delivered",  # success response delivered; delete
    "error-delivered",  # error response delivered; delete
    "redelivered",  # duplicate of a finished request: stored response re-sent; delete
    "retried",  # to come back (busy claim, crashed binary, delivery failed, internal error)
    "dead-lettered",  # last receive: left (or, answered, visible again soon) for the redrive policy
    "fenced",  # the claim was taken over: this worker's result is withheld, the taker answers
    "released",  # handed back unstarted (draining, or held too long behind a long job)
]


@dataclass(frozen=True)
class Outcome:
    """How one message ended on this worker, the SQS action that ends it, and its log line.

    ``event``, ``status`` and ``detail`` are the activity-log line the settle step writes for it
    (``deleted`` for a ``Delete`` that SQS did); ``response`` is the body delivered, if any.
    """

    kind: Kind
    message: Message
    action: Action
    seconds: float = 0.0
    event: EventName = "deleted"
    status: str = "ok"
    detail: str = ""
    service: str | None = None
    request_id: str | None = None
    code: str | None = None
    response: bytes | None = None

    @property
    def message_id(self) -> str:
        """The SQS message id."""
        return self.message.message_id


def released(message: Message, why: str) -> Outcome:
    """The outcome of a message handed back unstarted."""
    return Outcome("released", message, HAND_BACK, event="released", detail=why)


@dataclass
class Stats:
    """Outcomes so far, by kind; SQS actions that failed; recent job durations."""

    outcomes: Counter[str] = field(default_factory=Counter)
    unsettled: Counter[str] = field(default_factory=Counter)  # action name -> times SQS refused
    last: Outcome | None = None
    # Recent jobs timed to an answer, each with its service: one append per job, so that the
    # status thread reads them whole while the loop thread records.
    timed: deque[tuple[float, str | None]] = field(default_factory=lambda: deque(maxlen=_TIMED))

    @property
    def durations(self) -> tuple[float, ...]:
        """The recent timed jobs' durations, oldest first."""
        return tuple(seconds for seconds, _ in tuple(self.timed))

    def record(self, outcome: Outcome, applied: bool = True) -> None:
        """Count one outcome (``applied``: SQS did its action); time those that ran to an answer."""
        self.outcomes[outcome.kind] += 1
        if not applied:
            self.unsettled[type(outcome.action).__name__] += 1
        self.last = outcome
        if outcome.kind in ("delivered", "error-delivered") and outcome.seconds > 0:
            self.timed.append((round(outcome.seconds, 3), outcome.service))
