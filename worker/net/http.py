"""A small, bounded HTTP client that connects only to addresses the URL policy approved.

Every hop (first URL and each redirect) goes through ``check_url``; the socket is opened to one of
the addresses it returned, with the original Host header (and TLS name), so a DNS answer that
changes between the check and the connect (DNS rebinding) cannot steer the worker elsewhere.
Each call has a total deadline: a watchdog thread shuts the socket down when it passes, which also
cuts off servers that trickle bytes just fast enough to dodge a per-read timeout.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

from urllib3 import BaseHTTPResponse, HTTPConnectionPool, HTTPHeaderDict, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util import Timeout
from urllib3.util.ssl_match_hostname import CertificateError

from worker.config import UrlPolicy
from worker.errors import (
    DeliveryError,
    FetchError,
    FleetlabError,
    InputTooLarge,
    UrlRejected,
)
from worker.net.urls import (
    DEFAULT_PORTS,
    CheckedUrl,
    Resolver,
    check_url,
    redact_url,
    system_resolver,
)

DOWNLOAD_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A redirected POST keeps its method and body only for 307/308; anything else is the answer.
POST_REDIRECTS = frozenset({307, 308})
POST_MAX_REDIRECTS = 3
_CHUNK = 64 * 1024
_REDIRECT_BODY_LIMIT = 64 * 1024
_MAX_POOLS = 64
_POOL_SIZE = 16
# Headers that carry credentials: never forwarded once a redirect leaves the first origin.
_SENSITIVE = ("Authorization", "Proxy-Authorization", "Cookie")


@dataclass(frozen=True)
class HttpResult:
    """What a server answered: status, (possibly truncated) body and the final URL.

    ``url`` is as given or redirected to, credentials included: pass it through redact_url to log.
    """

    status: int
    body: bytes
    url: str


class _Guard:
    """One call's total deadline; when it passes, the socket of the attached connection dies."""

    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s
        self.fired = False
        self.done = False
        self._lock = threading.Lock()
        self._conn: _GuardedHTTP | _GuardedHTTPS | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def attach(self, conn: _GuardedHTTP | _GuardedHTTPS) -> None:
        with self._lock:
            if self.fired:
                # An OSError, so urllib3 discards the connection like any other socket failure.
                raise TimeoutError("deadline passed")
            conn.guard = self
            self._conn = conn

    def detach(self) -> None:
        with self._lock:
            self._conn = None

    def fire(self) -> None:
        with self._lock:
            if self.done:
                return
            self.fired = True
            conn = self._conn
            # The connection may be back in the pool serving another call: leave it alone then.
            sock = conn.sock if conn is not None and conn.guard is self else None
            if sock is not None:
                # socket.socket's own shutdown: SSLSocket.shutdown would race the reading thread.
                with suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def finish(self) -> bool:
        """Disarm; say whether the deadline had already fired."""
        with self._lock:
            self.done = True
            self._conn = None
            return self.fired


_ACTIVE: ContextVar[_Guard | None] = ContextVar("fleetlab_http_guard", default=None)


class _GuardedHTTP(HTTPConnection):
    guard: _Guard | None = None

    def request(self, *args: Any, **kwargs: Any) -> None:
        guard = _ACTIVE.get()
        if guard is not None:
            guard.attach(self)
        super().request(*args, **kwargs)


class _GuardedHTTPS(_GuardedHTTP, HTTPSConnection):
    """The same guard over TLS (the MRO puts HTTPSConnection's connect under it)."""


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPS


