"""Reading responses: a message that is not a response document is shown, not fatal."""

from __future__ import annotations

import pytest

from lab.client.results import parse_response


@pytest.mark.parametrize("body", ["", "   ", "not xml at all", "<response", b"\xff\xfe"])
def test_a_body_that_is_not_xml_comes_back_unreadable(body: str | bytes) -> None:
    found = parse_response(body, "queue")
    assert (found.status, found.code, found.request_id, found.message_id) == (
        "unreadable", "UNREADABLE", None, "",
    )  # fmt: skip
    assert found.message.startswith("not a response document: ")
    assert found.via == "queue"


def test_a_response_document_is_read() -> None:
    body = (
        '<response service="noop" status="success">'
        '<request messageId="m-1" requestId="r-1"/><rawOutput>hi</rawOutput></response>'
    )
    found = parse_response(body, "callback")
    assert (found.status, found.request_id, found.message_id, found.raw_output) == (
        "success", "r-1", "m-1", "hi",
    )  # fmt: skip
