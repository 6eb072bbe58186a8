"""Request parsing: every malformed, hostile or invalid body gets the right error code."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import schemas
from worker.errors import (
    ForbiddenMarkup,
    InvalidRequest,
    MalformedRequest,
    OversizeRequest,
)
from worker.handle.request import QUEUE_OUTPUT, parse_request, salvage_envelope

LIMIT = 16 * 1024
GOOD = b"""<request service="analyze" requestId="r-1">
  <input type="http" url="http://h/x.mov"><credentials type="http-basic" username="u" password="p"/></input>
  <parameters><parameter name="R" value="-100"/></parameters>
  <output type="callback" url="http://h/cb"><credentials type="http-basic" username="a" password="b"/></output>
</request>"""


def test_good_request_parses_into_its_parts() -> None:
    request = parse_request(GOOD, LIMIT)
    assert request.service == "analyze"
    assert request.request_id == "r-1"
    assert request.input is not None and request.input.url == "http://h/x.mov"
    assert request.input.credentials is not None and request.input.credentials.password == "p"
    assert request.parameters == (("R", "-100"),)
    assert request.output.type == "callback" and request.output.url == "http://h/cb"


def test_password_never_in_repr() -> None:
    assert "p" not in repr(parse_request(GOOD, LIMIT).input).split("username")[1].replace("'u'", "")


@pytest.mark.parametrize("path", schemas.examples(), ids=lambda p: p.name)
def test_every_shipped_example_is_valid(path: Path) -> None:
    assert parse_request(path.read_bytes(), LIMIT).service


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"not xml at all", MalformedRequest),
        (b"<request service='analyze'>", MalformedRequest),
        (b"", MalformedRequest),
        (
            b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<request service="analyze"><output type="queue"/></request>',
            ForbiddenMarkup,
        ),
        (
            b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
            b"<request>&lol2;</request>",
            ForbiddenMarkup,
        ),
        (b'<job service="analyze"><output type="queue"/></job>', InvalidRequest),
        (b'<request service="analyze"/>', InvalidRequest),
        (b'<request service="Bad Name"><output type="queue"/></request>', InvalidRequest),
        (b'<request service="analyze"><output type="callback"/></request>', InvalidRequest),
        (b'<request service="analyze"><output type="ftp"/></request>', InvalidRequest),
        (
            b'<request service="analyze"><parameters><parameter name="-x" value="1"/>'
            b'</parameters><output type="queue"/></request>',
            InvalidRequest,
        ),
    ],
)
def test_bad_bodies_are_refused_with_their_code(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_request(body, LIMIT)


def test_oversize_body_is_refused_before_parsing() -> None:
    body = GOOD + b" " * LIMIT
    with pytest.raises(OversizeRequest) as caught:
        parse_request(body, LIMIT)
    assert caught.value.code == "REQUEST_TOO_LARGE"


def test_salvage_keeps_callback_of_schema_invalid_request() -> None:
    body = b'<request service="analyze" requestId="r-9" bogus="1"><output type="callback" url="http://h/cb"/></request>'
    with pytest.raises(InvalidRequest):
        parse_request(body, LIMIT)
    envelope = salvage_envelope(body, LIMIT)
    assert envelope.output.url == "http://h/cb"
    assert envelope.request_id == "r-9"


@pytest.mark.parametrize("body", [b"junk", b"<!DOCTYPE x><request/>", b"<job/>", b"x" * 40000])
def test_salvage_of_broken_request_answers_on_the_queue(body: bytes) -> None:
    assert salvage_envelope(body, LIMIT).output == QUEUE_OUTPUT


def test_schema_itself_parses() -> None:
    etree.XMLSchema(etree.parse(str(schemas.path("response.xsd"))))


@pytest.mark.parametrize(
    "credentials",
    [
        'type="http-basic" username="u" password="' + "s3cret" * 50 + '"',
        'type="digest" username="u" password="s3cret"',
        'type="http-basic" username="s3cret:x" password="p"',
    ],
)
def test_schema_errors_about_credentials_never_echo_values(credentials: str) -> None:
    body = (
        f'<request service="analyze"><input type="http" url="http://h/x"><credentials {credentials}/>'
        '</input><output type="queue"/></request>'
    ).encode()
    with pytest.raises(InvalidRequest) as caught:
        parse_request(body, LIMIT)
    assert "s3cret" not in str(caught.value)
    assert "credentials" in str(caught.value)
