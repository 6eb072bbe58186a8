"""Build request XML from options and send it: what `lab submit` and `submit-job` share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lxml import etree

from worker.errors import InvalidRequest
from worker.handle.request import Credentials, parse_request

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


# Basic-auth credentials for the input or the callback: the request's own type.
Auth = Credentials


@dataclass(frozen=True)
class JobSpec:
    """A request as a client describes it."""

    service: str
    input_url: str | None = None
    input_auth: Auth | None = None
    params: Sequence[tuple[str, str]] = ()
    response: str = "queue"
    callback_url: str | None = None
    callback_auth: Auth | None = None
    request_id: str | None = None


def parse_param(text: str, separator: str = "=") -> tuple[str, str]:
    """Split ``NAME=VALUE`` (or the article's ``NAME:VALUE``) into a pair."""
    name, sep, value = text.partition(separator)
    if not sep or not name:
        raise InvalidRequest(f"parameter {text!r} is not NAME{separator}VALUE")
    return name, value


def _credentials(parent: etree._Element, auth: Auth | None) -> None:
    if auth is not None:
        etree.SubElement(
            parent, "credentials", type="http-basic", username=auth.username, password=auth.password
        )


def build_xml(spec: JobSpec) -> bytes:
    """Render the request and check it against the schema (so a bad one never leaves)."""
    body = render_xml(spec)
    parse_request(body, max_bytes=1 << 20)
    return body


def render_xml(spec: JobSpec) -> bytes:
    """Render the request document as given, without checking it."""
    root = etree.Element("request", service=spec.service)
    if spec.request_id:
        root.set("requestId", spec.request_id)
    if spec.input_url:
        kind = "s3" if spec.input_url.startswith("s3://") else "http"
        _credentials(
            etree.SubElement(root, "input", type=kind, url=spec.input_url), spec.input_auth
        )
    if spec.params:
        parameters = etree.SubElement(root, "parameters")
        for name, value in spec.params:
            etree.SubElement(parameters, "parameter", name=name, value=value)
    if spec.response == "callback":
        if not spec.callback_url:
            raise InvalidRequest("--response callback needs a callback URL")
        output = etree.SubElement(root, "output", type="callback", url=spec.callback_url)
        _credentials(output, spec.callback_auth)
    elif spec.response == "queue":
        etree.SubElement(root, "output", type="queue")
    else:
        raise InvalidRequest(f"--response must be callback or queue, not {spec.response!r}")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def send(sqs: SQSClient, queue_url: str, body: bytes) -> str:
    """Send one request; return its SQS message id (what the response will carry)."""
    return sqs.send_message(QueueUrl=queue_url, MessageBody=body.decode())["MessageId"]
