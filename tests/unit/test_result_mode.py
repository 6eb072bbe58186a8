"""Result mode on in-memory state: run, then one create-only write; a loser and a later
duplicate deliver the stored response byte for byte; nothing unpublished is ever delivered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from memstore import DictStore
from rig import REFUSED, Rig, request

import worker.state.claims as claims_module
from lab.chaos.explore.sabotage import CLAIM_CREATE
from lab.client.results import parse_response
from worker.consume.outcome import DELETE, LEAVE, RetryAfter
from worker.errors import ClaimBusy, ConfigError, StoreError
from worker.handle.service_file import load_registry
from worker.state.claims import Claims, claim_key, may_be_stored
from worker.state.store import Versioned


class CountingStore(DictStore):
    """``DictStore`` that counts its calls by operation."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def create(self, key: str, doc: dict[str, Any]) -> str:
        self.ops.append("create")
        return super().create(key, doc)

    def replace(self, key: str, doc: dict[str, Any], etag: str) -> str:
        self.ops.append("replace")
        return super().replace(key, doc, etag)

    def read(self, key: str) -> Versioned | None:
        self.ops.append("read")
        return super().read(key)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path, store=CountingStore())
    yield made
    made.close()


def ops(rig: Rig) -> list[str]:
    assert isinstance(rig.store, CountingStore)
    return rig.store.ops


def stored(rig: Rig, request_id: str | None, message_id: str = "") -> dict[str, Any]:
    found = DictStore.read(rig.store, f"claims/{claim_key(message_id, request_id)}.json")
    assert found is not None
    return found.doc


def test_a_first_receive_without_a_request_id_costs_one_write_and_no_read(rig: Rig) -> None:
    outcome = rig.process(request("say", params=[("word", "hi")]))
    assert (outcome.kind, outcome.action) == ("delivered", DELETE)
    assert parse_response(rig.queue.responses[0], "queue").raw_output == "said hi\n"
    assert ops(rig) == ["create"]  # no claim before the run, no lookup: one write in all
    names = rig.names(outcome.message_id)
    assert names == ["received", "ran", "published", "delivered"]
    doc = stored(rig, None, outcome.message_id)
    assert (doc["state"], doc["owner"]) == ("done", "w1")
    assert doc["response"].encode() == outcome.response == rig.queue.responses[0]


def test_a_request_id_is_looked_up_once_before_the_run(rig: Rig) -> None:
    body = request("say", request_id="r-1")
    rig.process(body)
    assert ops(rig) == ["read", "create"]
    rig.process(body)  # a later duplicate (test_message_paths: the same bytes, not run)
    assert ops(rig) == ["read", "create", "read"]


class PublishedMeanwhile(CountingStore):
    """Another worker's overlapping run publishes first: this one's create-only write loses."""

    def create(self, key: str, doc: dict[str, Any]) -> str:
        winner = {**doc, "owner": "w2", "message_id": "m-2",
                  "response": doc["response"].replace("said", "SAID")}  # fmt: skip
        self.put(key, winner)
        return super().create(key, doc)


def test_an_overlapping_loser_delivers_the_winners_bytes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, store=PublishedMeanwhile())
    try:
        outcome = rig.process(request("say", params=[("word", "race")]))
        assert (outcome.kind, outcome.action) == ("redelivered", DELETE)
        winner = stored(rig, None, outcome.message_id)["response"].encode()
        assert rig.queue.responses == [winner] and outcome.response == winner
        assert b"SAID race" in winner  # the winner's, not this run's own
        [duplicate] = rig.lines(outcome.message_id, "duplicate")
        assert duplicate.detail == "published first by w2"
        assert rig.names(outcome.message_id) == ["received", "ran", "duplicate", "delivered"]
    finally:
        rig.close()


class Unreachable(CountingStore):
    """S3 cannot be reached when the result is to be published."""

    def create(self, key: str, doc: dict[str, Any]) -> str:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")


def test_an_unpublished_result_is_never_delivered_and_the_message_comes_back(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, store=Unreachable())
    try:
        message_id = rig.queue.send(request("say", request_id="down-1"))
        kinds = []
        for _ in range(3):
            outcome = rig.pipeline.process(rig.receive())
            assert (outcome.action, outcome.code) == (LEAVE, "STORE_ERROR")
            kinds.append(outcome.kind)
            rig.settle(outcome)
            rig.queue.advance(30)
        assert kinds == ["retried", "retried", "dead-lettered"]
        assert not rig.queue.responses  # never an unpublished result
        assert rig.queue.calls == []  # left each time: it came back by itself
        [dead] = rig.lines(message_id, "dead-letter")
        assert dead.detail.startswith("result not published, so not delivered")
        assert rig.queue.receive(10, 0, 30) == []
        assert [m.message_id for m in rig.queue.dead_letters] == [message_id]
    finally:
        rig.close()


class Corrupt(CountingStore):
    """A stored result that cannot be read (not JSON, or S3 refuses the read)."""

    def read(self, key: str) -> Versioned | None:
        raise StoreError(f"state {key!r} is not JSON")


