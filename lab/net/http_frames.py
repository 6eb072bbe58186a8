"""HTTP/1.1 requests on a keep-alive connection, as the lab's proxy sees them: where one ends
(``Content-Length`` or chunked framing) and which AWS call it is (service and operation).

What the call is comes from what every SDK sends: the service from the SigV4 credential scope
(``Authorization`` header or a presigned ``X-Amz-Credential``), the operation from the
``X-Amz-Target`` header (JSON protocol: SQS, CloudWatch Logs), an ``Action`` parameter in the
form body or query (query protocol: EC2, older SQS clients), or the method and path (S3 REST).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from lab.net.latency import Call

MAX_HEAD = 64 * 1024  # a request head beyond this is not HTTP the proxy frames
MAX_FORM = 64 * 1024  # a form body read whole to find its Action
_COPY = 64 * 1024
_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
UNKNOWN = "unknown"


class FramingError(ValueError):
    """Raised when bytes on a connection are not an HTTP/1.1 request the proxy can frame."""


@dataclass(frozen=True)
class RequestHead:
    """A request's line and headers (names lower-cased), and the bytes they came as."""

    method: str
    target: str
    headers: Mapping[str, str]
    raw: bytes

    @property
    def chunked(self) -> bool:
        """True when the body comes in chunks (``Transfer-Encoding: chunked``)."""
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def content_length(self) -> int:
        """The body's length in bytes when not chunked (0 when absent)."""
        value = self.headers.get("content-length", "0").strip() or "0"
        if not value.isdigit():
            raise FramingError(f"bad Content-Length {value!r}")
        return int(value)

    @property
    def is_form(self) -> bool:
        """True for a small form-encoded body, read whole to find a query-protocol Action."""
        kind = self.headers.get("content-type", "").lower()
        return (
            kind.startswith("application/x-www-form-urlencoded")
            and not self.chunked
            and self.content_length <= MAX_FORM
        )


def parse_head(raw: bytes) -> RequestHead:
    """Parse a request head ending in an empty line; FramingError if it is not one."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover (latin-1 decodes any byte)
        raise FramingError(str(exc)) from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
        raise FramingError(f"not an HTTP/1.x request line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise FramingError(f"bad header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return RequestHead(parts[0].upper(), parts[1], headers, raw)


def recognise(head: RequestHead, body: bytes | None = None) -> Call:
    """Which AWS call a request is; ``unknown`` for what it cannot tell (unsigned requests)."""
    split = urlsplit(head.target)
    query = parse_qs(split.query, keep_blank_values=True)
    service = _service(head, query)
    target = head.headers.get("x-amz-target", "")
    if target:  # JSON protocol: "AmazonSQS.SendMessage", "Logs_20140328.PutLogEvents"
        return Call(service, target.rsplit(".", 1)[-1])
    action = query.get("Action") or (
        parse_qs(body.decode("utf-8", "replace")).get("Action") if body else None
    )
    if action:
        return Call(service, action[0])
    if service == "s3":
        return Call(service, _s3_operation(head, unquote(split.path), query))
    return Call(service, UNKNOWN)


def _service(head: RequestHead, query: Mapping[str, list[str]]) -> str:
    scope = head.headers.get("authorization", "") or " ".join(
        f"Credential={v}" for v in query.get("X-Amz-Credential", [])
    )
    found = _SCOPE.search(scope)
    return found.group(1) if found else UNKNOWN


def _s3_operation(head: RequestHead, path: str, query: Mapping[str, list[str]]) -> str:
    """The S3 operation of a path-style request (the lab's endpoints are IP addresses)."""
    bucket, _, key = path.lstrip("/").partition("/")
    method = head.method
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method.title()}Service"
    if not key:
        bucket_ops = {
            "GET": "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects",
            "PUT": "CreateBucket",
            "HEAD": "HeadBucket",
            "DELETE": "DeleteBucket",
            "POST": "DeleteObjects" if "delete" in query else "PostBucket",
        }
        return bucket_ops.get(method, f"{method.title()}Bucket")
    if method == "PUT":
        return "CopyObject" if "x-amz-copy-source" in head.headers else "PutObject"
    object_ops = {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}
    return object_ops.get(method, f"{method.title()}Object")


# --- framing on a stream --------------------------------------------------------------------


class Sink(Protocol):
    """Where a body is forwarded (an ``asyncio.StreamWriter``)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


async def read_head(reader: asyncio.StreamReader) -> bytes:
    """The next request head, empty line included; at the end of the connection what was
    left (b"" at a clean end). FramingError when the head is too long (its bytes stay in the
    reader's buffer)."""
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except asyncio.LimitOverrunError:
        raise FramingError(f"a request head over {MAX_HEAD} bytes") from None


async def read_form(head: RequestHead, reader: asyncio.StreamReader) -> bytes:
    """A form body, whole (its length is bounded by ``is_form``)."""
    return await reader.readexactly(head.content_length)


async def copy_body(head: RequestHead, reader: asyncio.StreamReader, writer: Sink) -> None:
    """Forward a request's body as it arrives, by its framing, and no byte of the next one."""
    if not head.chunked:
        left = head.content_length
        while left:
            data = await reader.readexactly(min(left, _COPY))
            writer.write(data)
            left -= len(data)
            await writer.drain()
        return
    while True:
        line = await reader.readuntil(b"\r\n")
        writer.write(line)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise FramingError(f"bad chunk size line {line[:40]!r}") from None
        if size == 0:
            while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                writer.write(trailer)
            writer.write(trailer)
            await writer.drain()
            return
        left = size + 2  # the chunk and its CRLF
        while left:
            data = await reader.readexactly(min(left, _COPY))
            writer.write(data)
            left -= len(data)
        await writer.drain()
