"""Instance metadata (IMDSv2) as EC2 serves it, for one instance: tokens, identity, the role's
credentials, and the spot interruption and rebalance notices.

``MetadataService.answer`` is a pure function of a request and ``now`` (tokens expire on the
caller's clock), so tests drive it directly; ``lab.ec2.imds`` puts it behind HTTP. The rules are
AWS's: a token comes from ``PUT /latest/api/token`` with a TTL of 1 to 21,600 seconds (400
otherwise, 403 for a request that came through a proxy), every GET needs a live token (401
otherwise: IMDSv1 is off, as the fleet's launch template sets ``HttpTokens=required``), and an
unknown path is a 404 — the spot and rebalance paths too, until a notice is posted.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

TOKEN_PATH = "/latest/api/token"  # noqa: S105 (a path, not a secret)
TTL_HEADER = "x-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "x-aws-ec2-metadata-token"  # noqa: S105 (a header name)
MIN_TTL_S, MAX_TTL_S = 1, 21600
CREDENTIALS_LIFE_S = 6 * 3600  # what EC2 gives a role's session; renewed an hour before the end
_RENEW_BEFORE_S = 3600
_MAX_TOKENS = 1024  # a body that asks for a token per request cannot grow the table unbounded
# Base32 (LocalStack reads the account from an access key id's characters 4-12): "QAAAAAAA" and a
# 13th character in A-P name account 000000000000, the one the lab's own "test" keys reach. moto
# puts unknown keys in its default account, which its "test" keys reach too.
_KEY_PREFIX = "ASIAQAAAAAAA"
_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


@dataclass(frozen=True)
class Identity:
    """What an instance's metadata says it is."""

    instance_id: str
    instance_type: str
    image_id: str
    region: str
    zone: str
    local_ipv4: str
    role: str
    user_data: str = ""
    market: str = "on-demand"  # or "spot"


@dataclass(frozen=True)
class Notices:
    """The notices posted for an instance (epoch seconds; None: none posted)."""

    interruption_at: float | None = None  # when the instance will be reclaimed
    rebalance_at: float | None = None  # when the rebalance recommendation was posted


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: status, content type and body."""

    status: int
    body: str
    content_type: str = "text/plain"


@dataclass(frozen=True)
class Credentials:
    """A role session's keys, as IMDS hands them out."""

    access_key_id: str
    secret_access_key: str
    token: str
    issued_at: float
    expires_at: float

    @classmethod
    def issue(cls, now: float) -> Credentials:
        key = (
            _KEY_PREFIX
            + secrets.choice(_B32[:16])
            + "".join(secrets.choice(_B32) for _ in range(7))
        )
        return cls(key, secrets.token_urlsafe(30), secrets.token_urlsafe(96), now,
                   now + CREDENTIALS_LIFE_S)  # fmt: skip

    def document(self) -> str:
        return json.dumps({
            "Code": "Success",
            "LastUpdated": iso(self.issued_at),
            "Type": "AWS-HMAC",
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.token,
            "Expiration": iso(self.expires_at),
        }, indent=2)  # fmt: skip


