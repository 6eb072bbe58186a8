"""One message, start to end: validate → claim → run → fence → deliver, deciding one ``Outcome``
(lease mode), or validate → run → publish → deliver (result mode).

The pipeline decides and does no SQS I/O on the request message: its ``Outcome`` says what must
happen to the message (delete, retry after N seconds, hand back now, leave it for the redrive
policy), and the settle step (``worker.consume.settle``) does it and records it.

Why this order, in lease mode: the claim comes before the run so a duplicate never runs twice;
the response is recorded in the claim (a conditional write: the fence) before it is delivered, so
a worker that lost its claim can publish nothing. In result mode (short jobs whose only effect is
their output) the run comes first and the response is published with one create-only write
before it is delivered: of overlapping runs one write wins and every run delivers the winner's
response. In both, the message is deleted only after delivery, so a crash at any point leaves it
on the queue to come back.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from worker.config import WorkerConfig
from worker.consume.inbox import Inbox
from worker.consume.offload import request_body
from worker.consume.outcome import (
    DELETE,
    HAND_BACK,
    LEAVE,
    Action,
    Kind,
    Outcome,
    RetryAfter,
)
from worker.consume.queue import Message
from worker.errors import ClaimBusy, ClaimLost, DeliveryError, RequestError, StoreError
from worker.handle.deliver import Deliverer
from worker.handle.ending import Failed, Fenced, Retry
from worker.handle.job import Answer, JobContext, run_job
from worker.handle.request import QUEUE_OUTPUT, OutputSpec
from worker.handle.response import Response, error
from worker.handle.services import Registry
from worker.handle.validate import Job, Rejected, validate
from worker.state.activity import ActivityLog, EventName
from worker.state.claims import AlreadyDone, Claim, Claims, may_be_stored
from worker.state.lease import Lease

_MAX_VISIBILITY_S = 43_200  # SQS's limit on a visibility timeout
_SHIP_INTERVALS = 5  # of the activity log's: the lead of a dead letter's reason over the message


@dataclass(frozen=True)
class _About:
    """The message and the request ids every line and outcome of it carries."""

    message: Message
    service: str | None
    request_id: str | None
    started: float

    def ids(self) -> dict[str, str | None]:
        return {
            "message_id": self.message.message_id,
            "request_id": self.request_id,
            "service": self.service,
        }


@dataclass(frozen=True)
class Pipeline:
    """Everything one message needs; built once per worker."""

    config: WorkerConfig
    claims: Claims
    deliverer: Deliverer
    registry: Registry
    job: JobContext
    log: ActivityLog
    inbox: Inbox
    wall: Callable[[], float] = time.time
    # Set on a rebalance recommendation: the instance may be reclaimed soon, so a job allowed to
    # run longer than a reclaim notice is left to another instance (unless on its last receive).
    rebalancing: threading.Event = field(default_factory=threading.Event)

    def process(self, message: Message) -> Outcome:
        """Take ``message`` to its one outcome; never raises for anything a request can cause."""
        started = time.monotonic()
        self.log.event(
            "received", message_id=message.message_id, detail=f"receive #{message.receive_count}"
        )
        try:  # an extended client's S3 pointer: the request is the body it points at
            body, limit = request_body(message, self.job.s3, self.config)
        except RequestError as exc:  # too broken to name an output: the queue answers
            return self.reject(message, Rejected(exc, None, None, QUEUE_OUTPUT), started)
        checked = validate(body, message.message_id, self.config, self.registry, limit)
        if isinstance(checked, Rejected):
            return self.reject(message, checked, started)
        if self.too_long_now(message, checked):
            about = _About(message, checked.service.name, checked.request.request_id, started)
            why = f"rebalance recommended: a job of up to {checked.service.timeout_s:g}s is left"
            return _outcome(about, "released", HAND_BACK, "released", "rebalance", why)
        if checked.service.claim == "result":
            return self.run_and_publish(message, checked, started)
        return self.claim_and_run(message, checked, started)

    def reject(self, message: Message, rejected: Rejected, started: float) -> Outcome:
        """Answer a request that failed validation with an error response."""
        about = _About(message, rejected.service, rejected.request_id, started)
        exc = rejected.error
        self.log.event("error", status=exc.code, detail=str(exc), **about.ids())
        response = error(
            message.message_id, exc.code, str(exc), rejected.service, rejected.request_id
        )
        return self.deliver(about, rejected.output, response.to_xml(), "error-delivered")

    def claim_and_run(self, message: Message, job: Job, started: float) -> Outcome:
        """Claim the request, then run it (or re-send its stored response)."""
        about = _About(message, job.service.name, job.request.request_id, started)
        try:
            got = self.claims.acquire(
                job.key, message.message_id, self.wall(), self.config.visibility_timeout_s
            )
        except ClaimBusy as exc:
            return self.busy(about, exc)
        if isinstance(got, AlreadyDone):
            return self.resend(about, job, got.claim, "finished before by")
        takeover = " (takeover)" if got.takeover else ""
        self.log.event("claimed", detail=f"token {got.claim.token}{takeover}", **about.ids())
        lease = Lease(self.claims, got.claim)
        self.inbox.start(message, lease)
        try:
            verdict = self.run(about, job, lease.stop_job)
        finally:
            self.inbox.stop(message)
        return self.conclude(about, job, lease, verdict)

    def run_and_publish(self, message: Message, job: Job, started: float) -> Outcome:
        """Result mode: re-send the stored response, or run and publish it with one create-only
        write (lost: deliver the winner's instead). Nothing unpublished is ever delivered."""
        about = _About(message, job.service.name, job.request.request_id, started)
        if may_be_stored(job.request.request_id, message.receive_count):
            ended = self.look_up(about, job)
            if ended is not None:
                return ended
        self.inbox.start(message, None)  # no lease: the heartbeat only keeps it invisible
        try:
            verdict = self.run(about, job, threading.Event())  # nothing cancels it
        finally:
            self.inbox.stop(message)
        if not isinstance(verdict, Answer):
            return self.unanswered(about, verdict)
        return self.publish(about, job, verdict)

    def look_up(self, about: _About, job: Job) -> Outcome | None:
        """Result mode, before the run: re-send a stored response; None: nothing stored, run."""
        try:
            found = self.claims.lookup(job.key)
        except StoreError as exc:
            return self.left(about, exc.code, f"{exc}; not run")
        if found is None:
            return None
        if found.state == "done":
            return self.resend(about, job, found, "finished before by")
        # A lease claim (its service was in lease mode when it was claimed): answered under it.
        return self.claim_and_run(about.message, job, about.started)

    def publish(self, about: _About, job: Job, verdict: Answer) -> Outcome:
        """Result mode, after the run: one create-only write, then deliver what it decided."""
        body = verdict.response.to_xml()
        try:
            published = self.claims.publish(
                job.key, about.message.message_id, body.decode(), self.wall()
            )
        except ClaimBusy as exc:
            return self.busy(about, exc)
        except StoreError as exc:  # left to come back: a later receive runs or re-sends it
            return self.left(about, exc.code, f"result not published, so not delivered: {exc}")
        if not published.ours:
            return self.resend(about, job, published.claim, "published first by")
        self.log.event("published", detail="create-only write won", **about.ids())
        return self.deliver(about, job.request.output, body, _answered(verdict), verdict.response)

    def resend(self, about: _About, job: Job, claim: Claim, how: str) -> Outcome:
        """Deliver the response a finished claim stored, byte for byte, without running."""
        self.log.event("duplicate", detail=f"{how} {claim.owner}", **about.ids())
        body = (claim.response or "").encode()
        return self.deliver(about, job.request.output, body, "redelivered")

    def conclude(
        self, about: _About, job: Job, lease: Lease, verdict: Answer | Retry | Fenced
    ) -> Outcome:
        """Decide what a run comes to: handed back, retried, fenced, or answered and delivered."""
        if lease.abandoned.is_set() and isinstance(verdict, Fenced):
            # Stopped because the instance is being reclaimed (a run that ended first is
            # delivered as usual): visible now, claim free, for another instance to take.
            lease.release()
            why = "spot interruption: handed back unfinished, claim released"
            return _outcome(about, "released", HAND_BACK, "released", "interrupted", why)
        if not isinstance(verdict, Answer):
            return self.unanswered(about, verdict)
        body = verdict.response.to_xml()
        try:
            lease.finish(body.decode())
        except ClaimLost as exc:
            return _fenced(about, str(exc))
        return self.deliver(about, job.request.output, body, _answered(verdict), verdict.response)

    def unanswered(self, about: _About, verdict: Retry | Fenced) -> Outcome:
        """A run that ended without an answer: retried later, or fenced (the taker answers)."""
        if isinstance(verdict, Fenced):
            return _fenced(about, verdict.message)
        # Back once a lease-mode claim's lease has run out, so the next receiver takes it over
        # (result mode has no lease: the same delay spaces its retries alike).
        delay = self.config.visibility_timeout_s + 1
        detail = f"{verdict.message}; back in {delay}s"
        return _outcome(
            about, "retried", RetryAfter(delay), "retry", verdict.code, detail, verdict.code
        )

    def too_long_now(self, message: Message, job: Job) -> bool:
        """Under a rebalance recommendation, is this job too long to start here?"""
        if not self.rebalancing.is_set() or message.last_receive(self.config.max_receive_count):
            return False
        return job.service.timeout_s * self.config.speed > self.config.rebalance_long_s

    def run(self, about: _About, job: Job, cancel: threading.Event) -> Answer | Retry | Fenced:
        """Run the job; a failure a request can cause becomes an error response."""
        began = time.monotonic()
        try:
            verdict = run_job(self.job, job, about.message.receive_count, cancel)
        except RequestError as exc:  # the input could not be fetched, the result not stored
            verdict = Failed(exc.code, str(exc))
        if isinstance(verdict, Retry | Fenced):
            return verdict
        took = time.monotonic() - began
        if isinstance(verdict, Failed):
            self.log.event(
                "error", status=verdict.code, seconds=took, detail=verdict.message, **about.ids()
            )
            response = error(
                about.message.message_id,
                verdict.code,
                verdict.message,
                job.service.name,
                job.request.request_id,
            )
            return Answer(response, dead_letter=verdict.dead_letter)
        self.log.event("ran", seconds=took, **about.ids())
        return verdict

    def busy(self, about: _About, exc: ClaimBusy) -> Outcome:
        """Another worker holds the claim: back on the queue once its lease would end."""
        delay = min(_MAX_VISIBILITY_S, max(1, math.ceil(exc.retry_after) + 1))
        if about.message.last_receive(self.config.max_receive_count):
            # A copy that waited out its receives behind a long job (found by `lab chaos
            # explore`): its next receive moves it to the dead-letter queue, and every dead
            # letter must say why. The holder answers the request.
            detail = f"{exc} on its last receive; the holder answers"
            return _outcome(about, "dead-lettered", self.dead_letter_after(delay), "dead-letter",
                            exc.code, detail, exc.code)  # fmt: skip
        return _outcome(
            about, "retried", RetryAfter(delay), "busy", "retry", f"{exc}; back in {delay}s",
            code=exc.code,
        )  # fmt: skip

    def deliver(
        self,
        about: _About,
        output: OutputSpec,
        body: bytes,
        kind: Kind,
        answer: Response | None = None,
    ) -> Outcome:
        """Deliver ``body`` (``answer``, rendered, where the run made it); then decide: delete
        it, or (a poison) keep it for the DLQ with the answer's error as its reason; on failure
        leave it to come back (on its last receive, for the redrive policy)."""
        try:
            done = self.deliverer.deliver(output, body, about.message.message_id)
        except DeliveryError as exc:
            return self.left(about, exc.code, str(exc))
        self.log.event(
            "delivered", detail=f"{done.target}, {done.attempts} attempt(s)", **about.ids()
        )
        if kind == "dead-lettered":
            assert answer is not None and answer.code, "a poison request is answered with an error"
            detail = f"{answer.message}; answered, and left for the dead-letter queue"
            lead = self.dead_letter_after()
            return _outcome(about, kind, lead, "dead-letter", answer.code, detail, response=body)
        return _outcome(about, kind, DELETE, response=body)

    def dead_letter_after(self, seconds: int = 0) -> RetryAfter:
        """Visible again in ``seconds``, on its last receive: its next receive is past
        maxReceiveCount, so SQS moves it to the DLQ — but not before its "dead-letter" line,
        written as this outcome is settled, has had a few of the activity log's ship intervals.

        ``lab dlq``, the dashboard and the chaos checker take a dead letter's reason from the
        activity log, which ships every ``log_flush_s``. An answered poison request made
        visible at once (as it was) moved before its "dead-letter" line shipped, and the only
        line found was its "last-receive": read as a worker that died holding it — wrong, and
        then changing (CI, `test_a_poisoned_request_shows_its_logged_reason`)."""
        lead = max(2, math.ceil(_SHIP_INTERVALS * self.config.log_flush_s))
        return RetryAfter(max(seconds, lead))

    def left(self, about: _About, code: str, detail: str) -> Outcome:
        """Not answered now: left to come back by itself (no call), or on its last receive for
        the redrive policy to dead-letter, ``detail`` its logged reason."""
        if about.message.last_receive(self.config.max_receive_count):
            return _outcome(about, "dead-lettered", LEAVE, "dead-letter", code, detail, code)
        return _outcome(about, "retried", LEAVE, "retry", code, detail, code)


def _answered(verdict: Answer) -> Kind:
    if verdict.dead_letter:
        return "dead-lettered"  # a poison request: answered, and kept in the DLQ for a look
    return "delivered" if verdict.response.status == "success" else "error-delivered"


def _fenced(about: _About, detail: str) -> Outcome:
    # Left alone: the worker that took the claim over answers and deletes it.
    return _outcome(about, "fenced", LEAVE, "fenced", "lost", detail, ClaimLost.code)


def _outcome(
    about: _About,
    kind: Kind,
    action: Action,
    event: EventName = "deleted",
    status: str = "ok",
    detail: str = "",
    code: str | None = None,
    response: bytes | None = None,
) -> Outcome:
    return Outcome(
        kind=kind,
        message=about.message,
        action=action,
        seconds=time.monotonic() - about.started,
        event=event,
        status=status,
        detail=detail,
        service=about.service or None,
        request_id=about.request_id,
        code=code,
        response=response,
    )
