"""Small JSON state objects with conditional writes: the one interface state goes through.

S3 is the backend (``IfNoneMatch="*"`` to create, ``IfMatch=<etag>`` to replace); moto, LocalStack
and AWS all honour both. Another backend only has to implement ``JsonStore``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from worker.errors import PreconditionFailed, StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_LOST = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404"}


@dataclass(frozen=True)
class Versioned:
    """A document and the version tag a conditional replace must name."""

    doc: dict[str, Any]
    etag: str


class JsonStore(Protocol):
    """Create, read and replace small JSON documents, each write conditional if asked."""

    def create(self, key: str, doc: dict[str, Any]) -> str:
        """Write ``doc`` only if ``key`` is absent; return the etag (else PreconditionFailed)."""
        ...

    def replace(self, key: str, doc: dict[str, Any], etag: str) -> str:
        """Write ``doc`` only if ``key`` still has ``etag``; return the new etag."""
        ...

    def put(self, key: str, doc: dict[str, Any]) -> str:
        """Write ``doc`` whatever is there (only for documents with a single writer)."""
        ...

    def read(self, key: str) -> Versioned | None:
        """Return the document and its etag, or None if there is none."""
        ...


class S3JsonStore:
    """``JsonStore`` on an S3 bucket under a key prefix."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str = "") -> None:
        self._s3 = s3
        self._bucket = bucket
        self._prefix = prefix

    def create(self, key: str, doc: dict[str, Any]) -> str:
        return self._write(key, doc, IfNoneMatch="*")

    def replace(self, key: str, doc: dict[str, Any], etag: str) -> str:
        return self._write(key, doc, IfMatch=etag)

    def put(self, key: str, doc: dict[str, Any]) -> str:
        return self._write(key, doc)

    def read(self, key: str) -> Versioned | None:
        try:
            reply = self._s3.get_object(Bucket=self._bucket, Key=self._prefix + key)
            body = reply["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise StoreError(f"cannot read state {key!r}: {_code(exc)}") from None
        try:
            doc = json.loads(body)
        except ValueError:
            raise StoreError(f"state {key!r} is not JSON") from None
        return Versioned(doc=doc, etag=reply["ETag"])

    def _write(self, key: str, doc: dict[str, Any], **condition: str) -> str:
        body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
        try:
            reply = self._s3.put_object(
                Bucket=self._bucket,
                Key=self._prefix + key,
                Body=body,
                ContentType="application/json",
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as exc:
            code = _code(exc)
            if code in _LOST or (condition.get("IfMatch") and code in _MISSING):
                raise PreconditionFailed(f"conditional write of {key!r} lost ({code})") from None
            raise StoreError(f"cannot write state {key!r}: {code}") from None
        return reply["ETag"]


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