def test_an_unreadable_stored_result_is_neither_run_over_nor_guessed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, store=Corrupt())
    try:
        outcome = rig.process(request("say", request_id="bad-1"))
        assert (outcome.kind, outcome.action, outcome.code) == ("retried", LEAVE, "STORE_ERROR")
        assert not rig.lines(event="ran") and not rig.queue.responses
        # A first receive skips the lookup: it runs, loses the write, and cannot read the winner.
        queued = rig.queue.send(request("say"))
        rig.store.put(f"claims/{claim_key(queued, None)}.json", {"state": "done"})
        lost = rig.pipeline.process(rig.receive())
        assert (lost.kind, lost.action, lost.code) == ("retried", LEAVE, "STORE_ERROR")
        assert len(rig.lines(queued, "ran")) == 1
        assert not rig.queue.responses
    finally:
        rig.close()


def test_a_stored_result_without_a_response_is_not_delivered(rig: Rig) -> None:
    queued = rig.queue.send(request("say"))
    DictStore.put(rig.store, f"claims/{claim_key(queued, None)}.json", {"state": "done"})
    outcome = rig.pipeline.process(rig.receive())
    assert (outcome.kind, outcome.code) == ("retried", "STORE_ERROR")
    assert "holds no response" in outcome.detail and not rig.queue.responses


def test_a_lease_claim_left_from_lease_mode_is_answered_under_the_lease(rig: Rig) -> None:
    Claims(rig.store, "w2").acquire(claim_key("x", "mode-1"), "x", now=0, lease_s=30)
    outcome = rig.process(request("say", request_id="mode-1"))
    assert (outcome.kind, outcome.code) == ("retried", "CLAIM_BUSY")
    assert not rig.lines(event="ran")
    rig.queue.advance(31)  # the lease ran out: taken over, run and finished under the lease
    again = rig.process(request("say", request_id="mode-1"))
    assert again.kind == "delivered"
    assert "claimed" in rig.names(again.message_id)


def test_a_crash_in_result_mode_is_retried_like_a_leased_one(rig: Rig) -> None:
    outcome = rig.process(request("crash-result"))
    assert (outcome.kind, outcome.action, outcome.code) == (
        "retried",
        RetryAfter(31),
        "BINARY_CRASHED",
    )
    assert ops(rig) == []  # nothing published, nothing to look up
    assert not rig.queue.responses


def test_an_undeliverable_result_is_re_sent_from_the_store_never_re_run(rig: Rig) -> None:
    message_id = rig.queue.send(request("say", callback_url=f"{REFUSED}/cb", response="callback"))
    for _ in range(3):
        outcome = rig.pipeline.process(rig.receive())
        assert outcome.action == LEAVE and outcome.code == "DELIVERY_FAILED"
        rig.settle(outcome)
        rig.queue.advance(30)
    assert len(rig.lines(message_id, "ran")) == 1  # later receives looked it up
    assert len(rig.lines(message_id, "duplicate")) == 2
    assert rig.queue.receive(10, 0, 30) == []  # its next receive moved it to the DLQ
    assert [m.message_id for m in rig.queue.dead_letters] == [message_id]


@pytest.mark.parametrize(
    ("request_id", "receive", "look"), [(None, 1, False), (None, 2, True), ("r", 1, True)]
)
def test_may_be_stored(request_id: str | None, receive: int, look: bool) -> None:
    assert may_be_stored(request_id, receive) is look


def test_publish_loses_to_a_stored_result_and_reads_it_back() -> None:
    store = DictStore()
    first = Claims(store, "w1").publish("k", "m1", "<a/>", now=0)
    second = Claims(store, "w2").publish("k", "m2", "<b/>", now=0)
    assert first.ours and not second.ours
    assert (second.claim.owner, second.claim.response) == ("w1", "<a/>")


def test_a_lease_claim_defeats_publish_as_busy() -> None:
    store = DictStore()
    Claims(store, "w1").acquire("k", "m", now=0, lease_s=30)
    with pytest.raises(ClaimBusy, match="claim held by w1") as busy:
        Claims(store, "w2").publish("k", "m", "<b/>", now=10)
    assert busy.value.retry_after == 20


def test_the_mode_defaults_to_lease_and_is_checked_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text('[services.x]\ncommand = ["a"]\n')
    assert load_registry(path).get("x").claim == "lease"
    path.write_text('[services.x]\ncommand = ["a"]\n\nclaim = "optimistic"\n')
    with pytest.raises(
        ConfigError, match=r'services.toml:4: services.x.claim must be "lease" or "result"'
    ):
        load_registry(path)


def test_the_light_built_ins_use_result_mode_and_the_long_ones_the_lease() -> None:
    modes = {s.name: s.claim for s in load_registry().services.values()}
    assert modes == {
        "analyze": "lease", "wait": "lease", "noop": "result", "audio-stats": "result",
        "audio-spectrogram": "result", "image-thumbnail": "result", "encrypt": "result",
    }  # fmt: skip


def test_the_skip_claim_sabotage_still_finds_lease_modes_one_create() -> None:
    assert Path(claims_module.__file__).read_text().count(CLAIM_CREATE) == 1
