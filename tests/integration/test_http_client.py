"""SafeHttp against real HTTP servers on 127.0.0.1 (loopback only; no emulator needed)."""

from __future__ import annotations

import base64
import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3.util.connection

from worker.config import UrlPolicy
from worker.errors import DeliveryError, FetchError, InputTooLarge, UrlRejected
from worker.net.http import HttpResult, SafeHttp

LAB = UrlPolicy(allow_loopback=True)
BASIC = "Basic " + base64.b64encode(b"user:pw").decode()
PAYLOAD = bytes(range(256)) * 40  # 10 240 bytes

Route = Callable[["Handler"], None]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes = routes
        self.connections = 0
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.connections += 1

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._dispatch(self.rfile.read(length))

    def _dispatch(self, body: bytes) -> None:
        path = urlsplit(self.path).path
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        route = self.server.routes.get(path)
        try:
            if route is None:
                self.reply(404, b"not found")
            else:
                route(self)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def query(self, name: str) -> str:
        return parse_qs(urlsplit(self.path).query)[name][0]


# --- routes -------------------------------------------------------------------------------------


def protected(handler: Handler) -> None:
    if handler.headers.get("Authorization") != BASIC:
        handler.reply(401, b"who are you?", {"WWW-Authenticate": 'Basic realm="lab"'})
    else:
        handler.reply(200, PAYLOAD)


def echo(handler: Handler) -> None:
    handler.reply(200, b"echo")


def redirect(handler: Handler) -> None:
    handler.reply(int(handler.query("status")), headers={"Location": handler.query("to")})


def loop(handler: Handler) -> None:
    handler.reply(302, headers={"Location": "/loop"})


