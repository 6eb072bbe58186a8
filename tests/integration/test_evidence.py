"""The chaos evidence, read from a real emulator: a dead letter's logged reason that ships after
SQS moved the message (a worker writes it just after handing the message back) is waited for,
and one that never comes is reported, after a bounded wait, as missing."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from conftest import Lab, Receiver

from lab.chaos import evidence
from lab.chaos.evidence import Evidence, gather
from lab.client.submit import JobSpec, build_xml
from worker.state.activity import ActivityLog, CloudWatchSink


def dead_letter(lab: Lab, request_id: str) -> None:
    """A request message put straight into the dead-letter queue."""
    spec = JobSpec(service="noop", request_id=request_id)
    lab.clients.sqs.send_message(
        QueueUrl=lab.env.dead_letter_queue_url, MessageBody=build_xml(spec).decode()
    )


def log_reason_later(lab: Lab, request_id: str, after_s: float) -> threading.Thread:
    """A worker's "dead-letter" line for ``request_id``, shipped ``after_s`` from now."""
    sink = CloudWatchSink(lab.clients.logs, lab.env.log_group, "i-late")

    def ship() -> None:
        time.sleep(after_s)
        log = ActivityLog("i-late", lab.home / "late.log", sink, flush_s=0.1)
        log.event("dead-letter", request_id=request_id, status="BINARY_CRASHED",
                  detail="binary was killed by signal SIGSEGV on each of 5 receives; answered, "
                         "and left for the dead-letter queue")  # fmt: skip
        log.close()

    thread = threading.Thread(target=ship, daemon=True)
    thread.start()
    return thread


def test_a_reason_that_ships_after_the_move_is_waited_for(lab: Lab, receiver: Receiver) -> None:
    dead_letter(lab, "late-1")
    shipper = log_reason_later(lab, "late-1", after_s=3.0)
    env = dataclasses.replace(lab.env, receiver_url=receiver.url)
    found = gather(lab.clients, env, Evidence(), time.time())
    shipper.join(timeout=30)
    assert set(found.dead_letters.values()) == {"late-1"}
    assert [x.status for x in found.lines("dead-letter", "late-1")] == ["BINARY_CRASHED"]
    assert not found.unexplained_dead_letters()


def test_a_reason_that_never_comes_is_reported_missing(
    lab: Lab, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evidence, "LOG_CATCH_UP_S", 2.0)
    dead_letter(lab, "bare-1")
    dead_letter(lab, "spent-1")
    env = dataclasses.replace(lab.env, receiver_url=receiver.url)
    found = gather(lab.clients, env, Evidence(), time.time(), spent=frozenset({"spent-1"}))
    assert found.unexplained_dead_letters(frozenset({"spent-1"})) == {"bare-1"}
    assert found.unexplained_dead_letters() == {"bare-1", "spent-1"}
