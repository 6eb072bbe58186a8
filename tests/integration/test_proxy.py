"""The lab's proxy with real sockets on 127.0.0.1: it forwards HTTP untouched, and each fault
does what it says — latency, resets, refusal, a partition that holds and then lets through."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.net.proxy import Fault, Proxy, Route


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    started = Proxy([Route("echo", "127.0.0.1", server.server_address[1])], seed=1).start()
    yield started
    started.stop()
    server.shutdown()
    server.server_close()


def post(proxy: Proxy, data: bytes, timeout: float = 5.0) -> bytes:
    port = int(proxy.url("echo").rsplit(":", 1)[1])
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("POST", "/", body=data)
        return connection.getresponse().read()
    finally:
        connection.close()


def test_forwards_untouched_when_no_fault_is_on(proxy: Proxy) -> None:
    big = bytes(range(256)) * 2000  # 512 KB: several chunks each way
    assert post(proxy, b"hello") == b"hello"
    assert post(proxy, big) == big
    assert not proxy.faults()["echo"].active


def test_latency_delays_every_exchange(proxy: Proxy) -> None:
    proxy.set("echo", Fault(latency_s=0.3))
    began = time.monotonic()
    assert post(proxy, b"slow") == b"slow"
    assert time.monotonic() - began >= 0.6  # a chunk each way, 0.3 s each


def test_refuse_resets_new_connections_until_healed(proxy: Proxy) -> None:
    proxy.set("echo", Fault(refuse=True))
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        post(proxy, b"x")
    proxy.set("echo", Fault())
    assert post(proxy, b"back") == b"back"


def test_resets_drop_connections(proxy: Proxy) -> None:
    proxy.set("echo", Fault(reset_p=1.0))
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        post(proxy, b"x")


def test_a_partition_holds_traffic_and_heals(proxy: Proxy) -> None:
    proxy.set("echo", Fault(partition=True))
    with pytest.raises(TimeoutError):
        post(proxy, b"held", timeout=0.5)
    done: list[bytes] = []
    waiting = threading.Thread(target=lambda: done.append(post(proxy, b"later", timeout=10)))
    waiting.start()
    time.sleep(0.5)
    assert not done  # still held
    proxy.set("echo", Fault())
    waiting.join(timeout=10)
    assert done == [b"later"]


def test_a_bad_fault_or_route_is_refused(proxy: Proxy) -> None:
    with pytest.raises(ValueError):
        Fault(reset_p=2.0)
    with pytest.raises(KeyError):
        proxy.set("nowhere", Fault())
