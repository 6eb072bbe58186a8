"""The instance's metadata (IMDSv2), as the worker reads it: a session token, cached until shortly
before it expires, and GETs with it. The endpoint is EC2's link-local address, or the standard
``AWS_EC2_METADATA_SERVICE_ENDPOINT`` (the lab's hypervisor serves each instance its own).
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable

DEFAULT_ENDPOINT = "http://169.254.169.254/"
TOKEN_TTL_S = 21600
_RENEW_BEFORE_S = 60
_TIMEOUT_S = 2.0
_MAX_BYTES = 64 * 1024  # a metadata document is small; anything larger is not one
# Never through a proxy (the host's HTTP_PROXY must not see the token; AWS refuses it anyway).
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MetadataError(Exception):
    """Raised when the metadata service cannot be reached or refuses a token."""


class Metadata:
    """Reads one instance's metadata; thread-safe."""

    def __init__(self, endpoint: str, clock: Callable[[], float] = time.monotonic) -> None:
        if not endpoint.startswith("http://"):  # IMDS speaks plain HTTP on a local address
            raise MetadataError(f"instance metadata endpoint {endpoint!r} is not an http:// URL")
        self._base = endpoint.rstrip("/") + "/latest"
        self._clock = clock
        self._lock = threading.Lock()
        self._token = ""
        self._expires = 0.0

    def get(self, path: str) -> str | None:
        """The text at ``path`` (under /latest/), None if there is none (404)."""
        for attempt in (1, 2):
            request = urllib.request.Request(  # noqa: S310 (http:// checked in __init__)
                f"{self._base}/{path}", headers={"X-aws-ec2-metadata-token": self._session()}
            )
            try:
                with _OPENER.open(request, timeout=_TIMEOUT_S) as reply:
                    text: str = reply.read(_MAX_BYTES).decode(errors="replace")
                    return text
            except urllib.error.HTTPError as exc:
                exc.close()
                if exc.code == 404:
                    return None
                if exc.code == 401 and attempt == 1:  # the token expired early: a fresh one
                    with self._lock:
                        self._expires = 0.0
                    continue
                raise MetadataError(f"metadata {path}: HTTP {exc.code}") from None
            except (OSError, ValueError) as exc:
                raise MetadataError(f"metadata {path}: {exc}") from None
        raise MetadataError(f"metadata {path}: refused twice")

    def _session(self) -> str:
        with self._lock:
            if self._clock() < self._expires - _RENEW_BEFORE_S:
                return self._token
            request = urllib.request.Request(  # noqa: S310 (http:// checked in __init__)
                f"{self._base}/api/token",
                method="PUT",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)},
            )
            try:
                with _OPENER.open(request, timeout=_TIMEOUT_S) as reply:
                    token: str = reply.read(_MAX_BYTES).decode().strip()
            except (OSError, ValueError) as exc:
                raise MetadataError(f"metadata token: {exc}") from None
            self._token, self._expires = token, self._clock() + TOKEN_TTL_S
            return token