def iso(epoch: float) -> str:
    """EC2's timestamp format: UTC, seconds, a Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class MetadataService:
    """One instance's metadata: the identity it was given, the notices posted for it (read on
    every request: ``lab instance interrupt`` posts them from another process)."""

    identity: Identity
    notices: Callable[[], Notices] = Notices
    _tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry
    _credentials: Credentials | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, path: str, headers: Mapping[str, str], now: float) -> Reply:
        """The reply to one request; ``headers`` by lower-case name."""
        path = path.split("?", 1)[0]
        if path == TOKEN_PATH:
            return self._token(method, headers, now) if method == "PUT" else _status(405)
        if method != "GET":
            return _status(405)
        if not self._valid(headers.get(TOKEN_HEADER, ""), now):
            return _status(401)
        found = self._lookup(path, now)
        return found if found is not None else _status(404)

    def _token(self, method: str, headers: Mapping[str, str], now: float) -> Reply:
        del method
        if "x-forwarded-for" in headers:  # AWS refuses tokens to what came through a proxy
            return _status(403)
        raw = headers.get(TTL_HEADER, "").strip()
        if not raw.isdigit() or not MIN_TTL_S <= int(raw) <= MAX_TTL_S:
            return _status(400)
        token = secrets.token_urlsafe(40)
        with self._lock:
            live = {t: at for t, at in self._tokens.items() if at > now}
            if len(live) >= _MAX_TOKENS:
                live.pop(min(live, key=live.__getitem__))
            self._tokens = live | {token: now + int(raw)}
        return Reply(200, token)

    def _valid(self, token: str, now: float) -> bool:
        with self._lock:
            expires = self._tokens.get(token)
        return expires is not None and expires > now

    def credentials(self, now: float) -> Credentials:
        """The role's current keys, issued anew an hour before the old ones expire."""
        with self._lock:
            held = self._credentials
            if held is None or held.expires_at - now < _RENEW_BEFORE_S:
                held = self._credentials = Credentials.issue(now)
            return held

    def _lookup(self, path: str, now: float) -> Reply | None:
        if path == "/latest/user-data":
            data = self.identity.user_data
            return Reply(200, data, "application/octet-stream") if data else None
        if path in (
            "/latest/dynamic/instance-identity/document",
            "/latest/dynamic/instance-identity/document/",
        ):
            return Reply(200, self._identity_document(), "application/json")
        prefix = "/latest/meta-data/"
        if not path.startswith(prefix) and path != prefix[:-1]:
            return None
        tree = self._tree(now)
        key = path[len(prefix) :]
        if key in tree:
            return tree[key]
        # botocore asks for placement/availability-zone/; a folder may be named without its slash
        return tree.get(key.rstrip("/")) or tree.get(key + "/")

    def _tree(self, now: float) -> dict[str, Reply]:
        me = self.identity
        role = me.role
        leaves: dict[str, str] = {
            "ami-id": me.image_id,
            "hostname": _hostname(me),
            "instance-id": me.instance_id,
            "instance-life-cycle": me.market,
            "instance-type": me.instance_type,
            "local-hostname": _hostname(me),
            "local-ipv4": me.local_ipv4,
            "placement/availability-zone": me.zone,
            "placement/region": me.region,
            "iam/security-credentials/": role,
        }
        tree = {k: Reply(200, v) for k, v in leaves.items()}
        tree[f"iam/security-credentials/{role}"] = Reply(200, self.credentials(now).document())
        notices = self.notices()
        if notices.interruption_at is not None:
            action = {"action": "terminate", "time": iso(notices.interruption_at)}
            tree["spot/instance-action"] = Reply(200, json.dumps(action), "application/json")
            tree["spot/termination-time"] = Reply(200, iso(notices.interruption_at))
        if notices.rebalance_at is not None:
            notice = {"noticeTime": iso(notices.rebalance_at)}
            tree["events/recommendations/rebalance"] = Reply(
                200, json.dumps(notice), "application/json"
            )
        for listing in ("", "placement/", "iam/", "spot/", "events/", "events/recommendations/"):
            names = _children(tree, listing)
            if names or listing in ("", "placement/", "iam/"):
                tree[listing] = Reply(200, "\n".join(names))
        return tree

    def _identity_document(self) -> str:
        me = self.identity
        return json.dumps({
            "instanceId": me.instance_id, "instanceType": me.instance_type,
            "imageId": me.image_id, "region": me.region, "availabilityZone": me.zone,
            "privateIp": me.local_ipv4, "version": "2017-09-30",
        }, indent=2)  # fmt: skip


def _children(tree: Mapping[str, Reply], listing: str) -> list[str]:
    """The names directly under ``listing``: a folder is listed with its trailing slash."""
    names: set[str] = set()
    for key in tree:
        if key.startswith(listing) and key != listing:
            head, slash, _ = key[len(listing) :].partition("/")
            names.add(head + slash)
    return sorted(names)


def _hostname(me: Identity) -> str:
    dashed = me.local_ipv4.replace(".", "-")
    suffix = "ec2.internal" if me.region == "us-east-1" else f"{me.region}.compute.internal"
    return f"ip-{dashed}.{suffix}"


def _status(code: int) -> Reply:
    words = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
             405: "Method Not Allowed"}  # fmt: skip
    return Reply(code, words.get(code, ""))
