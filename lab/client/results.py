"""Read responses: from the response queue (consumed as read) and the receiver's journal."""

from __future__ import annotations

import json
import time
import urllib.request
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lxml import etree

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)


@dataclass(frozen=True)
class Result:
    """One response, flattened for people and JSON."""

    message_id: str
    request_id: str | None
    service: str | None
    status: str
    code: str | None
    message: str
    raw_output: str | None
    files: list[str]
    via: str

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def parse_response(body: str | bytes, via: str) -> Result:
    """Read a response document (schemas/response.xsd). A message that is not XML comes back
    ``unreadable`` (code ``UNREADABLE``, no ids) rather than ending the reader: something else
    wrote to the queue, and the reader shows it and goes on."""
    data = body.encode() if isinstance(body, str) else body
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        return Result(message_id="", request_id=None, service=None, status="unreadable",
                      code="UNREADABLE", message=f"not a response document: {exc}",
                      raw_output=None, files=[], via=via)  # fmt: skip
    ref = root.find("request")
    message = root.find("message")
    raw = root.find("rawOutput")
    return Result(
        message_id=ref.get("messageId", "") if ref is not None else "",
        request_id=ref.get("requestId") if ref is not None else None,
        service=root.get("service"),
        status=root.get("status", ""),
        code=message.get("code") if message is not None else None,
        message=(message.text or "") if message is not None else "",
        raw_output=raw.text if raw is not None else None,
        files=[f.get("url", "") for f in root.iterfind("file")],
        via=via,
    )


def from_queue(
    sqs: SQSClient, queue_url: str, wait_s: float, expect: int | None = None
) -> list[Result]:
    """Take responses off the queue until ``wait_s`` passes (or ``expect`` have come)."""
    found: list[Result] = []
    deadline = time.monotonic() + wait_s
    while True:
        left = deadline - time.monotonic()
        reply = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=max(0, min(20, int(left)))
        )
        messages = reply.get("Messages", [])
        for message in messages:
            found.append(parse_response(message["Body"], "queue"))
        if messages:
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        if (expect is not None and len(found) >= expect) or time.monotonic() >= deadline:
            return found
        if found and not messages:
            return found  # what had arrived is all read; don't sit out the rest of the wait


def journal(receiver_url: str) -> list[dict[str, Any]]:
    """The receiver's journal as it keeps it: one entry per callback (at, message id, status,
    auth_ok, repeat, body)."""
    with urllib.request.urlopen(f"{receiver_url}/callbacks", timeout=5) as reply:  # noqa: S310
        return list(json.loads(reply.read()))


def from_receiver(receiver_url: str) -> list[Result]:
    """Everything the lab's callback receiver has recorded."""
    return [parse_response(entry["body"], "callback") for entry in journal(receiver_url)]
