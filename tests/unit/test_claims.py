"""Claim rules: one run per request, takeover only after the lease, fenced late results."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from memstore import DictStore

from worker.errors import ClaimBusy, ClaimLost
from worker.state.claims import Acquired, AlreadyDone, Claim, Claims, claim_key, decide
from worker.state.layout import claim_path


def test_key_prefers_the_clients_request_id() -> None:
    assert claim_key("m1", "r") == claim_key("m2", "r")
    assert claim_key("m1", None) != claim_key("m2", None)


@pytest.mark.parametrize(
    ("state", "lease_until", "now", "verdict"),
    [("done", 0, 100, "done"), ("running", 99, 100, "takeover"), ("running", 101, 100, "busy")],
)
def test_decide(state: str, lease_until: float, now: float, verdict: str) -> None:
    claim = Claim("k", "w", 1, lease_until, state, "m", "e")  # type: ignore[arg-type]
    assert decide(claim, now) == verdict


def test_second_worker_is_busy_until_the_lease_expires_then_takes_over() -> None:
    store = DictStore()
    first, second = Claims(store, "w1"), Claims(store, "w2")
    got = first.acquire("k", "m", now=100, lease_s=30)
    assert isinstance(got, Acquired) and not got.takeover
    with pytest.raises(ClaimBusy) as busy:
        second.acquire("k", "m", now=110, lease_s=30)
    assert busy.value.retry_after == pytest.approx(20)
    taken = second.acquire("k", "m", now=131, lease_s=30)
    assert isinstance(taken, Acquired) and taken.takeover and taken.claim.token == 2
    # The zombie wakes up: its late result is fenced off, the taker's stands.
    with pytest.raises(ClaimLost):
        first.finish(got.claim, "<late/>")
    second.finish(taken.claim, "<winner/>")
    again = first.acquire("k", "m", now=200, lease_s=30)
    assert isinstance(again, AlreadyDone) and again.claim.response == "<winner/>"


def test_renewal_keeps_the_claim_and_detects_loss() -> None:
    store = DictStore()
    claims = Claims(store, "w1")
    got = claims.acquire("k", "m", now=0, lease_s=10)
    assert isinstance(got, Acquired)
    renewed = claims.renew(got.claim, now=8, lease_s=10)
    assert renewed.lease_until == 18
    taken = Claims(store, "w2").acquire("k", "m", now=19, lease_s=10)
    assert isinstance(taken, Acquired) and taken.takeover
    with pytest.raises(ClaimLost):
        claims.renew(renewed, now=20, lease_s=10)  # someone else wrote since


class AnswersLost(DictStore):
    """Every conditional write lands, its answer is lost, and the SDK sends it again: the caller
    sees the retry's answer — its own write in the way (a connection reset after S3 acted)."""

    def create(self, key: str, doc: dict[str, Any]) -> str:
        super().create(key, doc)
        return super().create(key, doc)

    def replace(self, key: str, doc: dict[str, Any], etag: str) -> str:
        super().replace(key, doc, etag)
        return super().replace(key, doc, etag)


class AnswerNeverCame(DictStore):
    """The next replace lands and no answer comes, the SDK's retries spent: the caller sees an
    error and keeps the etag it had."""

    lose_next = False

    def replace(self, key: str, doc: dict[str, Any], etag: str) -> str:
        new_etag = super().replace(key, doc, etag)
        if self.lose_next:
            self.lose_next = False
            raise EndpointConnectionError(endpoint_url="http://s3.test")
        return new_etag


def test_a_renewal_that_landed_unanswered_leaves_the_claim_its_holders() -> None:
    store = AnswerNeverCame()
    claims = Claims(store, "w1")
    got = claims.acquire("k", "m", now=0, lease_s=10)
    assert isinstance(got, Acquired)
    store.lose_next = True
    with pytest.raises(EndpointConnectionError):
        claims.renew(got.claim, now=5, lease_s=10)  # landed: the lease runs to 15
    renewed = claims.renew(got.claim, now=8, lease_s=10)  # on the stale etag: still ours
    assert renewed.lease_until == 18 and renewed.etag == store.docs[claim_path("k")].etag
    finished = claims.finish(renewed, "<ours/>")
    assert store.docs[claim_path("k")].doc == finished.doc()
    # Taken over (token 2), or finished: no longer the holder's, whatever its etag says.
    first = claims.acquire("t", "m", now=0, lease_s=10)
    second = Claims(store, "w2").acquire("t", "m", now=11, lease_s=10)
    assert isinstance(first, Acquired) and isinstance(second, Acquired) and second.takeover
    with pytest.raises(ClaimLost):
        claims.renew(first.claim, now=12, lease_s=10)
    with pytest.raises(ClaimLost):
        claims.renew(renewed, now=9, lease_s=10)  # its own finish since


def test_a_write_whose_answer_was_lost_is_recognised_as_its_own() -> None:
    store = AnswersLost()
    claims = Claims(store, "w1")
    got = claims.acquire("k", "m", now=0, lease_s=10)  # not busy with itself
    assert isinstance(got, Acquired) and not got.takeover
    renewed = claims.renew(got.claim, now=8, lease_s=10)  # not lost to itself
    finished = claims.finish(renewed, "<ours/>")  # not fenced by itself
    assert finished.etag == store.docs[claim_path("k")].etag
    again = Claims(store, "w2").acquire("k", "m", now=20, lease_s=10)
    assert isinstance(again, AlreadyDone) and again.claim.response == "<ours/>"
    published = claims.publish("r", "m2", "<result/>", now=30)
    assert published.ours and published.claim.response == "<result/>"
    # Another writer's document is never taken for one's own.
    with pytest.raises(ClaimLost):
        Claims(store, "w2").renew(renewed, now=9, lease_s=10)
    assert not Claims(store, "w2").publish("r", "m2", "<other/>", now=31).ours