class _Watchdog:
    """One thread firing guards whose deadline passed (a timer thread per call would be costly)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def arm(self, guard: _Guard) -> None:
        with self._cond:
            if self._stopped:
                raise RuntimeError("SafeHttp is closed")
            heapq.heappush(self._heap, (guard.deadline, next(self._seq), guard))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fleetlab-http-watchdog", daemon=True
                )
                self._thread.start()
            if self._heap[0][2] is guard:
                self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        while (guard := self._next_due()) is not None:
            guard.fire()

    def _next_due(self) -> _Guard | None:
        with self._cond:
            while not self._stopped:
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, _, guard = self._heap[0]
                delay = deadline - time.monotonic()
                if guard.done or delay <= 0:
                    heapq.heappop(self._heap)
                    if not guard.done:
                        return guard
                    continue
                self._cond.wait(delay)
            return None


@dataclass
class _Call:
    """One download or post: the request, its deadline, how failures are named, the current hop."""

    what: str
    error: type[FleetlabError]
    timeout_s: float
    url: str
    method: str
    body: bytes | None
    headers: Mapping[str, str]
    auth: tuple[str, str] | None
    guard: _Guard = field(init=False)

    def __post_init__(self) -> None:
        self.guard = _Guard(self.timeout_s)

    def timed_out(self) -> FleetlabError:
        return self.error(
            f"{self.what} {redact_url(self.url)} timed out after {self.timeout_s:g} s"
        )

    def failed(self, exc: BaseException) -> FleetlabError:
        if self.guard.fired or _is_timeout(exc):
            return self.timed_out()
        return self.failed_with(_describe(exc))

    def failed_with(self, reason: str) -> FleetlabError:
        return self.error(f"{self.what} {redact_url(self.url)} failed: {reason}")

    @contextmanager
    def transport(self) -> Iterator[None]:
        """Name network failures as this call's error; local errors (disk) pass through as is."""
        try:
            yield
        except (Urllib3Error, HTTPException, OSError) as exc:
            # ``from None``: urllib3's messages can echo the request target, query and all.
            raise self.failed(exc) from None


