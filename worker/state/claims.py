"""Claims: at most one run per request, and only the current claim holder may publish.

A claim is a small JSON document ``claims/<key>.json``. It is created with ``IfNoneMatch`` (so
exactly one worker wins), renewed and finished with ``IfMatch`` on the etag the holder last saw.
A worker whose lease expired and was taken over holds a stale etag, so its late result cannot
overwrite the winner's: that is the fence. The takeover bumps ``token`` for the activity log.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any, Literal

from worker.errors import ClaimBusy, ClaimLost, PreconditionFailed
from worker.state.layout import claim_path
from worker.state.store import JsonStore, Versioned

State = Literal["running", "done"]


@dataclass(frozen=True)
class Claim:
    """A claim as its holder last wrote (or read) it."""

    key: str
    owner: str
    token: int
    lease_until: float
    state: State
    message_id: str
    etag: str
    response: str | None = None

    def doc(self) -> dict[str, Any]:
        """The stored form (without the etag, which S3 keeps)."""
        doc: dict[str, Any] = {
            "owner": self.owner,
            "token": self.token,
            "lease_until": self.lease_until,
            "state": self.state,
            "message_id": self.message_id,
        }
        if self.response is not None:
            doc["response"] = self.response
        return doc


@dataclass(frozen=True)
class Acquired:
    """This worker holds the claim and must run the job."""

    claim: Claim
    takeover: bool


@dataclass(frozen=True)
class AlreadyDone:
    """The request was finished before; ``claim.response`` is the stored response to re-send."""

    claim: Claim


Decision = Literal["takeover", "busy", "done"]


def claim_key(message_id: str, request_id: str | None) -> str:
    """The idempotency key: the client's request id when given, else the SQS message id."""
    raw = f"request:{request_id}" if request_id else f"message:{message_id}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def decide(existing: Claim, now: float) -> Decision:
    """Pure rule for an existing claim: re-send if done, take over if its lease expired."""
    if existing.state == "done":
        return "done"
    if existing.lease_until <= now:
        return "takeover"
    return "busy"


def _from(key: str, found: Versioned) -> Claim:
    doc = found.doc
    return Claim(
        key=key,
        owner=str(doc.get("owner", "")),
        token=int(doc.get("token", 0)),
        lease_until=float(doc.get("lease_until", 0.0)),
        state="done" if doc.get("state") == "done" else "running",
        message_id=str(doc.get("message_id", "")),
        etag=found.etag,
        response=doc.get("response"),
    )


class Claims:
    """Claim, renew and finish requests in a ``JsonStore``."""

    def __init__(self, store: JsonStore, owner: str) -> None:
        self._store = store
        self._owner = owner

    def acquire(
        self, key: str, message_id: str, now: float, lease_s: float
    ) -> Acquired | AlreadyDone:
        """Claim ``key`` for this worker, or say it is done; raise ``ClaimBusy`` if it is held."""
        fresh = Claim(key, self._owner, 1, now + lease_s, "running", message_id, etag="")
        try:
            etag = self._store.create(claim_path(key), fresh.doc())
            return Acquired(_replace(fresh, etag=etag), takeover=False)
        except PreconditionFailed:
            pass
        found = self._store.read(claim_path(key))
        if found is None:  # deleted between our create and read: try once more from scratch
            return self.acquire(key, message_id, now, lease_s)
        existing = _from(key, found)
        verdict = decide(existing, now)
        if verdict == "done":
            return AlreadyDone(existing)
        if verdict == "busy":
            raise ClaimBusy(f"claim held by {existing.owner}", existing.lease_until - now)
        taken = Claim(
            key, self._owner, existing.token + 1, now + lease_s, "running", message_id, ""
        )
        try:
            etag = self._store.replace(claim_path(key), taken.doc(), existing.etag)
        except PreconditionFailed:
            raise ClaimBusy("another worker took the claim over first", lease_s) from None
        return Acquired(_replace(taken, etag=etag), takeover=True)

    def renew(self, claim: Claim, now: float, lease_s: float) -> Claim:
        """Extend the lease; raise ``ClaimLost`` if someone else took the claim."""
        renewed = _replace(claim, lease_until=now + lease_s)
        return self._write(renewed, claim.etag)

    def finish(self, claim: Claim, response: str) -> Claim:
        """Record the final response; raise ``ClaimLost`` if the claim was taken over."""
        done = _replace(claim, state="done", response=response)
        return self._write(done, claim.etag)

    def _write(self, claim: Claim, etag: str) -> Claim:
        try:
            new_etag = self._store.replace(claim_path(claim.key), claim.doc(), etag)
        except PreconditionFailed:
            raise ClaimLost(f"claim {claim.key} was taken over; result withheld") from None
        return _replace(claim, etag=new_etag)
