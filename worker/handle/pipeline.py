"""One message, start to end: parse → claim → run → deliver → settle, ending in one ``Outcome``.

Why this order: the claim comes before the run so a duplicate never runs twice; the response is
recorded in the claim (a conditional write: the fence) before it is delivered, so a worker that
lost its claim can publish nothing; the message is deleted only after delivery, so a crash at
any point leaves it on the queue to come back.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.config import WorkerConfig
from worker.consume.inbox import Inbox
from worker.consume.outcome import Kind, Outcome
from worker.consume.queue import Message, RequestQueue
from worker.errors import (
    BinaryCrashed,
    ClaimBusy,
    ClaimLost,
    DeliveryError,
    InvalidRequest,
    MissingInput,
    RequestError,
    UrlRejected,
)
from worker.handle.deliver import Deliverer
from worker.handle.job import JobContext, run_job
from worker.handle.request import (
    QUEUE_OUTPUT,
    Envelope,
    OutputSpec,
    Request,
    parse_request,
    salvage_envelope,
)
from worker.handle.response import Response, error
from worker.handle.services import Registry, Service
from worker.net.urls import check_url
from worker.state.activity import ActivityLog, EventName
from worker.state.claims import AlreadyDone, Claims, claim_key
from worker.state.lease import Lease


@dataclass(frozen=True)
class Pipeline:
    """Everything one message needs; built once per worker."""

    config: WorkerConfig
    queue: RequestQueue
    claims: Claims
    deliverer: Deliverer
    registry: Registry
    job: JobContext
    log: ActivityLog
    inbox: Inbox
    wall: Callable[[], float] = time.time

    def process(self, message: Message) -> Outcome:
        """Take ``message`` to its one outcome; never raises for anything a request can cause."""
        started = time.monotonic()
        self.log.event(
            "received", message_id=message.message_id, detail=f"receive #{message.receive_count}"
        )
        try:
            request, service = self.parse(message)
        except RequestError as exc:
            envelope = salvage_envelope(message.body, self.config.limits.max_request_bytes)
            return self.reject(message, exc, envelope, started)
        return self.claim_and_run(message, request, service, started)

    def parse(self, message: Message) -> tuple[Request, Service]:
        """Validate the body, the service, its parameters and the callback URL."""
        request = parse_request(message.body, self.config.limits.max_request_bytes)
        service = self.registry.get(request.service)
        service.check(request.parameters)
        if service.needs_input and request.input is None:
            raise MissingInput(f"service {service.name!r} needs an <input>")
        if request.input is not None:
            scheme = request.input.url.split(":", 1)[0].lower()
            expected = ("s3",) if request.input.type == "s3" else ("http", "https")
            if scheme not in expected:
                raise InvalidRequest(
                    f'<input type="{request.input.type}"> needs a {expected[0]} URL'
                )
        if request.output.url is not None:
            check_url(request.output.url, self.config.url_policy)
        return request, service

    def claim_and_run(
        self, message: Message, request: Request, service: Service, started: float
    ) -> Outcome:
        """Claim the request, then run it (or re-send its stored response)."""
        key = claim_key(message.message_id, request.request_id)
        ids = {
            "message_id": message.message_id,
            "request_id": request.request_id,
            "service": service.name,
        }
        try:
            got = self.claims.acquire(
                key, message.message_id, self.wall(), self.config.visibility_timeout_s
            )
        except ClaimBusy as exc:
            return self.busy(message, request, exc, ids, started)
        if isinstance(got, AlreadyDone):
            self.log.event("duplicate", detail=f"finished before by {got.claim.owner}", **ids)
            body = (got.claim.response or "").encode()
            return self.deliver(message, request.output, body, request, started, "redelivered")
        self.log.event(
            "claimed",
            detail=f"token {got.claim.token}{' (takeover)' if got.takeover else ''}",
            **ids,
        )
        lease = Lease(self.claims, got.claim)
        self.inbox.start(message, lease)
        try:
            response = self.run(message, request, service, key, lease.lost)
        except ClaimLost as exc:
            self.log.event("fenced", status="lost", detail=str(exc), **ids)
            return self._outcome("fenced", message, request, started, code=exc.code)
        except BinaryCrashed as exc:
            # Back once this claim's lease has run out, so the next receiver takes it over.
            delay = self.config.visibility_timeout_s + 1
            self.queue.set_visibility([message], delay)
            self.log.event("retry", status=exc.code, detail=f"{exc}; back in {delay}s", **ids)
            return self._outcome("retried", message, request, started, code=exc.code)
        finally:
            self.inbox.stop()
        body = response.to_xml()
        try:
            lease.finish(body.decode())
        except ClaimLost as exc:
            self.log.event("fenced", status="lost", detail=str(exc), **ids)
            return self._outcome("fenced", message, request, started, code=exc.code)
        kind: Kind = "delivered" if response.status == "success" else "error-delivered"
        if response.code == BinaryCrashed.code:
            kind = "dead-lettered"  # a poison request: answered, and kept in the DLQ for a look
        return self.deliver(message, request.output, body, request, started, kind)

    def busy(
        self,
        message: Message,
        request: Request,
        exc: ClaimBusy,
        ids: dict[str, str | None],
        started: float,
    ) -> Outcome:
        """Another worker holds the claim: back on the queue until its lease would end."""
        delay = min(43_200, max(1, math.ceil(exc.retry_after) + 1))
        self.queue.set_visibility([message], delay)
        if message.last_receive(self.config.max_receive_count):
            # A copy that waited out its receives behind a long job: its next receive moves it
            # to the dead-letter queue, and every dead letter must say why. The holder answers.
            detail = f"{exc} on its last receive; the holder answers"
            self.log.event("dead-letter", status=exc.code, detail=detail, **ids)
            return self._outcome("dead-lettered", message, request, started, code=exc.code)
        self.log.event("busy", status="retry", detail=f"{exc}; back in {delay}s", **ids)
        return self._outcome("retried", message, request, started, code=exc.code)

    def run(
        self,
        message: Message,
        request: Request,
        service: Service,
        key: str,
        cancel: threading.Event,
    ) -> Response:
        """Run the job; a failure a request can cause becomes an error response."""
        ids = {
            "message_id": message.message_id,
            "request_id": request.request_id,
            "service": service.name,
        }
        began = time.monotonic()
        try:
            response = run_job(self.job, request, service, message.message_id, key, cancel)
        except ClaimLost:
            raise
        except BinaryCrashed as exc:
            if not message.last_receive(self.config.max_receive_count):
                raise
            self.log.event(
                "error", status=exc.code, seconds=time.monotonic() - began, detail=str(exc), **ids
            )
            detail = f"{exc} on each of {message.receive_count} receives"
            return error(message.message_id, exc.code, detail, service.name, request.request_id)
        except RequestError as exc:
            self.log.event(
                "error", status=exc.code, seconds=time.monotonic() - began, detail=str(exc), **ids
            )
            return error(message.message_id, exc.code, str(exc), service.name, request.request_id)
        self.log.event("ran", seconds=time.monotonic() - began, **ids)
        return response

    def reject(
        self, message: Message, exc: RequestError, envelope: Envelope, started: float
    ) -> Outcome:
        """Answer a request that failed validation with an error response."""
        output = self._safe_output(envelope.output, exc)
        self.log.event(
            "error",
            message_id=message.message_id,
            request_id=envelope.request_id,
            service=envelope.service,
            status=exc.code,
            detail=str(exc),
        )
        response = error(
            message.message_id, exc.code, str(exc), envelope.service, envelope.request_id
        )
        request = Request(
            service=envelope.service or "", output=output, request_id=envelope.request_id
        )
        return self.deliver(message, output, response.to_xml(), request, started, "error-delivered")

    def _safe_output(self, output: OutputSpec, exc: RequestError) -> OutputSpec:
        """The callback of a rejected request, if its URL passes the policy; else the queue."""
        if isinstance(exc, UrlRejected) or output.url is None:
            return QUEUE_OUTPUT  # a refused callback URL is never contacted
        try:
            check_url(output.url, self.config.url_policy)
        except UrlRejected:
            return QUEUE_OUTPUT
        return output

    def deliver(
        self,
        message: Message,
        output: OutputSpec,
        body: bytes,
        request: Request,
        started: float,
        kind: Kind,
    ) -> Outcome:
        """Deliver, then settle (delete with the next batch); on failure leave it to come back."""
        ids = {
            "message_id": message.message_id,
            "request_id": request.request_id,
            "service": request.service or None,
        }
        try:
            done = self.deliverer.deliver(output, body, message.message_id)
        except DeliveryError as exc:
            last = message.last_receive(self.config.max_receive_count)
            event: EventName = "dead-letter" if last else "retry"
            self.log.event(event, status=exc.code, detail=str(exc), **ids)
            return self._outcome(
                "dead-lettered" if last else "retried", message, request, started, code=exc.code
            )
        self.log.event("delivered", detail=f"{done.target}, {done.attempts} attempt(s)", **ids)
        if kind == "dead-lettered":
            self.queue.set_visibility([message], 0)  # its next receive moves it to the DLQ
            self.log.event("dead-letter", detail="answered; left for the dead-letter queue", **ids)
        else:
            self.inbox.settle(message)
        return self._outcome(kind, message, request, started)

    def _outcome(
        self,
        kind: Kind,
        message: Message,
        request: Request,
        started: float,
        code: str | None = None,
    ) -> Outcome:
        return Outcome(
            kind=kind,
            message_id=message.message_id,
            seconds=time.monotonic() - started,
            service=request.service or None,
            request_id=request.request_id,
            code=code,
        )
