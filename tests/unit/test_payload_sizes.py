"""Payloads of any size, in pure logic: an output's inline head names where the rest is; the
inline limit keeps a response within SQS's 1 MiB; an oversize request's envelope is read from a
bounded prefix; an extended client's pointer is recognised, and nothing else is."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import schemas
from worker.config import MAX_INLINE_OUTPUT, load_worker_config
from worker.consume.offload import POINTER_CLASS, pointer_of
from worker.consume.queue import Message
from worker.errors import ConfigError, InvalidRequest
from worker.handle.request import ENVELOPE_PREFIX, QUEUE_OUTPUT, salvage_envelope
from worker.handle.response import OutputFile, decode_output, success

BASE_ENV = {
    "FLEETLAB_REQUEST_QUEUE_URL": "q",
    "FLEETLAB_RESPONSE_QUEUE_URL": "r",
    "FLEETLAB_BUCKET": "b",
    "FLEETLAB_LOG_GROUP": "g",
}


def valid(xml: bytes) -> etree._Element:
    schema = etree.XMLSchema(etree.parse(str(schemas.path("response.xsd"))))
    root = etree.fromstring(xml)
    schema.assertValid(root)
    return root


def test_a_long_output_keeps_its_head_inline_and_names_the_whole() -> None:
    whole = OutputFile("s3://b/results/k/stdout.txt", 3_000_000, "ab" * 32, stream="stdout")
    text = decode_output(b"x" * 3_000_000, 1000, whole)
    assert text.startswith("x" * 1000)
    assert text.endswith("[output continues: 3000000 bytes in all, stored whole at "
                         "s3://b/results/k/stdout.txt]")  # fmt: skip
    root = valid(success("m", "svc", None, text, 1.0, (whole,)).to_xml())
    [named] = root.findall("file")
    assert named.get("stream") == "stdout" and named.get("bytes") == "3000000"


def test_a_short_output_is_all_inline() -> None:
    assert decode_output(b"hello", 1000, None) == "hello"


def test_the_worst_inline_output_still_fits_sqs() -> None:
    # Every byte a character XML must escape or cannot carry: the largest response there is.
    for hostile in (b"&" * MAX_INLINE_OUTPUT, b"\xff" * MAX_INLINE_OUTPUT, b"]]>&" * 40_000):
        text = decode_output(hostile, MAX_INLINE_OUTPUT)
        body = success("m" * 100, "s" * 64, "r" * 128, text, 1.0).to_xml()
        assert len(body) < 1024 * 1024


def test_an_inline_limit_past_the_cap_is_refused() -> None:
    env = BASE_ENV | {"FLEETLAB_MAX_OUTPUT_BYTES": str(MAX_INLINE_OUTPUT + 1)}
    with pytest.raises(ConfigError, match="FLEETLAB_MAX_OUTPUT_BYTES"):
        load_worker_config(env)
    config = load_worker_config(BASE_ENV | {"FLEETLAB_MAX_OFFLOADED_REQUEST_BYTES": "5000000"})
    assert config.limits.max_offloaded_request_bytes == 5_000_000 and config.delete_offloaded
    assert not load_worker_config(BASE_ENV | {"FLEETLAB_DELETE_OFFLOADED": "0"}).delete_offloaded


CALLBACK = (
    b'<request service="noop" requestId="big-1">'
    b'<output type="callback" url="http://127.0.0.1:9/cb">'
    b'<credentials type="http-basic" username="u" password="p"/></output>'
)


def test_an_oversize_request_is_answered_at_the_callback_it_names_first() -> None:
    body = CALLBACK + b"<!--" + b"x" * 100_000 + b"--></request>"
    envelope = salvage_envelope(body, 16 * 1024)
    assert (envelope.service, envelope.request_id) == ("noop", "big-1")
    assert envelope.output.url == "http://127.0.0.1:9/cb"
    assert envelope.output.credentials is not None
    assert envelope.output.credentials.password == "p"


@pytest.mark.parametrize(
    "body",
    [
        # The output comes only after the prefix: not read, so the queue answers.
        b'<request service="noop"><!--' + b"x" * ENVELOPE_PREFIX + b"-->" + CALLBACK[24:],
        # An output cut by the prefix: its credentials may be missing, so it is not trusted.
        b'<request service="noop"><output type="callback" url="http://h/cb">'
        + b" " * ENVELOPE_PREFIX,
        b"<!DOCTYPE r [<!ENTITY x 'y'>]>" + CALLBACK + b" " * 20_000,
        b"<other>" + CALLBACK[8:] + b" " * 20_000,
        b"\x00\x01 not xml" * 3000,
    ],
)
def test_an_oversize_request_naming_no_trusted_output_goes_to_the_queue(body: bytes) -> None:
    assert salvage_envelope(body, 16 * 1024).output == QUEUE_OUTPUT


def message(body: bytes) -> Message:
    return Message("m", "h", body, 1, payload_size=len(body))


def test_an_extended_clients_pointer_is_recognised() -> None:
    body = f'["{POINTER_CLASS}", {{"s3BucketName": "b", "s3Key": "k/1"}}]'.encode()
    pointer = pointer_of(message(body))
    assert (pointer.bucket, pointer.key) == ("b", "k/1")


@pytest.mark.parametrize(
    "body",
    [
        b"<request/>",
        b'["other.Class", {"s3BucketName": "b", "s3Key": "k"}]',
        f'["{POINTER_CLASS}", {{"s3BucketName": "b"}}]'.encode(),
        f'["{POINTER_CLASS}", {{"s3BucketName": "", "s3Key": "k"}}]'.encode(),
        f'["{POINTER_CLASS}", {{"s3BucketName": 1, "s3Key": "k"}}]'.encode(),
        b"[" * 10_000,
    ],
)
def test_anything_else_marked_as_offloaded_is_an_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        pointer_of(message(body))


def test_the_response_schema_example_still_validates() -> None:
    valid(Path(schemas.path("examples") / "response-success.xml").read_bytes())
