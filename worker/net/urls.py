"""Outbound URL policy: which URLs a worker may fetch from or deliver to, and how to log them.

Every input URL, callback URL and redirect target goes through ``check_url`` before any socket is
opened; the addresses it returns are the only ones a client may connect to (see
``worker.net.http``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, unquote_plus, urlsplit, urlunsplit

from worker.config import UrlPolicy
from worker.errors import UrlRejected

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

KNOWN_SCHEMES = frozenset({"http", "https", "s3"})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 8192

# The metadata services answer with instance credentials; no policy switch may reach them.
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
_PRIVATE = tuple(
    ipaddress.ip_network(net)
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# IPv6 prefixes that carry an IPv4 address a gateway may translate to (judged as that IPv4).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
# WHATWG: a host whose last label is a number is an IPv4 address, however it is spelled.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SECRET_WORDS = ("pass", "pwd", "token", "secret", "sig", "key", "credential", "auth")
# Keep what is already escaped or reserved; escape only what cannot go on the wire as is.
_TARGET_SAFE = string.punctuation


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed the policy, with the only addresses a client may connect to."""

    url: str
    scheme: str
    host: str
    port: int
    target: str
    addresses: tuple[str, ...]
    username: str | None
    password: str | None


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` to its IPv4 and IPv6 addresses (deduplicated); OSError when DNS fails."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, policy: UrlPolicy, resolve: Resolver = system_resolver) -> CheckedUrl:
    """Parse ``url`` and resolve its host; raise UrlRejected unless every address is allowed.

    An OSError from ``resolve`` becomes UrlRejected; any other exception it raises propagates.
    """
    parts = _split(url)
    scheme = parts.scheme
    if scheme not in policy.schemes or scheme not in KNOWN_SCHEMES:
        raise _reject(url, f"scheme {scheme or '(none)'!r} is not allowed")
    if scheme == "s3":
        return _check_s3(url, parts)
    host = _host(url, parts)
    port = _port(url, parts)
    addresses = _addresses(url, host, port, policy, resolve)
    return CheckedUrl(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        target=_target(parts),
        addresses=addresses,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def redact_url(url: str) -> str:
    """Return ``url`` without userinfo and with secret-looking query values replaced."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(_redact_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    # A fragment never goes on the wire, but it can carry tokens: logs do not need it.
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def forbidden_reason(address: IPAddress, policy: UrlPolicy) -> str | None:
    """Say why ``address`` may not be contacted under ``policy``, or None when it may."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        return forbidden_reason(inner, policy)
    if address in _METADATA:
        return "is a cloud metadata address"
    # Before the reserved check: ::1 sits inside the reserved ::/8.
    if any(address in net for net in _LOOPBACK):
        return None if policy.allow_loopback else "is a loopback address"
    always = _always_forbidden(address)
    if always is not None:
        return always
    if any(address in net for net in _PRIVATE):
        return None if policy.allow_private else "is a private address"
    return None if address.is_global else "is not a public address"


def _always_forbidden(address: IPAddress) -> str | None:
    if address.is_unspecified:
        return "is the unspecified address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_multicast:
        return "is a multicast address"
    if address.is_reserved:  # 240.0.0.0/4 includes the broadcast address
        return "is a reserved or broadcast address"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("0.0.0.0/8"):
        return "is in 0.0.0.0/8"
    return None


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _reject(url: str, reason: str) -> UrlRejected:
    return UrlRejected(f"URL {redact_url(url)} refused: {reason}")


def _split(url: str) -> SplitResult:
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejected(f"URL refused: longer than {MAX_URL_LENGTH} characters")
    # Whitespace, control characters and backslashes are where URL parsers disagree.
    if any(ch <= " " or ch in "\x7f\\" for ch in url):
        raise UrlRejected("URL refused: it contains whitespace, control characters or '\\'")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- urlsplit defers port validation to this property
    except ValueError:
        raise UrlRejected("URL refused: it is not a valid URL") from None
    return parts


def _host(url: str, parts: SplitResult) -> str:
    host = parts.hostname
    if not host:
        raise _reject(url, "it has no host")
    if "%" in host:
        raise _reject(url, "percent-encoded hosts and IPv6 zone identifiers are not allowed")
    if ":" in host:
        return host
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise _reject(url, "its host is not a valid hostname") from None
    if not _HOSTNAME.match(ascii_host):
        raise _reject(url, "its host is not a valid hostname")
    return ascii_host


def _port(url: str, parts: SplitResult) -> int:
    port = parts.port
    if port is None:
        return DEFAULT_PORTS[parts.scheme]
    if not 1 <= port <= 65535:
        raise _reject(url, f"port {port} is out of range")
    return port


def _literal_address(url: str, host: str) -> IPAddress | None:
    """The address a literal host means, however spelled (``2130706433``, ``0x7f.1``, ``[::1]``)."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise _reject(url, "its host is not a valid IPv6 address") from None
    last_label = host.rstrip(".").rpartition(".")[2]
    if not _NUMERIC_LABEL.match(last_label):
        return None
    try:
        # inet_aton reads the legacy forms (integer, hex, octal, short) the way resolvers do.
        return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
    except OSError:
        raise _reject(url, "its host is not a valid IPv4 address") from None


def _addresses(
    url: str, host: str, port: int, policy: UrlPolicy, resolve: Resolver
) -> tuple[str, ...]:
    literal = _literal_address(url, host)
    found = [literal] if literal is not None else _resolve(url, host, port, resolve)
    verb = "resolves to" if literal is None else "means"
    for address in found:
        reason = forbidden_reason(address, policy)
        if reason is None:
            continue
        if str(address) == host:
            raise _reject(url, f"{address} {reason}")
        raise _reject(url, f"host {host} {verb} {address}, which {reason}")
    return tuple(dict.fromkeys(str(address) for address in found))


def _resolve(url: str, host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        raw = resolve(host, port)
    except OSError as exc:
        raise _reject(url, f"host {host} does not resolve ({exc.strerror or exc})") from None
    if not raw:
        raise _reject(url, f"host {host} resolves to no address")
    try:
        # A scope suffix (fe80::1%eth0) only matters for link-local, which is refused anyway.
        return [ipaddress.ip_address(item.partition("%")[0]) for item in raw]
    except ValueError:
        raise _reject(url, f"host {host} resolves to something that is not an address") from None


def _target(parts: SplitResult) -> str:
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return target


def _check_s3(url: str, parts: SplitResult) -> CheckedUrl:
    if "@" in parts.netloc or ":" in parts.netloc:
        raise _reject(url, "s3 URLs take no credentials or port")
    if not _BUCKET.match(parts.netloc):
        raise _reject(url, "s3 URLs need a valid bucket name")
    if parts.query or parts.fragment:
        raise _reject(url, "s3 URLs take no query or fragment")
    if not parts.path.lstrip("/"):
        raise _reject(url, "s3 URLs need a key")
    return CheckedUrl(
        url=url,
        scheme="s3",
        host=parts.netloc,
        port=0,
        target=parts.path,
        addresses=(),
        username=None,
        password=None,
    )


def _redact_pair(pair: str) -> str:
    name, sep, _value = pair.partition("=")
    lowered = unquote_plus(name).lower()
    secret = lowered.startswith("x-amz-") or any(word in lowered for word in _SECRET_WORDS)
    return f"{name}=REDACTED" if secret and sep else pair
