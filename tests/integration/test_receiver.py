"""The lab's callback receiver as a sender meets it over a real socket: a callback cut off
mid-body, or empty, is refused and never recorded; a whole one is."""

from __future__ import annotations

import base64
import socket

import pytest
from conftest import Receiver

pytestmark = pytest.mark.integration


def post(receiver: Receiver, body: bytes, claimed_length: int) -> bytes:
    """POST /callback with ``Content-Length: claimed_length`` and ``body``, then half-close;
    the receiver's answer (empty if it had none)."""
    auth = base64.b64encode(":".join(receiver.callback_auth).encode()).decode()
    head = (
        f"POST /callback HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/xml\r\n"
        f"Authorization: Basic {auth}\r\nX-Fleetlab-Message-Id: m-cut\r\n"
        f"Content-Length: {claimed_length}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as conn:
        conn.sendall(head + body)
        conn.shutdown(socket.SHUT_WR)  # the rest never comes: the connection was cut
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


def test_a_cut_off_or_empty_callback_is_refused_and_not_recorded(receiver: Receiver) -> None:
    whole = b'<response service="noop" status="success"><request messageId="m-cut"/></response>'
    assert post(receiver, whole[:20], len(whole)).startswith(b"HTTP/1.1 400")
    assert post(receiver, b"", 0).startswith(b"HTTP/1.1 400")
    assert receiver.callbacks() == []
    assert post(receiver, whole, len(whole)).startswith(b"HTTP/1.1 200")
    assert [c["body"] for c in receiver.callbacks()] == [whole.decode()]
