"""The dead-letter queue: look at what is there, and send it back to the request queue.

One place for what `lab dlq` and the dashboard do. Looking receives messages with a short
visibility timeout and hands them straight back (visibility 0), so a look raises each message's
receive count by one and moves nothing. A redrive of everything uses SQS's own
``StartMessageMoveTask`` where the endpoint has it (AWS, LocalStack); a redrive of one message,
or of everything where the endpoint lacks the task (moto), is the lab's move: send a copy to the
request queue and delete the original only after the send succeeded, so a failure between the
two leaves a duplicate (which the worker's claims absorb), never a loss.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lab.client import activity
from lab.errors import LabError
from lab.runtime.resources import LabEnv
from worker.aws import Clients
from worker.handle.request import salvage_envelope
from worker.state.activity import EventName

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import MessageTypeDef

_HOLD_S = 20  # how long a look hides what it read: long enough to read the rest of the queue
_MAX_MESSAGES = 1000  # a bound on one look or one move
_MAX_REQUEST = 256 * 1024
_DEAD: EventName = "dead-letter"  # the worker's last word on a message it leaves to the DLQ


class NotInDeadLetters(LabError):
    """Raised when a message id asked for is not in the dead-letter queue."""

    code = "NOT_IN_DLQ"


@dataclass(frozen=True)
class DeadLetter:
    """One message in the dead-letter queue, with the reason the activity log gives."""

    message_id: str
    request_id: str | None
    receive_count: int
    sent_at: float
    reason: str | None
    worker: str | None
    body: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


@dataclass
class Redrive:
    """What a redrive did: how, which messages, and the SQS task handle if SQS moves them."""

    method: str  # StartMessageMoveTask or lab-move
    moved: list[str] = field(default_factory=list)
    task_handle: str | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def _receive(clients: Clients, url: str) -> Iterator[MessageTypeDef]:
    """Every message of the queue once, each hidden for ``_HOLD_S`` while the rest is read."""
    seen: set[str] = set()
    while len(seen) < _MAX_MESSAGES:
        reply = clients.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=_HOLD_S,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        fresh = [m for m in reply.get("Messages", []) if m["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            yield message


def _release(clients: Clients, url: str, messages: list[MessageTypeDef]) -> None:
    """Hand messages back (visible again now)."""
    for message in messages:
        with contextlib.suppress(ClientError):  # if refused, its hold runs out in _HOLD_S
            clients.sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )


def _reasons(clients: Clients, env: LabEnv, ids: set[str]) -> dict[str, activity.Line]:
    """The last ``dead-letter`` activity line of each message id; for a message whose worker
    died holding it on its last receive, that worker's ``last-receive`` line."""
    lines = activity.read(clients, env.log_group)
    found = {m: x for m, x in activity.held_by_the_dead(lines).items() if m in ids}
    for line in lines:
        if line.event == _DEAD and line.message_id in ids:
            found[line.message_id] = line
    return found


def _letter(message: MessageTypeDef, why: activity.Line | None) -> DeadLetter:
    attrs = message.get("Attributes", {})
    body = message["Body"]
    envelope = salvage_envelope(body.encode(), _MAX_REQUEST)
    return DeadLetter(
        message_id=message["MessageId"],
        request_id=envelope.request_id or (why.request_id if why else None),
        receive_count=int(attrs.get("ApproximateReceiveCount", 0)),
        sent_at=int(attrs.get("SentTimestamp", 0)) / 1000,
        reason=_reason(why),
        worker=why.worker if why else None,
        body=body,
    )


def _reason(why: activity.Line | None) -> str | None:
    if why is None:
        return None
    if why.event == _DEAD:
        return why.detail
    return f"{why.worker} took its last receive and ended before answering ({why.detail})"


def peek(clients: Clients, env: LabEnv) -> list[DeadLetter]:
    """Every message in the dead-letter queue (left there), oldest first."""
    messages = list(_receive(clients, env.dead_letter_queue_url))
    _release(clients, env.dead_letter_queue_url, messages)
    why = _reasons(clients, env, {m["MessageId"] for m in messages})
    letters = [_letter(m, why.get(m["MessageId"])) for m in messages]
    return sorted(letters, key=lambda x: x.sent_at)


def show(clients: Clients, env: LabEnv, message_id: str) -> DeadLetter:
    """One message of the dead-letter queue; ``NotInDeadLetters`` if it is not there."""
    for letter in peek(clients, env):
        if letter.message_id == message_id:
            return letter
    raise NotInDeadLetters(f"message {message_id} is not in the dead-letter queue")


def _move(clients: Clients, env: LabEnv, message: MessageTypeDef) -> None:
    """Copy to the request queue, then delete the original (only once the copy is sent)."""
    copy: dict[str, Any] = {"QueueUrl": env.request_queue_url, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        copy["MessageAttributes"] = message["MessageAttributes"]
    clients.sqs.send_message(**copy)
    clients.sqs.delete_message(
        QueueUrl=env.dead_letter_queue_url, ReceiptHandle=message["ReceiptHandle"]
    )


def redrive_one(clients: Clients, env: LabEnv, message_id: str) -> Redrive:
    """Move one message back to the request queue (the lab's move: SQS moves only whole queues)."""
    held: list[MessageTypeDef] = []
    try:
        for message in _receive(clients, env.dead_letter_queue_url):
            if message["MessageId"] == message_id:
                _move(clients, env, message)
                return Redrive("lab-move", [message_id])
            held.append(message)
    finally:
        _release(clients, env.dead_letter_queue_url, held)
    raise NotInDeadLetters(f"message {message_id} is not in the dead-letter queue")


def _arn(clients: Clients, url: str) -> str:
    attrs = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


def redrive_all(clients: Clients, env: LabEnv) -> Redrive:
    """Move everything back: SQS's move task where the endpoint has one, else the lab's move."""
    try:
        task = clients.sqs.start_message_move_task(
            SourceArn=_arn(clients, env.dead_letter_queue_url),
            DestinationArn=_arn(clients, env.request_queue_url),
        )
        return Redrive("StartMessageMoveTask", task_handle=task.get("TaskHandle"))
    except ClientError as exc:
        why = exc.response.get("Error", {}).get("Code", "error")
        note = f"StartMessageMoveTask refused ({why}); moved by the lab"
    moved = []
    started = time.monotonic()
    for message in _receive(clients, env.dead_letter_queue_url):
        _move(clients, env, message)
        moved.append(message["MessageId"])
    note += f" in {time.monotonic() - started:.1f} s"
    return Redrive("lab-move", moved, note=note)