class SafeHttp:
    """HTTP client for inputs and callbacks: policy-checked hops, bounded bodies, total deadlines.

    Thread-safe; keeps keep-alive connection pools per (scheme, address, port, host). Call close().
    """

    def __init__(
        self,
        policy: UrlPolicy,
        resolve: Resolver = system_resolver,
        user_agent: str = "fleetlab-worker/0.1",
    ) -> None:
        self._policy = policy
        self._resolve = resolve
        self._user_agent = user_agent
        self._lock = threading.Lock()
        self._pools: OrderedDict[tuple[str, str, int, str], HTTPConnectionPool] = OrderedDict()
        self._watchdog = _Watchdog()

    def __enter__(self) -> SafeHttp:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection and stop the watchdog; the client is unusable after."""
        self._watchdog.stop()
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            pool.close()

    def download(
        self,
        url: str,
        dest: Path,
        *,
        auth: tuple[str, str] | None,
        max_bytes: int,
        timeout_s: float,
        max_redirects: int = 5,
    ) -> int:
        """GET ``url`` into ``dest`` and return the bytes written.

        Raises UrlRejected (policy), InputTooLarge (over ``max_bytes``; ``dest`` removed) or
        FetchError (non-2xx, network failure, redirect limit, ``timeout_s`` total deadline passed).
        """
        call = _Call("input URL", FetchError, timeout_s, url, "GET", None, {}, auth)
        with self._running(call):
            response = self._follow(call, DOWNLOAD_REDIRECTS, max_redirects)
            try:
                _require_success(call, response)
                _require_declared_size(call, response, max_bytes)
                return _save(call, response, dest, max_bytes)
            finally:
                _release(call.guard, response)

    def post(
        self,
        url: str,
        body: bytes,
        *,
        headers: Mapping[str, str],
        auth: tuple[str, str] | None,
        timeout_s: float,
        max_response_bytes: int,
    ) -> HttpResult:
        """POST ``body`` and return whatever status came back, body cut at ``max_response_bytes``.

        Follows 307/308 only (re-checked, at most 3). Raises UrlRejected (policy: not worth a
        retry) or DeliveryError (network or DNS failure, ``timeout_s`` total deadline passed).
        """
        call = _Call("callback URL", DeliveryError, timeout_s, url, "POST", body, headers, auth)
        with self._running(call):
            response = self._follow(call, POST_REDIRECTS, POST_MAX_REDIRECTS)
            try:
                data = _read_capped(call, response, max_response_bytes)
                return HttpResult(status=response.status, body=data, url=call.url)
            finally:
                _release(call.guard, response)

    @contextmanager
    def _running(self, call: _Call) -> Iterator[None]:
        """Arm the call's deadline for the duration of the block."""
        self._watchdog.arm(call.guard)
        token = _ACTIVE.set(call.guard)
        try:
            yield
        finally:
            _ACTIVE.reset(token)
            call.guard.finish()

    def _follow(self, call: _Call, follow: frozenset[int], max_redirects: int) -> BaseHTTPResponse:
        """Send the request, following redirects in ``follow``; return the final response."""
        checked = self._check(call, call.url)
        origin = _origin(checked)
        credentials = call.auth if call.auth is not None else _userinfo(checked)
        trusted = True
        hops = 0
        while True:
            # Once a redirect leaves the first origin, credentials stay behind for good.
            trusted = trusted and _origin(checked) == origin
            headers = self._headers(checked, call.headers, credentials, trusted=trusted)
            response = self._send(call, checked, headers)
            location = response.headers.get("Location") if response.status in follow else None
            if location is None:
                return response
            _discard(call.guard, response)
            hops += 1
            if hops > max_redirects:
                raise call.error(
                    f"{call.what} {redact_url(call.url)} redirected more than {max_redirects} times"
                )
            call.url = urljoin(checked.url, location)
            checked = self._check(call, call.url)
            if response.status == 303:
                call.method, call.body = "GET", None

    def _check(self, call: _Call, url: str) -> CheckedUrl:
        """check_url, with a DNS failure reported as the call's error, not as a policy refusal."""

        def resolve(host: str, port: int) -> list[str]:
            try:
                return self._resolve(host, port)
            except OSError as exc:
                reason = exc.strerror or type(exc).__name__
                raise call.failed_with(f"cannot resolve {host} ({reason})") from None

        checked = check_url(url, self._policy, resolve)
        if checked.scheme not in DEFAULT_PORTS:
            raise UrlRejected(f"URL {redact_url(url)} refused: only http and https can be fetched")
        return checked

    def _headers(
        self,
        checked: CheckedUrl,
        extra: Mapping[str, str],
        credentials: tuple[str, str] | None,
        *,
        trusted: bool,
    ) -> HTTPHeaderDict:
        headers = HTTPHeaderDict(extra)
        if not trusted:
            for name in _SENSITIVE:
                headers.discard(name)
        elif credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        # We connect to an IP, so the name the URL gave must travel in Host (and TLS SNI).
        headers["Host"] = _host_header(checked)
        headers.setdefault("User-Agent", self._user_agent)
        # Sizes are judged on what arrives; a compressed body would make Content-Length lie.
        headers.setdefault("Accept-Encoding", "identity")
        return headers

    def _send(self, call: _Call, checked: CheckedUrl, headers: HTTPHeaderDict) -> BaseHTTPResponse:
        """Try the approved addresses in order; only a refused connection moves on to the next."""
        *others, last = checked.addresses
        for address in others:
            with suppress(NewConnectionError):
                return self._open(call, checked, address, headers)
        return self._open(call, checked, last, headers)

    def _open(
        self, call: _Call, checked: CheckedUrl, address: str, headers: HTTPHeaderDict
    ) -> BaseHTTPResponse:
        remaining = call.guard.remaining()
        if remaining <= 0:
            raise call.timed_out()
        pool = self._pool(checked, address)
        with call.transport():
            return pool.urlopen(
                call.method,
                checked.target,
                body=call.body,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=Timeout(connect=remaining, read=remaining),
                preload_content=False,
                release_conn=False,
            )

    def _pool(self, checked: CheckedUrl, address: str) -> HTTPConnectionPool:
        key = (checked.scheme, address, checked.port, checked.host)
        with self._lock:
            pool = self._pools.get(key)
            if pool is not None:
                self._pools.move_to_end(key)
                return pool
            pool = _new_pool(checked, address)
            self._pools[key] = pool
            if len(self._pools) > _MAX_POOLS:
                _, oldest = self._pools.popitem(last=False)
                oldest.close()
            return pool


def _new_pool(checked: CheckedUrl, address: str) -> HTTPConnectionPool:
    if checked.scheme == "https":
        # Connect to the approved IP but verify the certificate against the URL's host name.
        return _HTTPSPool(
            address,
            checked.port,
            maxsize=_POOL_SIZE,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            server_hostname=checked.host,
            assert_hostname=checked.host,
        )
    return _HTTPPool(address, checked.port, maxsize=_POOL_SIZE, retries=False)


