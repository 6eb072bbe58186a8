"""Every message ends with exactly one recorded outcome; logs, stats and tests read this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "delivered",  # success response delivered, message deleted
    "error-delivered",  # error response delivered, message deleted
    "redelivered",  # duplicate of a finished request: stored response re-sent, message deleted
    "retried",  # left on the queue to come back (busy claim, delivery failed, claim lost)
    "dead-lettered",  # last receive: left for the redrive policy to move to the DLQ
    "fenced",  # the claim was taken over: this worker's result is withheld, the taker answers
    "released",  # handed back unstarted (draining, or held too long behind a long job)
]


@dataclass(frozen=True)
class Outcome:
    """How one message ended on this worker."""

    kind: Kind
    message_id: str
    seconds: float
    service: str | None = None
    request_id: str | None = None
    code: str | None = None
    detail: str = ""

    @property
    def settled(self) -> bool:
        """True when the message is finished and may be deleted from the queue."""
        return self.kind in ("delivered", "error-delivered", "redelivered")
