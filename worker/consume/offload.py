"""Requests whose body AWS's SQS extended client libraries stored in S3 ("offloaded").

Such a message carries, instead of the request, the JSON pointer
``["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": B, "s3Key": K}]``
and the reserved message attribute ``ExtendedPayloadSize`` (``SQSLargePayloadSize`` in older
releases). ``request_body`` reads the body it points at: from the fleet's own bucket only, and
at most ``max_offloaded_request_bytes`` plus one byte (a larger body then fails validation as
REQUEST_TOO_LARGE, its envelope still read from that prefix). ``DeleteBodies`` removes the
stored body once SQS has deleted its message, as the libraries do: nothing is left behind, and
nothing is removed that a redelivery would still need.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from worker.config import WorkerConfig
from worker.errors import FetchError, InvalidRequest, UrlRejected

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from worker.consume.queue import Message

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
_POINTER_MAX = 4096  # a pointer is a short JSON array; anything longer is not one


@dataclass(frozen=True)
class Pointer:
    """Where an offloaded request body is."""

    bucket: str
    key: str


def pointer_of(message: Message) -> Pointer:
    """The S3 pointer an offloaded ``message`` carries; ``InvalidRequest`` if it is not one."""
    try:
        if len(message.body) > _POINTER_MAX:
            raise ValueError("too long")
        kind, where = json.loads(message.body)
        bucket, key = where["s3BucketName"], where["s3Key"]
        if kind != POINTER_CLASS or not isinstance(bucket, str) or not isinstance(key, str):
            raise ValueError("not a PayloadS3Pointer")
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidRequest(
            f"message is marked as offloaded to S3 but its body is no S3 pointer ({exc})"
        ) from None
    if not bucket or not key:
        raise InvalidRequest("the S3 pointer names no bucket or no key")
    return Pointer(bucket, key)


def request_body(message: Message, s3: S3Client, config: WorkerConfig) -> tuple[bytes, int]:
    """The request's body and the size limit it is held to: the message's own body (inline),
    or, for an offloaded message, the body read from S3 (at most the limit plus one byte)."""
    if message.payload_size is None:
        return message.body, config.limits.max_request_bytes
    limit = config.limits.max_offloaded_request_bytes
    pointer = pointer_of(message)
    if pointer.bucket != config.bucket:
        raise UrlRejected(
            f"offloaded request is in bucket {pointer.bucket!r}; only the fleet's bucket is read"
        )
    try:
        reply = s3.get_object(Bucket=pointer.bucket, Key=pointer.key, Range=f"bytes=0-{limit}")
        body = reply["Body"].read(limit + 1)
    except (BotoCoreError, ClientError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        raise FetchError(
            f"offloaded request s3://{pointer.bucket}/{pointer.key} cannot be read: "
            f"{code or type(exc).__name__}"
        ) from None
    return body, limit


class DeleteBodies:
    """Deletes the S3 bodies of offloaded messages SQS has deleted (``RequestQueue``'s
    ``on_deleted``), from the fleet's bucket only; best effort: a body left behind costs
    storage, not correctness."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def __call__(self, deleted: Sequence[Message]) -> None:
        for message in deleted:
            if message.payload_size is None:
                continue
            try:
                pointer = pointer_of(message)
            except InvalidRequest:
                continue  # answered as invalid: there is no object of ours to remove
            if pointer.bucket != self._bucket:
                continue  # never touch another bucket
            try:
                self._s3.delete_object(Bucket=pointer.bucket, Key=pointer.key)
            except (BotoCoreError, ClientError):
                continue