def _origin(checked: CheckedUrl) -> tuple[str, str, int]:
    return (checked.scheme, checked.host, checked.port)


def _userinfo(checked: CheckedUrl) -> tuple[str, str] | None:
    if checked.username is None:
        return None
    return (checked.username, checked.password or "")


def _host_header(checked: CheckedUrl) -> str:
    host = f"[{checked.host}]" if ":" in checked.host else checked.host
    return host if checked.port == DEFAULT_PORTS[checked.scheme] else f"{host}:{checked.port}"


def _require_success(call: _Call, response: BaseHTTPResponse) -> None:
    if not 200 <= response.status < 300:
        raise call.error(f"{call.what} answered {response.status}: {redact_url(call.url)}")


def _require_declared_size(call: _Call, response: BaseHTTPResponse, max_bytes: int) -> None:
    raw = response.headers.get("Content-Length")
    try:
        declared = int(raw) if raw is not None else None
    except ValueError:
        declared = None  # the streamed count still bounds it
    if declared is not None and declared > max_bytes:
        raise InputTooLarge(
            f"{call.what} {redact_url(call.url)} declares {declared} bytes,"
            f" more than the limit of {max_bytes}"
        )


def _save(call: _Call, response: BaseHTTPResponse, dest: Path, max_bytes: int) -> int:
    """Stream the body into ``dest``; on any failure the partial file is removed."""
    written = 0
    try:
        with dest.open("wb") as out:
            while chunk := _read(call, response, min(_CHUNK, max_bytes + 1 - written)):
                written += len(chunk)
                if written > max_bytes:
                    raise InputTooLarge(
                        f"{call.what} {redact_url(call.url)} sent more than {max_bytes} bytes"
                    )
                out.write(chunk)
            # A body without length ends at EOF, which is also what the watchdog's shutdown looks
            # like: only a deadline that did not fire means the body is complete.
            if call.guard.fired:
                raise call.timed_out()
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return written


def _read_capped(call: _Call, response: BaseHTTPResponse, limit: int) -> bytes:
    """Read at most ``limit`` bytes of the body; whatever is beyond is never read."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit and (chunk := _read(call, response, min(_CHUNK, limit + 1 - total))):
        chunks.append(chunk)
        total += len(chunk)
    if total <= limit and call.guard.fired:
        raise call.timed_out()
    return b"".join(chunks)[:limit]


def _read(call: _Call, response: BaseHTTPResponse, amount: int) -> bytes:
    with call.transport():
        return response.read(amount)


def _discard(guard: _Guard, response: BaseHTTPResponse) -> None:
    """Drop a redirect's body; a small one is drained so the connection can be reused."""
    with suppress(Urllib3Error, HTTPException, OSError):
        response.read(_REDIRECT_BODY_LIMIT)
    _release(guard, response)


def _release(guard: _Guard, response: BaseHTTPResponse) -> None:
    """Hand the connection back: reusable if the body was read to the end, closed otherwise."""
    guard.detach()
    # urllib3 releases the connection itself once the body is read to the end.
    if response.connection is not None:
        with suppress(OSError):
            response.close()
    response.release_conn()


def _is_timeout(exc: BaseException) -> bool:
    # NewConnectionError is a ConnectTimeoutError in urllib3's tree, but means "refused".
    return isinstance(exc, (TimeoutError, Urllib3Timeout)) and not isinstance(
        exc, NewConnectionError
    )


def _describe(exc: BaseException) -> str:
    """A short reason from down the chain ('Connection refused', a certificate mismatch...)."""
    seen: BaseException | None = exc
    for _ in range(10):  # chains are short; never loop on a cyclic one
        if seen is None:
            break
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror[:200]
        # These say what went wrong without echoing the request (no URL, no credentials).
        if isinstance(seen, (HTTPException, CertificateError)) and str(seen):
            return str(seen)[:200]
        nested = [arg for arg in seen.args if isinstance(arg, BaseException)]
        seen = seen.__cause__ or seen.__context__ or (nested[0] if nested else None)
    return type(exc).__name__
