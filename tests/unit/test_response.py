"""Responses are valid against response.xsd whatever a binary printed."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import schemas
from worker.handle.response import OutputFile, decode_output, error, success

SCHEMA = etree.XMLSchema(etree.parse(str(schemas.path("response.xsd"))))


def valid(xml: bytes) -> etree._Element:
    root = etree.fromstring(xml)
    SCHEMA.assertValid(root)
    return root


def test_success_looks_like_the_articles_listing_3() -> None:
    xml = success("m-1", "analyze", "r-1", "1 2 3\n3 2 1", 6.012).to_xml()
    root = valid(xml)
    assert b"<![CDATA[1 2 3\n3 2 1]]>" in xml
    assert root.findtext("message") == "Request successfully processed (in 6.01 seconds)."
    assert root.find("request").get("messageId") == "m-1"


def test_error_carries_a_machine_readable_code() -> None:
    root = valid(error("m-2", "UNKNOWN_SERVICE", "service 'x' is not offered here").to_xml())
    assert root.get("status") == "error"
    assert root.get("service") is None
    assert root.find("message").get("code") == "UNKNOWN_SERVICE"


@pytest.mark.parametrize(
    "raw",
    [b"]]> breaks CDATA", b"\x00\x07\x1b control", b"\xff\xfe invalid utf-8", b"<&>" * 10],
)
def test_hostile_output_still_makes_valid_xml(raw: bytes) -> None:
    text = decode_output(raw, 1000)
    root = valid(success("m", "analyze", None, text, 0.1).to_xml())
    assert root.findtext("rawOutput") is not None


def test_output_is_bounded() -> None:
    text = decode_output(b"x" * 5000, 100)
    assert text.startswith("x" * 100) and text.endswith("[output truncated]")
    assert len(text) < 200


def test_file_results_are_named() -> None:
    files = (OutputFile("s3://b/results/k/result.png", 10, "ab" * 32),)
    root = valid(success("m", "audio-spectrogram", None, "", 0.2, files).to_xml())
    assert root.find("file").get("url") == "s3://b/results/k/result.png"


@pytest.mark.parametrize("name", ["response-success.xml", "response-error.xml"])
def test_example_responses_are_valid(name: str) -> None:
    valid(Path(schemas.path("examples") / name).read_bytes())
