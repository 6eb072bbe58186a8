"""The settle step: the one place that ends a message in SQS and records how it ended.

It takes decided ``Outcome``s, performs their actions in batches (``DeleteMessageBatch`` for
deletes, one ``ChangeMessageVisibilityBatch`` for every retry and hand-back, each with its own
timeout) and records each outcome exactly once, in the activity log and the stats, with what SQS
really did: a delete SQS refused is logged as ``error DELETE_FAILED``, not as ``deleted`` (the
message comes back and its stored response is re-sent); a visibility change SQS refused keeps
its event, with status ``VISIBILITY_FAILED`` (the message comes back when its visibility runs
out instead). ``Leave`` needs no call: it is only recorded.

Only the loop thread calls it (dramatiq's consumer thread acks alone); the heartbeat, beside it,
only extends visibility.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.consume.outcome import Delete, HandBack, Outcome, RetryAfter, Stats
from worker.consume.queue import Message, RequestQueue
from worker.state.activity import ActivityLog


class Settle:
    """Applies outcomes to the request queue and records them."""

    def __init__(self, queue: RequestQueue, log: ActivityLog, stats: Stats) -> None:
        self._queue = queue
        self._log = log
        self._stats = stats

    def __call__(self, outcomes: Sequence[Outcome]) -> None:
        """Apply and record every outcome in ``outcomes`` (in their order)."""
        if not outcomes:
            return
        deletes = [o.message for o in outcomes if isinstance(o.action, Delete)]
        changes = [(o.message, _visibility(o)) for o in outcomes if _changes_visibility(o)]
        failed: dict[Message, str] = {}
        if deletes:
            failed |= self._queue.delete(deletes)
        if changes:
            failed |= self._queue.change_visibility(changes)
        for outcome in outcomes:
            self.record(outcome, failed.get(outcome.message))

    def record(self, outcome: Outcome, failure: str | None = None) -> None:
        """Write the outcome's one log line and count it (``failure``: why SQS refused it)."""
        ids = {
            "message_id": outcome.message_id,
            "request_id": outcome.request_id,
            "service": outcome.service,
        }
        if isinstance(outcome.action, Delete):
            if failure is None:
                self._log.event("deleted", **ids)
            else:
                self._log.event("error", status="DELETE_FAILED", detail=failure, **ids)
        elif failure is None:
            self._log.event(outcome.event, status=outcome.status, detail=outcome.detail, **ids)
        else:
            detail = f"{outcome.detail}; SQS refused the visibility change ({failure})"
            self._log.event(outcome.event, status="VISIBILITY_FAILED", detail=detail, **ids)
        self._stats.record(outcome, applied=failure is None)


def _changes_visibility(outcome: Outcome) -> bool:
    return isinstance(outcome.action, RetryAfter | HandBack)


def _visibility(outcome: Outcome) -> int:
    action = outcome.action
    if isinstance(action, RetryAfter):
        return action.seconds
    assert isinstance(action, HandBack), action
    return 0
