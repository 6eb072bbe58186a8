"""The instance metadata endpoint of one body: a ``MetadataService`` behind HTTP on 127.0.0.1.

Each instance gets a port of its own, so that no request has to say whose metadata it wants — a
body reaches its own, as on EC2, at the ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` it is given.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lab.ec2.metadata import TOKEN_PATH, MetadataService

HOST = "127.0.0.1"


class MetadataServer(ThreadingHTTPServer):
    """Serves one instance's metadata until ``close``."""

    daemon_threads = True

    def __init__(self, service: MetadataService, port: int = 0) -> None:
        super().__init__((HOST, port), _Handler)
        self.service = service
        self._thread = threading.Thread(target=self.serve_forever, name="imds", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint a body is given (``AWS_EC2_METADATA_SERVICE_ENDPOINT``)."""
        return endpoint(self.port)

    def start(self) -> MetadataServer:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and free the port."""
        if self._thread.is_alive():
            self.shutdown()
        self.server_close()


def endpoint(port: int) -> str:
    """The metadata endpoint on ``port``."""
    return f"http://{HOST}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: MetadataServer
    timeout = 5  # a client that connects and sends nothing holds a thread this long at most
    server_version = "EC2ws"
    sys_version = ""

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 65536:
            self.rfile.read(length)  # a PUT's body means nothing; read it so the reply is clean
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.service.answer(self.command, self.path, headers, time.time())
        body = reply.body.encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.path.split("?", 1)[0] == TOKEN_PATH and reply.status == 200:
            self.send_header("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", headers.get(
                "x-aws-ec2-metadata-token-ttl-seconds", ""))  # fmt: skip
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _reply

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tokens travel in headers, never in a log line; and bodies poll often
