"""The queue adapter: receive, extend, release and delete request messages; send responses.

It translates SQS calls and nothing more. Deletes and visibility changes go in batches of ten,
which is what keeps round trips per job low.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

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

    def delete(self, messages: Sequence[Message]) -> list[Message]:
        """Delete ``messages``; return those SQS refused (their handle expired)."""
        failed: list[Message] = []
        for chunk in _chunks(messages):
            reply = self._sqs.delete_message_batch(
                QueueUrl=self._request_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)
                ],
            )
            failed.extend(chunk[int(f["Id"])] for f in reply.get("Failed", []))
        return failed

    def set_visibility(self, messages: Sequence[Message], seconds: int) -> list[Message]:
        """Make ``messages`` invisible for ``seconds`` more (0 hands them back); return failures."""
        failed: list[Message] = []
        for chunk in _chunks(messages):
            reply = self._sqs.change_message_visibility_batch(
                QueueUrl=self._request_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": seconds}
                    for i, m in enumerate(chunk)
                ],
            )
            failed.extend(chunk[int(f["Id"])] for f in reply.get("Failed", []))
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


def _chunks(messages: Sequence[Message]) -> list[Sequence[Message]]:
    return [messages[i : i + _BATCH] for i in range(0, len(messages), _BATCH)]
