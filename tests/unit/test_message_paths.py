"""Every path a message can take through the pipeline and the settle step, on in-memory state.

Each test reads what a client and SQS would see (the responses, what is left in the queue and the
dead-letter queue) and the one outcome the worker recorded for each message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from memstore import DictStore
from rig import REFUSED, Rig, request

from lab.client.results import parse_response
from worker.consume.outcome import DELETE, LEAVE, Outcome, RetryAfter
from worker.errors import PreconditionFailed
from worker.state.claims import Claims, claim_key


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.close()


def response(rig: Rig, n: int = -1) -> tuple[str, str | None, str]:
    """(status, code, message) of the ``n``-th response on the response queue."""
    found = parse_response(rig.queue.responses[n], "queue")
    return found.status, found.code, found.message


# ------------------------------------------------------------------------------------ success


def test_a_good_request_is_answered_then_deleted(rig: Rig) -> None:
    outcome = rig.process(request(request_id="ok-1", params=[("word", "there")]))
    assert (outcome.kind, outcome.action) == ("delivered", DELETE)
    assert outcome.response == rig.queue.responses[0]
    result = parse_response(rig.queue.responses[0], "queue")
    assert (result.status, result.request_id) == ("success", "ok-1")
    assert result.raw_output == "hello there\n"
    assert rig.queue.messages  # decided, not yet done: only the settle step deletes
    rig.settle(outcome)
    assert not rig.queue.messages
    assert rig.names(outcome.message_id) == ["received", "claimed", "ran", "delivered", "deleted"]
    assert rig.worker.stats.outcomes == {"delivered": 1}


# ---------------------------------------------------------------------------------- bad input

XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE request [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    '<request service="echo"><output type="queue"/></request>'
)
METADATA = "http://169.254.169.254/latest/meta-data/"

BAD = {
    "malformed": ("<request service='echo'><output type='queue'></request>", "MALFORMED_XML"),
    "not xml": ("hello, worker", "MALFORMED_XML"),
    "dtd": (XXE, "DTD_FORBIDDEN"),
    "wrong root": ('<job service="echo"><output type="queue"/></job>', "INVALID_REQUEST"),
    "schema": (request().replace("<output", "<bogus/><output"), "INVALID_REQUEST"),
    "oversize": (request().replace("<output", f"<!-- {'x' * 2100} --><output"), "REQUEST_TOO_LARGE"),
    "unknown service": (request("transcode"), "UNKNOWN_SERVICE"),
    "disallowed parameter": (request(params=[("X", "1")]), "PARAMETER_REJECTED"),
    "parameter out of bounds": (request(params=[("word", "-rf")]), "PARAMETER_REJECTED"),
    "missing input": (request("cat"), "MISSING_INPUT"),
    "input of the wrong scheme": (request("cat", input_url="ftp://x/y"), "INVALID_REQUEST"),
    "input URL rejected": (request("cat", input_url=METADATA), "URL_REJECTED"),
    "s3 input URL rejected": (request("cat", input_url="s3://B/k"), "URL_REJECTED"),
    "callback URL rejected": (request(callback_url=METADATA, response="callback"), "URL_REJECTED"),
    "input unavailable": (request("cat", input_url=f"{REFUSED}/in.mov"), "INPUT_UNAVAILABLE"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gets_its_error_on_the_queue_and_is_deleted(rig: Rig, case: str) -> None:
    body, code = BAD[case]
    outcome = rig.process(body)
    assert (outcome.kind, outcome.action, outcome.code) == ("error-delivered", DELETE, None)
    status, got, message = response(rig)
    assert (status, got) == ("error", code)
    assert message
    rig.settle(outcome)
    assert not rig.queue.messages
    names = rig.names(outcome.message_id)
    assert "ran" not in names
    assert names[-3:] == ["error", "delivered", "deleted"]
    # Only an input that had to be fetched got a claim; everything else was refused before it.
    assert ("claimed" in names) == (case == "input unavailable")


def test_a_rejected_request_with_a_refused_callback_never_contacts_it(rig: Rig) -> None:
    body = request(callback_url=METADATA, response="callback").replace("<output", "<bogus/><output")
    outcome = rig.process(body)
    assert response(rig)[1] == "INVALID_REQUEST"  # on the queue, not at the callback
    [delivered] = rig.lines(outcome.message_id, "delivered")
    assert delivered.detail.startswith("queue,")


def test_an_error_for_a_good_callback_goes_to_the_callback(rig: Rig) -> None:
    outcome = rig.process(
        request("cat", input_url=METADATA, callback_url=f"{REFUSED}/cb", response="callback")
    )
    # The input was refused; its error goes to the (checked) callback, which is down here.
    assert not rig.queue.responses
    assert (outcome.kind, outcome.action, outcome.event) == ("retried", LEAVE, "retry")
    assert outcome.code == "DELIVERY_FAILED"  # fmt: skip


# ------------------------------------------------------------------------------------- claims


def test_a_busy_claim_comes_back_once_the_lease_ends(rig: Rig) -> None:
    body = request(request_id="busy-1")
    Claims(rig.store, "w2").acquire(claim_key("x", "busy-1"), "x", now=0, lease_s=30)
    rig.queue.advance(10)
    outcome = rig.process(body)
    assert (outcome.kind, outcome.action, outcome.code) == ("retried", RetryAfter(21), "CLAIM_BUSY")
    assert not rig.queue.responses
    rig.settle(outcome)
    [busy] = rig.lines(outcome.message_id, "busy")
    assert (busy.status, busy.detail) == ("retry", "claim held by w2; back in 21s")
    [change] = rig.queue.operations("visibility")
    assert change.seconds == 21
    assert rig.queue.visible() == []
    rig.queue.advance(21)
    assert rig.queue.visible() == [outcome.message_id]


def test_a_copy_busy_on_its_last_receive_leaves_its_reason_time_to_ship(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_receive_count=1)  # every receive is the last
    try:
        Claims(rig.store, "w2").acquire(claim_key("x", "busy-2"), "x", now=0, lease_s=30)
        rig.queue.advance(29.5)  # the holder's lease ends in half a second
        outcome = rig.process(request(request_id="busy-2"))
        # Back in 2 s would be enough for the claim; the message waits for its reason's line
        # to ship (five of the log's 1 s intervals) before SQS may dead-letter it.
        assert (outcome.kind, outcome.action) == ("dead-lettered", RetryAfter(5))
        rig.settle(outcome)
        [dead] = rig.lines(outcome.message_id, "dead-letter")
        assert dead.detail == "claim held by w2 on its last receive; the holder answers"
    finally:
        rig.close()


@pytest.mark.parametrize("service", ["echo", "say"])  # lease mode, result mode
def test_a_duplicate_gets_the_stored_response_byte_for_byte_and_never_runs(
    rig: Rig, service: str
) -> None:
    body = request(service, request_id="dup-1")
    first = rig.process(body)
    second = rig.process(body)
    assert (second.kind, second.action) == ("redelivered", DELETE)
    assert rig.queue.responses[0] == rig.queue.responses[1] == second.response
    assert rig.names(second.message_id) == ["received", "duplicate", "delivered"]
    assert len(rig.lines(event="ran")) == 1
    rig.settle(first, second)
    assert not rig.queue.messages
    assert rig.queue.batches == [("delete", 2)]  # one batch call for both


def test_an_expired_claim_is_taken_over(rig: Rig) -> None:
    Claims(rig.store, "dead").acquire(claim_key("x", "take-1"), "x", now=0, lease_s=30)
    rig.queue.advance(31)
    outcome = rig.process(request(request_id="take-1"))
    assert outcome.kind == "delivered"
    [claimed] = rig.lines(outcome.message_id, "claimed")
    assert claimed.detail == "token 2 (takeover)"
    claim = rig.store.read(f"claims/{claim_key('x', 'take-1')}.json")
    assert claim is not None and (claim.doc["owner"], claim.doc["state"]) == ("w1", "done")


class TakenOverAtFinish(DictStore):
    """Another worker takes the claim over while this one runs: its final write loses."""

    def replace(self, key: str, doc: dict[str, object], etag: str) -> str:
        if doc.get("state") == "done":
            self.put(key, {**doc, "owner": "w2", "token": 2, "state": "running"})
            raise PreconditionFailed(key)
        return super().replace(key, doc, etag)


def test_a_fenced_worker_publishes_nothing_and_leaves_the_message(tmp_path: Path) -> None:
    rig = Rig(tmp_path, store=TakenOverAtFinish())
    try:
        outcome = rig.process(request(request_id="fence-1"))
        assert (outcome.kind, outcome.action, outcome.code) == ("fenced", LEAVE, "CLAIM_LOST")
        assert outcome.response is None
        assert not rig.queue.responses
        rig.settle(outcome)
        [fenced] = rig.lines(outcome.message_id, "fenced")
        assert fenced.status == "lost"
        assert rig.queue.calls == []  # left alone: the taker answers and deletes it
        assert outcome.message_id in rig.queue.messages
    finally:
        rig.close()


# ------------------------------------------------------------------------------------ binaries


def test_a_crash_is_retried_then_answered_and_dead_lettered_on_its_last_receive(rig: Rig) -> None:
    message_id = rig.queue.send(request("crash", request_id="poison-1"))
    for receive in (1, 2):
        outcome = rig.pipeline.process(rig.receive())
        assert (outcome.kind, outcome.action) == ("retried", RetryAfter(31))
        assert not rig.queue.responses
        rig.settle(outcome)
        rig.queue.advance(31)  # visible again, and the claim's lease has run out
        assert rig.lines(message_id, "retry")[-1].detail.endswith("back in 31s"), receive
    last = rig.pipeline.process(rig.receive())
    # Hidden for five of the activity log's ship intervals (1 s), so that its "dead-letter"
    # line reaches CloudWatch before the message reaches the DLQ (`lab dlq` reads the reason).
    assert (last.kind, last.action, last.event) == ("dead-lettered", RetryAfter(5), "dead-letter")
    status, code, message = response(rig)
    assert (status, code) == ("error", "BINARY_CRASHED")
    assert message == "binary was killed by signal SIGABRT on each of 3 receives"
    rig.settle(last)
    [dead] = rig.lines(message_id, "dead-letter")  # its reason in lab dlq: the error answered
    assert dead.status == "BINARY_CRASHED"
    assert dead.detail == f"{message}; answered, and left for the dead-letter queue"
    rig.queue.advance(4)
    assert rig.queue.receive(10, 0, 30) == [] and not rig.queue.dead_letters  # still hidden
    rig.queue.advance(1)
    assert rig.queue.receive(10, 0, 30) == []  # its next receive moved it to the DLQ
    assert [m.message_id for m in rig.queue.dead_letters] == [message_id]
    assert len(rig.lines(message_id, "retry")) + len(rig.lines(message_id, "error")) == 3
    assert [c.seconds for c in rig.queue.operations("visibility")] == [31, 31, 5]


@pytest.mark.parametrize(
    ("service", "code", "text"),
    [
        ("fail", "BINARY_FAILED", "binary exited with status 3: bad input"),
        ("hang", "BINARY_TIMEOUT", "binary ran past its limit of 0.3 seconds and was killed"),
    ],
)
def test_a_failed_or_timed_out_binary_is_answered_at_once(
    rig: Rig, service: str, code: str, text: str
) -> None:
    outcome = rig.process(request(service))
    assert (outcome.kind, outcome.action) == ("error-delivered", DELETE)
    assert response(rig) == ("error", code, text)
    [error] = rig.lines(outcome.message_id, "error")
    assert error.status == code


# ------------------------------------------------------------------------------------ delivery


def test_an_undeliverable_callback_is_retried_then_left_for_the_dead_letter_queue(rig: Rig) -> None:
    message_id = rig.queue.send(
        request(request_id="cb-1", callback_url=f"{REFUSED}/cb", response="callback")
    )
    kinds = []
    for _ in range(3):
        outcome = rig.pipeline.process(rig.receive())
        assert outcome.action == LEAVE and outcome.code == "DELIVERY_FAILED"
        kinds.append(outcome.kind)
        rig.settle(outcome)
        rig.queue.advance(30)
    assert kinds == ["retried", "retried", "dead-lettered"]
    assert rig.queue.calls == []  # left each time: it came back by itself
    [dead] = rig.lines(message_id, "dead-letter")
    assert dead.status == "DELIVERY_FAILED" and "refused" in dead.detail.lower()
    assert len(rig.lines(message_id, "retry")) == 2
    assert len(rig.lines(message_id, "ran")) == 1  # later receives re-send, never re-run
    assert rig.queue.receive(10, 0, 30) == []
    assert [m.message_id for m in rig.queue.dead_letters] == [message_id]  # fmt: skip


# --------------------------------------------------------------------------------- settle step


def test_a_delete_sqs_refuses_is_recorded_as_such(rig: Rig) -> None:
    outcome = rig.process(request())
    rig.queue.refuse.add(outcome.message_id)
    rig.settle(outcome)
    assert not rig.lines(outcome.message_id, "deleted")
    [error] = rig.lines(outcome.message_id, "error")
    assert error.status == "DELETE_FAILED" and "ReceiptHandleIsInvalid" in error.detail
    assert rig.worker.stats.outcomes == {"delivered": 1}
    assert rig.worker.stats.unsettled == {"Delete": 1}


def test_a_refused_visibility_change_keeps_its_event_and_says_so(rig: Rig) -> None:
    outcome = rig.process(request("crash"))
    rig.queue.refuse.add(outcome.message_id)
    rig.settle(outcome)
    [retry] = rig.lines(outcome.message_id, "retry")
    assert retry.status == "VISIBILITY_FAILED" and "refused" in retry.detail


def test_settling_batches_by_ten_and_records_one_line_each(rig: Rig) -> None:
    bodies = [request(params=[("word", "a" * (n + 1))]) for n in range(10)]
    outcomes: list[Outcome] = [rig.process(b) for b in bodies]
    outcomes += [rig.process(request("crash")) for _ in range(2)]
    rig.settle(*outcomes)
    assert rig.queue.batches == [("delete", 10), ("visibility", 2)]
    for outcome in outcomes:
        settled = [e for e in rig.lines(outcome.message_id) if e.event in ("deleted", "retry")]
        assert len(settled) == 1
    assert rig.worker.stats.outcomes == {"delivered": 10, "retried": 2}
