"""The dashboard's HTTP server: the stdlib's threading server, a token check, the routes.

Security: bound to 127.0.0.1 by default, where a token is optional; any other address needs a
token (``serve`` refuses to start without one). When a token is set every request must carry it
(``Authorization: Bearer``, or the ``fleetlab_token`` cookie the page gets from ``/?token=``),
compared in constant time. Without a token the Host header must be a loopback name (no DNS
rebinding), and a POST must be JSON (a cross-site form cannot send one without a preflight,
which is refused).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import mimetypes
import threading
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lab.dashboard import api
from lab.dashboard.history import History
from lab.errors import LabError
from lab.runtime.resources import LabEnv, clients_for
from worker.errors import FleetlabError

STATIC = Path(__file__).resolve().parent / "static"
_MAX_BODY = 16 * 1024
_COOKIE = "fleetlab_token"
_STATIC_FILES = {"/": "index.html", **{f"/static/{p.name}": p.name for p in STATIC.glob("*.*")}}


class Refused(LabError):
    """Raised when the dashboard would bind beyond this machine without a token."""

    code = "DASHBOARD_REFUSED"


def loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token (or with a short one)."""
    if loopback(host):
        if token is not None and len(token) < 16:
            raise Refused("a dashboard token must be at least 16 characters")
        return
    if not token:
        raise Refused(f"binding the dashboard to {host} needs a token (--token or its env var)")
    if len(token) < 16:
        raise Refused("a dashboard token must be at least 16 characters")


def token_ok(expected: str | None, offered: str | None) -> bool:
    """Constant-time comparison; no token set means loopback only, where anything goes."""
    if expected is None:
        return True
    return offered is not None and hmac.compare_digest(offered.encode(), expected.encode())


Route = Callable[["Handler", dict[str, str]], Any]


class Dashboard(ThreadingHTTPServer):
    """The server with what its handlers read: sources, history, token."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], src: api.Sources, token: str | None) -> None:
        super().__init__(address, Handler)
        self.src = src
        self.token = token
        self.history = History(src.sample)


def _gets() -> dict[str, Route]:
    return {
        "/api/overview": lambda h, q: api.overview(h.server.src, h.server.history),
        "/api/queues/history": lambda h, q: api.queue_history(h.server.history),
        "/api/instances": lambda h, q: api.fleet(h.server.src),
        "/api/scaler": lambda h, q: api.scaler_view(h.server.src, h.server.history),
        "/api/activity": lambda h, q: api.activity_lines(h.server.src, q, time.time()),
        "/api/story": lambda h, q: api.story(h.server.src, api.checked_id(q.get("id"), "id")),
        "/api/dlq": lambda h, q: api.dead_letters(h.server.src),
        "/api/journal": lambda h, q: api.journal(h.server.src),
        "/api/reports": lambda h, q: api.reports(h.server.src),
    }


GETS = _gets()


class Handler(BaseHTTPRequestHandler):
    """Routes: the page and its assets, the JSON API, plots from the reports folder."""

    server: Dashboard
    server_version = "fleetlab-dashboard"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the page polls every few seconds

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        if not self._allowed(query.get("token")):
            return
        if url.path in _STATIC_FILES:
            self._file(STATIC / _STATIC_FILES[url.path], set_cookie="token" in query)
        elif url.path.startswith("/reports/"):
            self._answer(lambda: api.report_file(self.server.src.home, url.path[9:]), file=True)
        elif url.path in GETS:
            self._answer(lambda: GETS[url.path](self, query))
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def do_POST(self) -> None:
        if not self._allowed(None):
            return
        if urllib.parse.urlsplit(self.path).path != "/api/dlq/redrive":
            self._json(HTTPStatus.NOT_FOUND, {"error": "no such endpoint"})
            return
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            self._json(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "send application/json"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= _MAX_BODY:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"a body of 1 to {_MAX_BODY} bytes"})
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the body is not JSON"})
            return
        if not isinstance(body, dict):
            self._json(HTTPStatus.BAD_REQUEST, {"error": "the body must be a JSON object"})
            return
        self._answer(lambda: api.redrive(self.server.src, body))

    def _allowed(self, from_query: str | None) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        served = self.server.server_address[0]
        if host not in {str(served), "localhost"} and not (
            loopback(host) and loopback(str(served))
        ):
            self._json(HTTPStatus.FORBIDDEN, {"error": "unexpected Host header"})
            return False
        if token_ok(self.server.token, from_query or self._offered()):
            return True
        self._json(HTTPStatus.UNAUTHORIZED, {"error": "a valid token is needed"})
        return False

    def _offered(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        cookie = SimpleCookie(self.headers.get("Cookie", ""))
        return cookie[_COOKIE].value if _COOKIE in cookie else None

    def _answer(self, make: Callable[[], Any], file: bool = False) -> None:
        try:
            found = make()
        except api.BadInput as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc), "code": exc.code})
        except FleetlabError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc), "code": exc.code})
        except (BotoCoreError, ClientError, OSError) as exc:
            self._json(HTTPStatus.BAD_GATEWAY, {"error": f"reading failed: {exc}"})
        else:
            if file:
                self._file(found)
            else:
                self._json(HTTPStatus.OK, found)

    def _json(self, status: HTTPStatus, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _file(self, path: Path, set_cookie: bool = False) -> None:
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {}
        if set_cookie and self.server.token:
            headers["Set-Cookie"] = (
                f"{_COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
            )
        self._send(HTTPStatus.OK, path.read_bytes(), kind, headers)

    def _send(
        self, status: HTTPStatus, data: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def serve(
    env: LabEnv, home: Path, host: str, port: int, token: str | None, ready: Callable[[str], None]
) -> None:
    """Serve until interrupted; ``ready`` gets the page's URL once the server listens."""
    check_bind(host, token)
    src = api.Sources(env, clients_for(env), home)
    server = Dashboard((host, port), src, token)
    server.history.start()
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_address[1]}/" + (f"?token={token}" if token else "")
    thread = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    thread.start()
    ready(url)
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.history.close()
        server.server_close()
