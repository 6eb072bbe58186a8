"""Claims: one published result per request, and only the current claim holder may publish.

A claim is a small JSON document ``claims/<key>.json``. In lease mode it is created with
``IfNoneMatch`` before the run (so exactly one worker wins and runs), renewed and finished with
``IfMatch`` on the etag the holder last saw. A worker whose lease expired and was taken over holds
a stale etag, so its late result cannot overwrite the winner's: that is the fence. The takeover
bumps ``token`` for the activity log.

In result mode nothing is written before the run: the finished document (state ``done``, the
response) is created once, with ``IfNoneMatch``, after it (``publish``). Of overlapping runs
exactly one write wins; the others read the winner's response back and deliver that. Both modes
leave the same finished document, so either reads the other's.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any, Literal

from botocore.exceptions import BotoCoreError

from worker.errors import ClaimBusy, ClaimLost, PreconditionFailed, StoreError
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


@dataclass(frozen=True)
class Published:
    """The finished claim of a result-mode request; ``ours``: this worker's write created it,
    else another run's had (``claim.response`` is then the response to deliver instead)."""

    claim: Claim
    ours: bool


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


def may_be_stored(request_id: str | None, receive_count: int) -> bool:
    """Pure rule: may a result-mode request have a stored result before this run?

    Its key is the client's request id, which another message may have carried, or else its
    message id, which only an earlier receive of this very message can have published under:
    on the first receive of a message without a request id there is nothing to look up, and
    the create-only write is the only check (SQS counts receives approximately; a copy counted
    as a first receive runs, loses that write, and delivers the stored response)."""
    return request_id is not None or receive_count > 1


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
        if found.doc == fresh.doc():  # our own create, its answer lost: see ``_write``
            return Acquired(_replace(fresh, etag=found.etag), takeover=False)
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

    def release(self, claim: Claim) -> Claim:
        """Give the claim up unfinished: its lease ends now, so the next receiver takes it over
        at once; raise ``ClaimLost`` if someone else took it."""
        return self._write(_replace(claim, lease_until=0.0), claim.etag)

    def finish(self, claim: Claim, response: str) -> Claim:
        """Record the final response; raise ``ClaimLost`` if the claim was taken over."""
        done = _replace(claim, state="done", response=response)
        return self._write(done, claim.etag)

    def lookup(self, key: str) -> Claim | None:
        """The claim on ``key`` (finished or not), or None; ``StoreError`` if it cannot be read."""
        try:
            found = self._store.read(claim_path(key))
        except BotoCoreError as exc:  # the endpoint is unreachable: a store failure like others
            raise StoreError(f"cannot read claim {key}: {exc}") from None
        return None if found is None else _from(key, found)

    def publish(self, key: str, message_id: str, response: str, now: float) -> Published:
        """Result mode's one write: create the finished claim with ``response`` unless one exists.

        Lost to another run: its finished claim, read back, to deliver instead. ``ClaimBusy``:
        a lease-mode claim holds the request (the service changed mode) and will answer it.
        ``StoreError``: nothing is known to be published (unreachable, or unreadable)."""
        done = Claim(key, self._owner, 1, 0.0, "done", message_id, "", response)
        try:
            etag = self._store.create(claim_path(key), done.doc())
            return Published(_replace(done, etag=etag), ours=True)
        except PreconditionFailed:
            pass
        except BotoCoreError as exc:
            raise StoreError(f"cannot publish the result of {key}: {exc}") from None
        found = self.lookup(key)
        if found is None:
            raise StoreError(f"the result of {key} was published and is gone")
        if found.doc() == done.doc():
            # Our own create, its answer lost (see ``_write``) — or a copy of this very message
            # run on this worker to the same bytes, which is what a loser delivers anyway.
            return Published(found, ours=True)
        if found.state != "done":
            raise ClaimBusy(f"claim held by {found.owner}", max(0.0, found.lease_until - now))
        if not isinstance(found.response, str):
            raise StoreError(f"the stored result of {key} holds no response")
        return Published(found, ours=False)

    def _write(self, claim: Claim, etag: str, again: bool = True) -> Claim:
        """Replace the claim if it still has ``etag``; ``ClaimLost`` if someone else wrote it.

        A conditional write can fail its condition on its own account: it landed, its answer
        was lost (a connection reset), the SDK sent it again, and the retry found the write
        itself in the way. The stored document is then exactly the one written — no other
        writer's can be (another owner, token or lease end) — so it counts as written. The same
        holds for the creates in ``acquire`` and ``publish``. Left as a loss, a renewal would
        read as a takeover, and a finish as fenced: the message left unanswered, dead-lettered
        if it was on its last receive.

        A write of one's own can also land with no answer at all (the SDK's retries spent), and
        leave this holder's etag behind it. The stored claim is then still this holder's — the
        same owner and token, running: a takeover bumps the token, a finish ends the running —
        and the write is made again on top of it (once), rather than read as a takeover that
        would stop the job for another instance to run again. ``StoreError`` when the check
        itself cannot read."""
        doc = claim.doc()
        try:
            new_etag = self._store.replace(claim_path(claim.key), doc, etag)
        except PreconditionFailed:
            try:
                found = self._store.read(claim_path(claim.key))
            except BotoCoreError as exc:
                raise StoreError(f"cannot tell who wrote claim {claim.key}: {exc}") from None
            if found is not None and found.doc == doc:
                return _replace(claim, etag=found.etag)
            if found is None or not _held_by(_from(claim.key, found), claim) or not again:
                raise ClaimLost(f"claim {claim.key} was taken over; result withheld") from None
            return self._write(claim, found.etag, again=False)
        return _replace(claim, etag=new_etag)


def _held_by(stored: Claim, holder: Claim) -> bool:
    """The stored claim is ``holder``'s, whatever lease end its last write left: the same owner
    and token, still running."""
    return (stored.owner, stored.token, stored.state) == (holder.owner, holder.token, "running")
