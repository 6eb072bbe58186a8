"""The queue adapter: receive request messages, change their visibility, delete them; send
responses.

It translates SQS calls and nothing more: what to delete or hand back is decided elsewhere, and
only the settle step (``worker.consume.settle``) and the heartbeat call ``delete`` and
``change_visibility``. Both go in batches of ten, which is what keeps round trips per job low.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.errors import DeliveryError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_BATCH = 10


@dataclass(frozen=True)
class Message:
    """A received request message."""

    message_id: str
    receipt_handle: str
    body: bytes
    receive_count: int

    def last_receive(self, max_receive_count: int) -> bool:
        """True on the receive after which SQS's redrive policy (``max_receive_count``; 0: none)
        dead-letters the message: not answered now, it is never answered."""
        return 0 < max_receive_count <= self.receive_count


class RequestQueue:
    """The request queue and the response queue, as the worker uses them."""

    def __init__(self, sqs: SQSClient, request_url: str, response_url: str) -> None:
        self._sqs = sqs
        self._request_url = request_url
        self._response_url = response_url

    def receive(self, max_messages: int, wait_s: int, visibility_s: int) -> list[Message]:
        """Long-poll for up to ``max_messages`` (at most 10) messages."""
        reply = self._sqs.receive_message(
            QueueUrl=self._request_url,
            MaxNumberOfMessages=max(1, min(_BATCH, max_messages)),
            WaitTimeSeconds=wait_s,
            VisibilityTimeout=visibility_s,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        return [
            Message(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", "").encode("utf-8", "surrogatepass"),
                receive_count=int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for m in reply.get("Messages", [])
        ]

    def delete(self, messages: Sequence[Message]) -> dict[Message, str]:
        """Delete ``messages``; return those SQS did not delete, with why (never raises)."""
        return self._batch(
            "delete_message_batch",
            [(m, {"ReceiptHandle": m.receipt_handle}) for m in messages],
        )

    def change_visibility(self, changes: Sequence[tuple[Message, int]]) -> dict[Message, str]:
        """Make each message invisible for its ``seconds`` from now (0 hands it back); return
        those SQS did not change, with why (never raises)."""
        return self._batch(
            "change_message_visibility_batch",
            [(m, {"ReceiptHandle": m.receipt_handle, "VisibilityTimeout": s}) for m, s in changes],
        )

    def _batch(self, operation: str, entries: Sequence[tuple[Message, Any]]) -> dict[Message, str]:
        # One call per ten; a call that fails as a whole fails each of its entries, not the rest.
        call = getattr(self._sqs, operation)
        failed: dict[Message, str] = {}
        for start in range(0, len(entries), _BATCH):
            chunk = entries[start : start + _BATCH]
            try:
                reply = call(
                    QueueUrl=self._request_url,
                    Entries=[{"Id": str(i), **entry} for i, (_, entry) in enumerate(chunk)],
                )
            except (BotoCoreError, ClientError) as exc:
                failed.update((m, str(exc)) for m, _ in chunk)
                continue
            for item in reply.get("Failed", []):
                why = f"{item.get('Code', 'error')}: {item.get('Message', '')}".rstrip(": ")
                failed[chunk[int(item["Id"])][0]] = why
        return failed

    def send_response(self, body: bytes) -> str:
        """Put a response on the response queue; return its message id."""
        try:
            reply = self._sqs.send_message(QueueUrl=self._response_url, MessageBody=body.decode())
        except (BotoCoreError, ClientError) as exc:
            raise DeliveryError(f"cannot send to the response queue: {exc}") from None
        return reply["MessageId"]


@dataclass(frozen=True)
class Depth:
    """How many messages a queue holds, by SQS's approximate counts."""

    visible: int
    in_flight: int
    delayed: int


def depth(sqs: SQSClient, url: str) -> Depth:
    """Visible, in-flight (received, not deleted) and delayed messages of the queue at ``url``."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return Depth(
        visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
    )
