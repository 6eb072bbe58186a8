"""Parse and validate a request message: bounded, DTD-free, schema-checked, into a ``Request``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

from lxml import etree

import schemas
from worker.errors import ForbiddenMarkup, InvalidRequest, MalformedRequest, OversizeRequest


@dataclass(frozen=True)
class Credentials:
    """HTTP basic credentials; the password never appears in ``repr`` (and so never in a log)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class InputSpec:
    """Where the job's input comes from."""

    type: Literal["http", "s3"]
    url: str
    credentials: Credentials | None = None


@dataclass(frozen=True)
class OutputSpec:
    """Where the response goes: an HTTP callback or the response queue."""

    type: Literal["callback", "queue"]
    url: str | None = None
    credentials: Credentials | None = None


QUEUE_OUTPUT = OutputSpec(type="queue")
ENVELOPE_PREFIX = 64 * 1024  # how much of an oversize request is read to address its error


@dataclass(frozen=True)
class Request:
    """A validated request: names only, no behaviour."""

    service: str
    output: OutputSpec
    request_id: str | None = None
    input: InputSpec | None = None
    parameters: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Envelope:
    """What could be read of a rejected request: enough to address its error response."""

    service: str | None = None
    request_id: str | None = None
    output: OutputSpec = QUEUE_OUTPUT


def _parser() -> etree.XMLParser:
    # No DTD loading, no entity expansion, no network, no huge trees: XXE and billion laughs
    # have nothing to work with, and a DOCTYPE is refused outright after parsing.
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


_SCHEMA_LOCK = threading.Lock()


def prepare() -> None:
    """Build the request schema now, before job threads start (the worker calls it once)."""
    _schema()


def _schema() -> etree.XMLSchema:
    # Built once, under a lock, and by the worker before its job threads start: building it
    # sets up libxml2's global schema types, and in the concurrency benchmark job threads that
    # built it while others parsed got XMLSchemaParseError ("the given type is not a built-in
    # type") on every request after. Validating against the built schema is thread-safe.
    with _SCHEMA_LOCK:
        return _built_schema()


@cache
def _built_schema() -> etree.XMLSchema:
    doc = etree.parse(str(schemas.path("request.xsd")), _parser())
    return etree.XMLSchema(doc)


def _document(body: bytes, max_bytes: int) -> etree._Element:
    if len(body) > max_bytes:
        raise OversizeRequest(f"request is {len(body)} bytes; the limit is {max_bytes}")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise ForbiddenMarkup("request carries a DTD or entity declarations, which are refused")
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedRequest(f"request is not well-formed XML: {exc.msg}") from None
    if root.getroottree().docinfo.internalDTD is not None:
        raise ForbiddenMarkup("request carries a DTD, which is refused")
    if root.tag != "request":
        raise InvalidRequest(f"root element is <{root.tag}>, expected <request>")
    return root


def _credentials(element: etree._Element | None) -> Credentials | None:
    if element is None:
        return None
    return Credentials(username=element.get("username", ""), password=element.get("password", ""))


def _output(root: etree._Element) -> OutputSpec:
    element = root.find("output")
    if element is None:
        raise InvalidRequest("request has no <output>")
    kind = element.get("type")
    if kind == "queue":
        return QUEUE_OUTPUT
    if kind == "callback":
        url = element.get("url")
        if not url:
            raise InvalidRequest('<output type="callback"> needs a url')
        return OutputSpec("callback", url, _credentials(element.find("credentials")))
    raise InvalidRequest(f"output type {kind!r} is not callback or queue")


def _input(root: etree._Element) -> InputSpec | None:
    element = root.find("input")
    if element is None:
        return None
    kind: Literal["http", "s3"] = "s3" if element.get("type") == "s3" else "http"
    return InputSpec(kind, element.get("url", ""), _credentials(element.find("credentials")))


def parse_request(body: bytes, max_bytes: int) -> Request:
    """Validate ``body`` against the request schema and return it as a ``Request``.

    Raises a ``RequestError`` subclass naming exactly what is wrong.
    """
    root = _document(body, max_bytes)
    schema = _schema()
    if not schema.validate(root):
        last = schema.error_log.last_error  # type: ignore[attr-defined]  # missing from lxml-stubs
        message = str(last.message)
        if "'credentials'" in message:
            # libxml2 quotes offending values, in several phrasings; here one may be a password,
            # so keep only where the error is ("Element 'credentials', attribute 'password'").
            message = message.split(":", 1)[0] + ": value not accepted (not shown)"
        raise InvalidRequest(f"request does not match the schema: line {last.line}: {message}")
    parameters = tuple(
        (p.get("name", ""), p.get("value", "")) for p in root.iterfind("parameters/parameter")
    )
    return Request(
        service=root.get("service", ""),
        request_id=root.get("requestId"),
        input=_input(root),
        parameters=parameters,
        output=_output(root),
    )


def salvage_envelope(body: bytes, max_bytes: int) -> Envelope:
    """Read what addresses an error response from a request that failed validation.

    A body that is too big is read as far as ``ENVELOPE_PREFIX`` bytes: a complete ``<output>``
    found there addresses the error. A body that is not XML, carries a DTD or has the wrong
    root names no output we may trust, so its error goes to the response queue (keyed by
    message id).
    """
    try:
        root = _document(body, max_bytes)
    except OversizeRequest:
        return _from_prefix(body[:ENVELOPE_PREFIX])
    except (ForbiddenMarkup, MalformedRequest, InvalidRequest):
        return Envelope()
    try:
        output = _output(root)
    except InvalidRequest:
        output = QUEUE_OUTPUT
    return Envelope(
        service=_bounded(root.get("service")),
        request_id=_bounded(root.get("requestId")),
        output=output,
    )


def _from_prefix(prefix: bytes) -> Envelope:
    """The envelope of an oversize request, from its first bytes: the root's ids, and its
    ``<output>`` if that element ends within them (so its credentials are known in full)."""
    if b"<!DOCTYPE" in prefix or b"<!ENTITY" in prefix:
        return Envelope()
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    root: etree._Element | None = None
    output: etree._Element | None = None
    depth = 0
    try:
        parser.feed(prefix)
        for event, element in parser.read_events():
            if not isinstance(element, etree._Element):
                continue
            depth += 1 if event == "start" else -1
            if event == "start" and depth == 1:
                root = element
            elif event == "end" and depth == 1 and element.tag == "output":
                output = element
                break
    except etree.XMLSyntaxError:
        pass  # read as far as the prefix is well-formed
    if root is None or root.tag != "request":
        return Envelope()
    spec = QUEUE_OUTPUT
    if output is not None:
        try:
            spec = _output(root)
        except InvalidRequest:
            spec = QUEUE_OUTPUT
    return Envelope(_bounded(root.get("service")), _bounded(root.get("requestId")), spec)


def _bounded(value: str | None, limit: int = 128) -> str | None:
    # An invalid request's attributes are echoed back; keep them short.
    return None if value is None else value[:limit]
