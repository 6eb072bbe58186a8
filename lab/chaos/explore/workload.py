"""The explorer's client: turns a ``JobPlan`` into a request body (the same body every time, so
that a resubmission is the very same request) and sends it."""

from __future__ import annotations

import os
import time
import zlib

from lab.chaos.explore.arena import Arena
from lab.chaos.explore.checker import Sent
from lab.chaos.explore.schedule import JobPlan
from lab.client.submit import Auth, JobSpec, build_xml, send
from lab.runtime import stack

CALLBACK_AUTH = Auth(*stack.CALLBACK_AUTH.split(":", 1))
MALFORMED = b"<request service='analyze'><input"  # not XML: answered by message id


class Client:
    """Sends the schedule's jobs into one arena; remembers what it sent."""

    def __init__(self, arena: Arena) -> None:
        self.arena = arena
        self.sent: list[Sent] = []
        self._inputs: dict[str, str] = {}
        self._bodies: dict[str, bytes] = {}  # request id -> body, for resubmissions

    def body(self, job: JobPlan) -> bytes:
        """The request body of ``job`` (a resubmission: its original's)."""
        key = job.of or job.request_id
        if key in self._bodies:
            return self._bodies[key]
        if job.kind == "malformed":
            return MALFORMED
        callback = job.output == "callback"
        r = zlib.crc32(key.encode()) % 201 - 100  # fixed by the id: a resubmission is identical
        if job.kind == "noop":
            spec = JobSpec("noop")
        elif job.kind == "invalid":
            spec = JobSpec("analyze", self.video(0.1), params=[("R", "5000")])
        else:
            fault = "crash" if job.kind == "poison" else None
            spec = JobSpec("analyze", self.video(job.seconds, fault), params=[("R", str(r))])
        spec = JobSpec(
            spec.service,
            spec.input_url,
            params=spec.params,
            response=job.output,
            callback_url=self.arena.callback_url if callback else None,
            callback_auth=CALLBACK_AUTH if callback else None,
            request_id=key,
        )
        self._bodies[key] = body = build_xml(spec)
        return body

    def video(self, seconds: float, fault: str | None = None) -> str:
        """An input the analyser spends about ``seconds`` of the lab's machine on (uploaded once
        per length, to a hundredth of a second)."""
        seconds = max(0.01, round(seconds, 2))
        speed = self.arena.settings.job_speed
        duration = seconds * (os.cpu_count() or 1) / speed
        name = f"explore/{duration:g}{'-' + fault if fault else ''}.fakevideo"
        if name not in self._inputs:
            header = f"FAKEVIDEO duration={duration:g}" + (f" fault={fault}" if fault else "")
            self.arena.clients.s3.put_object(
                Bucket=self.arena.env.bucket, Key=name, Body=header.encode() + b"\n"
            )
            self._inputs[name] = f"s3://{self.arena.env.bucket}/{name}"
        return self._inputs[name]

    def send(self, job: JobPlan) -> Sent:
        """Send ``job``; what was sent (its key, when, its message id)."""
        body = self.body(job)
        message_id = send(self.arena.clients.sqs, self.arena.env.request_queue_url, body)
        key = f"message:{message_id}" if job.kind == "malformed" else (job.of or job.request_id)
        sent = Sent(key, time.time(), message_id)
        self.sent.append(sent)
        self.arena.bodies.append(body)
        return sent

    def resend(self, key: str) -> None:
        """Send a request again as it was first sent (after the emulator forgot it)."""
        if key in self._bodies:
            message_id = send(
                self.arena.clients.sqs, self.arena.env.request_queue_url, self._bodies[key]
            )
            self.sent.append(Sent(key, time.time(), message_id))
