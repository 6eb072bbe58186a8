"""Build response XML (schemas/response.xsd): one shape for success and for every error."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from lxml import etree

# Characters XML 1.0 cannot carry at all; a binary's output may contain any of them.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class OutputFile:
    """A result file the worker stored in S3."""

    url: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Response:
    """What a worker answers to one request; ``to_xml`` renders it."""

    status: Literal["success", "error"]
    message_id: str
    message: str
    service: str | None = None
    request_id: str | None = None
    raw_output: str | None = None
    code: str | None = None
    files: tuple[OutputFile, ...] = ()

    def to_xml(self) -> bytes:
        """Render as a UTF-8 XML document valid against response.xsd."""
        root = etree.Element("response")
        if self.service:
            root.set("service", self.service)
        root.set("status", self.status)
        ref = etree.SubElement(root, "request", messageId=self.message_id)
        if self.request_id:
            ref.set("requestId", self.request_id)
        if self.raw_output is not None:
            raw = etree.SubElement(root, "rawOutput")
            text = xml_safe(self.raw_output)
            # CDATA keeps the article's look; a "]]>" inside would end it, so fall back to escaping.
            raw.text = etree.CDATA(text) if "]]>" not in text else text
        for item in self.files:
            etree.SubElement(root, "file", url=item.url, bytes=str(item.size), sha256=item.sha256)
        message = etree.SubElement(root, "message")
        message.text = xml_safe(self.message)
        if self.code:
            message.set("code", self.code)
        return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def xml_safe(text: str) -> str:
    """Replace characters that XML 1.0 cannot represent with U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def decode_output(data: bytes, limit: int) -> str:
    """Decode a binary's output for ``rawOutput``: at most ``limit`` bytes, never failing."""
    truncated = len(data) > limit
    text = data[:limit].decode("utf-8", errors="replace")
    return text + "\n[output truncated]" if truncated else text


def success(
    message_id: str,
    service: str,
    request_id: str | None,
    raw_output: str,
    seconds: float,
    files: tuple[OutputFile, ...] = (),
) -> Response:
    """The article's success response: output plus how long processing took."""
    return Response(
        status="success",
        message_id=message_id,
        service=service,
        request_id=request_id,
        raw_output=raw_output,
        files=files,
        message=f"Request successfully processed (in {seconds:.2f} seconds).",
    )


def error(
    message_id: str,
    code: str,
    message: str,
    service: str | None = None,
    request_id: str | None = None,
    raw_output: str | None = None,
) -> Response:
    """An error response with a machine-readable ``code`` and a human ``message``."""
    return Response(
        status="error",
        message_id=message_id,
        service=service,
        request_id=request_id,
        raw_output=raw_output,
        code=code,
        message=message,
    )