def declared_too_big(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000000")
    handler.end_headers()
    handler.wfile.write(b"x" * 1000)
    handler.close_connection = True


def chunked_too_big(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    for _ in range(20):
        handler.wfile.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
    handler.wfile.write(b"0\r\n\r\n")


def trickle_body(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    for _ in range(1000):
        if handler.server.stop.wait(0.05):
            break
        handler.wfile.write(b"z")
        handler.wfile.flush()
    handler.close_connection = True


def trickle_headers(handler: Handler) -> None:
    handler.wfile.write(b"HTTP/1.1 200 OK\r\n")
    for _ in range(1000):
        if handler.server.stop.wait(0.05):
            break
        handler.wfile.write(b"X")
        handler.wfile.flush()
    handler.close_connection = True


def callback(handler: Handler) -> None:
    handler.reply(200, b"<ack/>", {"Content-Type": "application/xml"})


def broken(handler: Handler) -> None:
    handler.reply(500, b"<error/>")


def huge(handler: Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Length", str(64 * 1024 * 1024))
    handler.end_headers()
    block = b"h" * 65536
    for _ in range(1024):
        if handler.server.stop.is_set():
            break
        handler.wfile.write(block)
    handler.close_connection = True


ROUTES: dict[str, Route] = {
    "/protected": protected,
    "/echo": echo,
    "/redirect": redirect,
    "/loop": loop,
    "/declared-too-big": declared_too_big,
    "/chunked-too-big": chunked_too_big,
    "/trickle-body": trickle_body,
    "/trickle-headers": trickle_headers,
    "/callback": callback,
    "/broken": broken,
    "/huge": huge,
}


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def start_server() -> Iterator[Callable[[], Server]]:
    running: list[tuple[Server, threading.Thread]] = []

    def start() -> Server:
        server = Server(ROUTES)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def server(start_server: Callable[[], Server]) -> Server:
    return start_server()


@pytest.fixture
def client(start_server: Callable[[], Server]) -> Iterator[SafeHttp]:
    # Depends on start_server so it is closed first, before the servers go away.
    with SafeHttp(LAB) as http:
        yield http


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every address urllib3 opens a socket to, in order."""
    seen: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def recording(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording)
    return seen


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redirect_url(server: Server, to: str, status: int = 302) -> str:
    return f"{server.url}/redirect?status={status}&to={to}"


# --- download -----------------------------------------------------------------------------------


def test_download_with_basic_auth(client: SafeHttp, server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "input.bin"
    written = client.download(
        f"{server.url}/protected", dest, auth=("user", "pw"), max_bytes=1 << 20, timeout_s=5
    )
    assert written == len(PAYLOAD)
    assert dest.read_bytes() == PAYLOAD
    _, path, headers, _ = server.seen[-1]
    assert path == "/protected"
    assert headers["Host"] == f"127.0.0.1:{server.server_port}"
    assert headers["User-Agent"] == "fleetlab-worker/0.1"


def test_download_takes_credentials_from_userinfo(
    client: SafeHttp, server: Server, tmp_path: Path
) -> None:
    url = f"http://user:pw@127.0.0.1:{server.server_port}/protected"
    assert client.download(url, tmp_path / "f", auth=None, max_bytes=1 << 20, timeout_s=5) > 0


def test_download_without_auth_is_refused(client: SafeHttp, server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "f"
    with pytest.raises(FetchError, match="answered 401"):
        client.download(f"{server.url}/protected", dest, auth=None, max_bytes=1 << 20, timeout_s=5)
    assert not dest.exists()


def test_wrong_password_never_reaches_the_message(
    client: SafeHttp, server: Server, tmp_path: Path
) -> None:
    url = f"http://user:s3cr3t@127.0.0.1:{server.server_port}/protected?token=t0k3n"
    with pytest.raises(FetchError) as caught:
        client.download(url, tmp_path / "f", auth=None, max_bytes=1 << 20, timeout_s=5)
    assert "s3cr3t" not in str(caught.value)
    assert "t0k3n" not in str(caught.value)


def test_download_404(client: SafeHttp, server: Server, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="input URL answered 404"):
        client.download(f"{server.url}/nope", tmp_path / "f", auth=None, max_bytes=100, timeout_s=5)


def test_too_large_by_content_length(client: SafeHttp, server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "f"
    with pytest.raises(InputTooLarge, match="declares 1000000 bytes"):
        client.download(
            f"{server.url}/declared-too-big", dest, auth=None, max_bytes=5000, timeout_s=5
        )
    assert not dest.exists()


def test_too_large_while_streaming(client: SafeHttp, server: Server, tmp_path: Path) -> None:
    dest = tmp_path / "f"
    with pytest.raises(InputTooLarge, match="more than 5000 bytes"):
        client.download(
            f"{server.url}/chunked-too-big", dest, auth=None, max_bytes=5000, timeout_s=5
        )
    assert not dest.exists()
    # Exactly at the limit is fine.
    written = client.download(
        f"{server.url}/chunked-too-big", dest, auth=None, max_bytes=20 * 1024, timeout_s=5
    )
    assert written == 20 * 1024


def test_trickling_server_is_cut_off_at_the_deadline(
    client: SafeHttp, server: Server, tmp_path: Path
) -> None:
    dest = tmp_path / "f"
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out after 1 s"):
        client.download(f"{server.url}/trickle-body", dest, auth=None, max_bytes=5000, timeout_s=1)
    assert time.monotonic() - started < 2.0
    assert not dest.exists()


def test_redirect_to_another_origin_drops_authorization(
    client: SafeHttp, start_server: Callable[[], Server], tmp_path: Path
) -> None:
    first, second = start_server(), start_server()
    url = redirect_url(first, f"{second.url}/echo")
    written = client.download(url, tmp_path / "f", auth=("user", "pw"), max_bytes=100, timeout_s=5)
    assert written == 4
    assert first.seen[-1][2]["Authorization"] == BASIC
    _, path, headers, _ = second.seen[-1]
    assert path == "/echo"
    assert "Authorization" not in headers
    assert headers["Host"] == f"127.0.0.1:{second.server_port}"


def test_same_origin_redirect_keeps_authorization(
    client: SafeHttp, server: Server, tmp_path: Path
) -> None:
    url = redirect_url(server, "/protected", status=301)
    written = client.download(
        url, tmp_path / "f", auth=("user", "pw"), max_bytes=1 << 20, timeout_s=5
    )
    assert written == len(PAYLOAD)


def test_redirect_to_metadata_is_refused_without_connecting(
    client: SafeHttp, server: Server, tmp_path: Path, connects: list[tuple[str, int]]
) -> None:
    url = redirect_url(server, "http://169.254.169.254/latest/meta-data/")
    with pytest.raises(UrlRejected, match="metadata"):
        client.download(url, tmp_path / "f", auth=None, max_bytes=100, timeout_s=5)
    assert connects == [("127.0.0.1", server.server_port)]


def test_redirect_loop_gives_up(client: SafeHttp, server: Server, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="redirected more than 5 times"):
        client.download(f"{server.url}/loop", tmp_path / "f", auth=None, max_bytes=100, timeout_s=5)
    assert len(server.seen) == 6


def test_loopback_refused_by_policy_without_connecting(
    server: Server, tmp_path: Path, connects: list[tuple[str, int]]
) -> None:
    with SafeHttp(UrlPolicy()) as strict, pytest.raises(UrlRejected, match="loopback"):
        strict.download(f"{server.url}/echo", tmp_path / "f", auth=None, max_bytes=100, timeout_s=5)
    assert connects == []
    assert server.connections == 0


def test_download_from_a_closed_port(client: SafeHttp, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}/f"
    with pytest.raises(FetchError, match="refused"):
        client.download(url, tmp_path / "f", auth=None, max_bytes=100, timeout_s=5)


def test_dns_failure_is_a_fetch_error(tmp_path: Path) -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with SafeHttp(LAB, resolve=no_dns) as http, pytest.raises(FetchError, match="cannot resolve"):
        http.download(
            "http://nowhere.example/", tmp_path / "f", auth=None, max_bytes=1, timeout_s=1
        )


def test_hostname_is_sent_while_connecting_to_the_checked_address(
    server: Server, tmp_path: Path, connects: list[tuple[str, int]]
) -> None:
    def lab_dns(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "inputs.lab.test" else []

    url = f"http://inputs.lab.test:{server.server_port}/echo"
    with SafeHttp(LAB, resolve=lab_dns) as http:
        http.download(url, tmp_path / "f", auth=None, max_bytes=100, timeout_s=5)
    assert connects == [("127.0.0.1", server.server_port)]
    assert server.seen[-1][2]["Host"] == f"inputs.lab.test:{server.server_port}"


# --- post ---------------------------------------------------------------------------------------


def post(client: SafeHttp, url: str, body: bytes = b"<response/>", **kw: Any) -> HttpResult:
    options: dict[str, Any] = {
        "headers": {"Content-Type": "application/xml"},
        "auth": None,
        "timeout_s": 5,
        "max_response_bytes": 1024,
    }
    options.update(kw)
    return client.post(url, body, **options)


def test_post_returns_status_and_body(client: SafeHttp, server: Server) -> None:
    result = post(client, f"{server.url}/callback", auth=("user", "pw"))
    assert result == HttpResult(status=200, body=b"<ack/>", url=f"{server.url}/callback")
    method, _, headers, body = server.seen[-1]
    assert (method, body) == ("POST", b"<response/>")
    assert headers["Content-Type"] == "application/xml"
    assert headers["Authorization"] == BASIC


def test_post_500_is_returned_not_raised(client: SafeHttp, server: Server) -> None:
    assert post(client, f"{server.url}/broken") == HttpResult(
        500, b"<error/>", f"{server.url}/broken"
    )


def test_post_to_a_closed_port(client: SafeHttp) -> None:
    with pytest.raises(DeliveryError, match="refused"):
        post(client, f"http://127.0.0.1:{closed_port()}/callback")


def test_post_refused_by_policy(server: Server) -> None:
    with SafeHttp(UrlPolicy()) as strict, pytest.raises(UrlRejected, match="loopback"):
        post(strict, f"{server.url}/callback")
    assert server.connections == 0


def test_post_reuses_keep_alive_connections(client: SafeHttp, server: Server) -> None:
    for n in range(50):
        assert post(client, f"{server.url}/callback", body=b"<n>%d</n>" % n).status == 200
    assert len(server.seen) == 50
    assert server.connections <= 2


def test_post_truncates_a_huge_reply(client: SafeHttp, server: Server) -> None:
    started = time.monotonic()
    result = post(client, f"{server.url}/huge", max_response_bytes=1000)
    assert (result.status, result.body) == (200, b"h" * 1000)
    assert time.monotonic() - started < 2.0
    # The half-read connection was thrown away, not reused.
    assert post(client, f"{server.url}/callback").body == b"<ack/>"


def test_post_follows_307_and_308_with_the_same_body(client: SafeHttp, server: Server) -> None:
    for status in (307, 308):
        result = post(client, redirect_url(server, "/callback", status=status), body=b"<again/>")
        assert (result.status, result.url) == (200, f"{server.url}/callback")
        method, path, _, body = server.seen[-1]
        assert (method, path, body) == ("POST", "/callback", b"<again/>")


def test_post_returns_other_redirects_as_they_are(client: SafeHttp, server: Server) -> None:
    result = post(client, redirect_url(server, "/callback", status=302))
    assert result.status == 302
    assert server.seen[-1][1].startswith("/redirect")


def test_post_redirect_to_metadata_is_refused(
    client: SafeHttp, server: Server, connects: list[tuple[str, int]]
) -> None:
    with pytest.raises(UrlRejected, match="metadata"):
        post(client, redirect_url(server, "http://169.254.169.254/", status=307))
    assert connects == [("127.0.0.1", server.server_port)]


def test_post_deadline_covers_trickled_headers(client: SafeHttp, server: Server) -> None:
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="timed out after 1 s"):
        post(client, f"{server.url}/trickle-headers", timeout_s=1)
    assert time.monotonic() - started < 2.0


def test_concurrent_posts_share_a_few_connections(client: SafeHttp, server: Server) -> None:
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                assert post(client, f"{server.url}/callback", body=b"%d-%d" % (n, i)).status == 200
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(server.seen) == 160
    assert server.connections <= 8


# --- https: connect to the checked IP, verify the certificate against the URL's name -------------


def self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` that is its own CA, and its key."""
    # cryptography comes with the lab extras (moto); without it these tests are skipped.
    x509 = pytest.importorskip("cryptography.x509")
    hashes = pytest.importorskip("cryptography.hazmat.primitives.hashes")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(
    start_server: Callable[[], Server], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Server:
    cert_file, key_file = self_signed(tmp_path, "inputs.lab.test")
    server = start_server()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    # The client trusts exactly this certificate (OpenSSL reads SSL_CERT_FILE per context).
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    return server


def lab_dns(host: str, port: int) -> list[str]:
    return ["127.0.0.1"] if host.endswith(".lab.test") else []


def test_https_verifies_the_url_name_while_connecting_to_the_ip(
    tls_server: Server, tmp_path: Path, connects: list[tuple[str, int]]
) -> None:
    port = tls_server.server_port
    with SafeHttp(LAB, resolve=lab_dns) as http:
        written = http.download(
            f"https://inputs.lab.test:{port}/echo",
            tmp_path / "f",
            auth=None,
            max_bytes=100,
            timeout_s=5,
        )
    assert written == 4
    assert connects == [("127.0.0.1", port)]
    assert tls_server.seen[-1][2]["Host"] == f"inputs.lab.test:{port}"


def test_https_refuses_a_certificate_for_another_name(tls_server: Server, tmp_path: Path) -> None:
    url = f"https://other.lab.test:{tls_server.server_port}/echo"
    with SafeHttp(LAB, resolve=lab_dns) as http, pytest.raises(FetchError, match="doesn't match"):
        http.download(url, tmp_path / "f", auth=None, max_bytes=100, timeout_s=5)
    assert tls_server.seen == []


def test_local_disk_errors_are_not_blamed_on_the_input(
    client: SafeHttp, server: Server, tmp_path: Path
) -> None:
    dest = tmp_path / "missing-dir" / "f"
    with pytest.raises(FileNotFoundError):
        client.download(f"{server.url}/echo", dest, auth=None, max_bytes=100, timeout_s=5)


def test_post_dns_failure_is_a_delivery_error() -> None:
    def no_dns(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with SafeHttp(LAB, resolve=no_dns) as http, pytest.raises(DeliveryError, match="resolve"):
        post(http, "http://receiver.example/callback")
