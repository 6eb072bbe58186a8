"""Evidence gathered apart from the workers' own claims: what the callback receiver received,
what reached the response and dead-letter queues, the activity log in CloudWatch Logs, the claim
documents in S3 and EC2's instances. The tally of a scenario is computed from these alone."""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lab.chaos.report import Tally
from lab.client import activity
from lab.client.activity import Line
from lab.client.results import parse_response
from lab.runtime.resources import LabEnv
from worker.aws import Clients
from worker.handle.request import salvage_envelope
from worker.scaler import ec2
from worker.state.activity import EventName
from worker.state.layout import CLAIMS

_MAX_REQUEST = 256 * 1024
LOG_CATCH_UP_S = 15.0  # how long a dead letter's logged reason is waited for


@dataclass(frozen=True)
class Response:
    """One response as it arrived, keyed by the request id it answers."""

    request_id: str
    message_id: str
    via: str  # callback or queue
    body: str
    at: float  # when it arrived (the receiver's clock, or when the queue was read)
    status: str
    code: str | None


@dataclass
class Evidence:
    """Everything gathered; the response queue is read as the scenario goes (reading takes)."""

    queue: list[Response] = field(default_factory=list)
    callbacks: list[Response] = field(default_factory=list)
    dead_letters: dict[str, str] = field(default_factory=dict)  # DLQ message id -> request id
    activity: list[Line] = field(default_factory=list)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def responses(self) -> list[Response]:
        """Every response, by either road."""
        return self.callbacks + self.queue

    def lines(self, event: EventName, request_id: str | None = None) -> list[Line]:
        """Activity lines of one event (for one request id)."""
        return [
            x
            for x in self.activity
            if x.event == event and (request_id is None or x.request_id == request_id)
        ]

    def unexplained_dead_letters(self, spent: frozenset[str] = frozenset()) -> set[str]:
        """Requests in the dead-letter queue with no "dead-letter" line giving the reason, and
        not ``spent`` (their last receive was the nemesis' own, which no worker saw)."""
        logged = {x.request_id for x in self.lines("dead-letter")}
        # Its holder died on its last receive: the "last-receive" line is the reason.
        orphans = activity.held_by_the_dead(self.activity)
        dead = {r for m, r in self.dead_letters.items() if m not in orphans}
        return dead - logged - spent

    def runs(self, request_id: str) -> int:
        """Completed runs of the binary for a request (killed or fenced runs don't count)."""
        return len(self.lines("ran", request_id))

    def tally(self, sent: list[str]) -> Tally:
        """Count what happened to the requests ``sent`` (request ids, unique)."""
        bodies: dict[str, set[str]] = {}
        for response in self.responses:
            bodies.setdefault(response.request_id, set()).add(_comparable(response.body))
        in_dlq = set(self.dead_letters.values())
        answered = [r for r in sent if r in bodies]
        duplicates = [r for r in sent if self.runs(r) > 1 or len(bodies.get(r, ())) > 1]
        dead = [r for r in sent if r in in_dlq]
        lost = [r for r in sent if r not in bodies and r not in in_dlq]
        return Tally(len(sent), len(answered), len(duplicates), len(dead), len(lost))


def _comparable(body: str) -> str:
    # The same response re-sent is byte-identical; normalise only line endings and edges.
    return body.replace("\r\n", "\n").strip()


def read_queue(clients: Clients, url: str, now: float) -> list[Response]:
    """Take every response now on the response queue."""
    found: list[Response] = []
    while True:
        reply = clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = reply.get("Messages", [])
        if not messages:
            return found
        for message in messages:
            found.append(_response(message["Body"], "queue", now))
        clients.sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def read_callbacks(receiver_url: str) -> list[Response]:
    """Everything the callback receiver recorded (its journal), with its arrival times."""
    with urllib.request.urlopen(f"{receiver_url}/callbacks", timeout=5) as reply:  # noqa: S310
        entries = json.loads(reply.read())
    return [_response(e["body"], "callback", float(e["at"])) for e in entries]


def _response(body: str, via: str, at: float) -> Response:
    parsed = parse_response(body, via)
    return Response(
        request_id=parsed.request_id or f"message:{parsed.message_id}",
        message_id=parsed.message_id,
        via=via,
        body=body,
        at=at,
        status=parsed.status,
        code=parsed.code,
    )


def read_dead_letters(clients: Clients, url: str) -> dict[str, str]:
    """Every message in the dead-letter queue: message id -> request id (read, left there, and
    hidden for a while: keep what was read)."""
    found: dict[str, str] = {}
    for _ in range(20):
        reply = clients.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30
        )
        messages = reply.get("Messages", [])
        if not messages:
            break
        for message in messages:
            found[message["MessageId"]] = request_key(message["Body"], message["MessageId"])
    return found


def request_key(body: str, message_id: str) -> str:
    """The key a request message is checked by: its request id, or its message id without one."""
    envelope = salvage_envelope(body.encode(), _MAX_REQUEST)
    return envelope.request_id or f"message:{message_id}"


def read_activity(clients: Clients, log_group: str) -> list[Line]:
    """Every activity line the fleet shipped to CloudWatch Logs."""
    return activity.read(clients, log_group)


def read_claims(clients: Clients, bucket: str) -> dict[str, dict[str, Any]]:
    """Every claim document, by key."""
    claims: dict[str, dict[str, Any]] = {}
    paginator = clients.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=CLAIMS):
        for item in page.get("Contents", []):
            body = clients.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            try:
                claims[item["Key"]] = json.loads(body.read())
            finally:
                body.close()
    return claims


def gather(
    clients: Clients,
    env: LabEnv,
    evidence: Evidence,
    now: float,
    spent: frozenset[str] = frozenset(),
) -> Evidence:
    """Complete ``evidence`` from every source at the end of a scenario.

    A worker writes a message's "dead-letter" line just after handing it back, and SQS moves it
    the moment the next worker receives it: the move can be seen before the line ships (every
    0.2 s; later when the emulator is loaded). The activity log is read again, for up to
    ``LOG_CATCH_UP_S``, until every dead letter's reason is in (or, if one never comes, the
    checker says which)."""
    evidence.queue += read_queue(clients, env.response_queue_url, now)
    evidence.callbacks = read_callbacks(env.receiver_url) if env.receiver_url else []
    evidence.dead_letters |= read_dead_letters(clients, env.dead_letter_queue_url)
    evidence.activity = read_activity(clients, env.log_group)
    deadline = time.monotonic() + LOG_CATCH_UP_S
    while evidence.unexplained_dead_letters(spent) and time.monotonic() < deadline:
        time.sleep(1.0)
        evidence.activity = read_activity(clients, env.log_group)
    evidence.claims = read_claims(clients, env.bucket)
    return evidence


def fleet_size(clients: Clients, env: LabEnv) -> int:
    """Instances EC2 says are pending or running (0 when EC2 cannot be asked)."""
    try:
        return len(ec2.fleet(clients.ec2, env.env))
    except (BotoCoreError, ClientError):
        return 0


def workers_of(evidence: Evidence, event: EventName) -> Counter[str]:
    """How many ``event`` lines each worker logged."""
    return Counter(x.worker for x in evidence.lines(event))
