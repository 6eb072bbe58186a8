"""The lab's callback receiver and input server: a real HTTP server on 127.0.0.1.

- ``POST /callback`` records each delivery (message id, status, body, whether basic auth
  matched) as one JSON line in ``callbacks.jsonl``; a repeat of a message id is marked.
- ``GET /media/NAME`` serves sample inputs behind basic auth.
- ``GET /callbacks`` returns what was received; ``POST /control`` makes the next N callbacks
  fail with 500 or answer slowly, for retry tests and chaos scenarios.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_MAX_BODY = 1 << 20
_STATUS = re.compile(rb'<response[^>]*\sstatus="(success|error)"')
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Receiver:
    """What the server knows: credentials, recorded callbacks, injected faults."""

    def __init__(self, folder: Path, callback_auth: str | None, media_auth: str | None) -> None:
        self.folder = folder
        self.callback_auth = callback_auth
        self.media_auth = media_auth
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.fail_next = 0
        self.delay_s = 0.0
        folder.mkdir(parents=True, exist_ok=True)
        self.journal = (folder / "callbacks.jsonl").open("a", encoding="utf-8", buffering=1)

    def record(self, message_id: str, body: bytes, auth_ok: bool) -> dict[str, Any]:
        """Append one callback to the journal."""
        status = _STATUS.search(body)
        with self.lock:
            entry = {
                "at": time.time(),
                "message_id": message_id,
                "status": status.group(1).decode() if status else None,
                "auth_ok": auth_ok,
                "repeat": message_id in self.seen,
                "body": body.decode("utf-8", "replace"),
            }
            self.seen.add(message_id)
            self.journal.write(json.dumps(entry) + "\n")
        return entry

    def take_fault(self) -> tuple[bool, float]:
        """Whether this callback must fail, and how long to stall first."""
        with self.lock:
            fail = self.fail_next > 0
            if fail:
                self.fail_next -= 1
            return fail, self.delay_s


def _auth_ok(header: str | None, expected: str | None) -> bool:
    if expected is None:
        return True
    if not header or not header.startswith("Basic "):
        return False
    try:
        return base64.b64decode(header[6:], validate=True).decode() == expected
    except (binascii.Error, UnicodeDecodeError):
        return False


class Handler(BaseHTTPRequestHandler):
    """Routes the receiver's few endpoints."""

    server: Server
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, a kept-alive connection waits for
    # a delayed ACK (~40 ms) before the body, which would dominate every callback's latency.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the journal is the record."""

    def do_POST(self) -> None:
        """Accept a callback or a control command."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._reply(413, b"too large")
            return
        body = self.rfile.read(length)
        if len(body) < length or (self.path == "/callback" and not body):
            # Cut off mid-body (a reset connection) or empty: no callback arrived, so none is
            # recorded; the sender, if it still listens, retries.
            self._reply(400, b"incomplete body")
            return
        if self.path == "/control":
            self._control(body)
            return
        if self.path != "/callback":
            self._reply(404, b"not found")
            return
        receiver = self.server.receiver
        fail, delay = receiver.take_fault()
        if delay:
            time.sleep(delay)
        if fail:
            self._reply(500, b"injected failure")
            return
        auth_ok = _auth_ok(self.headers.get("Authorization"), receiver.callback_auth)
        if not auth_ok:
            self._reply(401, b"bad credentials")
            return
        receiver.record(self.headers.get("X-Fleetlab-Message-Id", ""), body, auth_ok)
        self._reply(200, b"ok")

    def do_GET(self) -> None:
        """Serve media behind basic auth, or the journal."""
        receiver = self.server.receiver
        if self.path == "/callbacks":
            text = (receiver.folder / "callbacks.jsonl").read_text(encoding="utf-8")
            entries = [json.loads(line) for line in text.splitlines() if line]
            self._reply(200, json.dumps(entries).encode(), "application/json")
            return
        name = self.path.removeprefix("/media/")
        if not self.path.startswith("/media/") or not _NAME.fullmatch(name):
            self._reply(404, b"not found")
            return
        if not _auth_ok(self.headers.get("Authorization"), receiver.media_auth):
            self._reply(
                401, b"credentials required", extra={"WWW-Authenticate": 'Basic realm="media"'}
            )
            return
        path = receiver.folder / "media" / name
        if not path.is_file():
            self._reply(404, b"no such media")
            return
        self._reply(200, path.read_bytes(), "application/octet-stream")

    def _control(self, body: bytes) -> None:
        try:
            command = json.loads(body or b"{}")
            receiver = self.server.receiver
            with receiver.lock:
                receiver.fail_next = int(command.get("fail_next", receiver.fail_next))
                receiver.delay_s = float(command.get("delay_s", receiver.delay_s))
        except (ValueError, TypeError, AttributeError):
            self._reply(400, b"bad control command")
            return
        self._reply(200, b"ok")

    def _reply(
        self, code: int, body: bytes, kind: str = "text/plain", extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    """A threading HTTP server that carries its ``Receiver``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        super().__init__(address, Handler)
        self.receiver = receiver


def control(receiver_url: str, **command: Any) -> None:
    """Send a fault command to a running receiver's ``/control`` (``fail_next``, ``delay_s``)."""
    request = urllib.request.Request(  # noqa: S310 (the lab's receiver, on loopback)
        f"{receiver_url}/control",
        data=json.dumps(command).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (loopback)
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the receiver until killed."""
    parser = argparse.ArgumentParser(description="fleetlab callback receiver")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--callback-auth", help="USER:PASSWORD callbacks must carry")
    parser.add_argument("--media-auth", help="USER:PASSWORD media downloads must carry")
    args = parser.parse_args(argv)
    receiver = Receiver(args.dir, args.callback_auth, args.media_auth)
    server = Server(("127.0.0.1", args.port), receiver)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
