"""The loop on in-memory state: drain, hand-back behind a long job, and who touches SQS.

The worker runs on a thread named ``loop`` (in a worker process it is the main thread); the
queue records which thread made every delete and visibility change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from memstore import DictStore
from rig import Rig, request

from lab.client.results import parse_response
from worker.state.claims import Claims, claim_key


def wait_for(what: Callable[[], object], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def start(rig: Rig) -> threading.Thread:
    thread = threading.Thread(target=rig.worker.run, name="loop", daemon=True)
    thread.start()
    return thread


def running(rig: Rig, message_id: str) -> Callable[[], bool]:
    def check() -> bool:
        return message_id in [r.message.message_id for r in rig.inbox.running()]

    return check


def answers(rig: Rig) -> dict[str, str]:
    """Message id -> status of every response sent."""
    found = [parse_response(body, "queue") for body in rig.queue.responses]
    return {r.message_id: r.status for r in found}


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def make(**kwargs: object) -> Rig:
        rig = Rig(tmp_path / str(len(made)), **kwargs)  # type: ignore[arg-type]
        made.append(rig)
        return rig

    yield make
    for rig in made:
        rig.close()


def test_sigterm_drains(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(hold_s=60)
    long_id = rig.queue.send(request("sleep", params=[("s", "1")]))
    waiting_id = rig.queue.send(request())
    last_id = rig.queue.send(request())
    rig.queue.messages[last_id].receives = 2  # this receive is its last of 3
    loop = start(rig)
    wait_for(running(rig, long_id))
    rig.worker.stop.set()  # what the SIGTERM handler does
    loop.join(30)
    assert not loop.is_alive()
    assert rig.queue.receives == 1  # no new receive
    # The running job finished and was answered; the one on its last receive was answered too.
    assert answers(rig) == {long_id: "success", last_id: "success"}
    assert set(rig.queue.messages) == {waiting_id}  # the rest handed back ...
    assert rig.queue.visible() == [waiting_id]  # ... visible at once
    [released] = rig.lines(waiting_id, "released")
    assert released.detail == "draining"
    assert rig.names(long_id)[-2:] == ["delivered", "deleted"]
    assert rig.names()[-1] == "stopped"
    assert rig.worker.stats.outcomes == {"delivered": 2, "released": 1}


def test_messages_waiting_behind_a_long_job_are_handed_back_but_not_a_last_receive(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(hold_s=0.3)
    long_id = rig.queue.send(request("sleep", params=[("s", "1.5")]))
    behind_id = rig.queue.send(request())
    last_id = rig.queue.send(request())
    rig.queue.messages[last_id].receives = 2
    rig.queue.on_empty = rig.worker.stop  # stop once the queue is empty
    loop = start(rig)
    wait_for(lambda: rig.lines(behind_id, "released"))
    assert running(rig, long_id)()  # handed back while the long job still runs
    loop.join(30)
    assert not loop.is_alive()
    [released] = rig.lines(behind_id, "released")
    assert released.detail == "held behind a long job"
    assert not rig.lines(last_id, "released")  # kept, and answered after the long job
    assert answers(rig) == {long_id: "success", last_id: "success", behind_id: "success"}
    receives = [e.detail for e in rig.lines(behind_id, "received")]
    assert receives == ["receive #2"]  # never started on its first; taken again (here by us)
    assert not rig.queue.messages
    # The last receive is said as it is taken, long before its turn: had this worker died
    # holding it, SQS would dead-letter it unanswered, and this line would be the reason.
    [held] = rig.lines(last_id, "last-receive")
    assert held.detail == "receive #3: held here"
    assert rig.names(last_id).index("last-receive") < rig.names(last_id).index("received")
    assert not rig.lines(behind_id, "last-receive") and not rig.lines(long_id, "last-receive")


def test_only_the_loop_settles_and_the_heartbeat_only_extends(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(hold_s=0.2, heartbeat_s=0.2, visibility_s=30)
    rig.queue.send(request("sleep", params=[("s", "1.2")]))
    for _ in range(3):
        rig.queue.send(request())
    rig.queue.send(request("crash"))
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    loop.join(30)
    assert not loop.is_alive()
    by_thread = {c.thread for c in rig.queue.calls}
    assert by_thread == {"loop", "heartbeat"}
    beats = [c for c in rig.queue.calls if c.thread == "heartbeat"]
    assert beats and all(c.operation == "visibility" and c.seconds == 30 for c in beats)
    settled = [c for c in rig.queue.calls if c.thread == "loop"]
    assert {c.operation for c in settled} == {"delete", "visibility"}
    assert sorted(c.seconds for c in settled if c.operation == "visibility")[0] == 0  # hand-back
    assert rig.lines(event="lease-lost") == []


def test_a_claim_lost_while_the_binary_runs_stops_it_and_publishes_nothing(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(heartbeat_s=0.2, visibility_s=30)
    message_id = rig.queue.send(request("sleep", request_id="lost-1", params=[("s", "15")]))
    loop = start(rig)
    wait_for(running(rig, message_id))
    rig.queue.advance(31)  # this worker froze past its lease; another takes the claim over
    Claims(rig.store, "w2").acquire(claim_key(message_id, "lost-1"), message_id, 31, 30)
    wait_for(lambda: rig.lines(message_id, "fenced"))
    rig.worker.stop.set()
    loop.join(30)
    assert not loop.is_alive()
    assert rig.lines(message_id, "lease-lost")
    [fenced] = rig.lines(message_id, "fenced")
    assert (fenced.status, fenced.detail) == (
        "lost",
        "claim lost while the binary ran; run abandoned",
    )
    assert not rig.lines(message_id, "ran")
    assert rig.queue.responses == []
    assert message_id in rig.queue.messages  # left: the taker answers and deletes it
    assert rig.worker.stats.outcomes == {"fenced": 1}


class BrokenOnce(DictStore):
    """A store that fails once in a way nothing expects."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = True

    def create(self, key: str, doc: dict[str, object]) -> str:
        if self.broken:
            self.broken = False
            raise RuntimeError("disk on fire")
        return super().create(key, doc)


def test_an_unexpected_error_is_one_outcome_and_the_worker_goes_on(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(store=BrokenOnce())
    first = rig.queue.send(request())
    second = rig.queue.send(request())
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    loop.join(30)
    assert not loop.is_alive()
    [error] = rig.lines(first, "error")
    assert (error.status, error.detail) == ("INTERNAL_ERROR", "RuntimeError: disk on fire")
    assert first in rig.queue.messages  # left to come back
    assert answers(rig) == {second: "success"}
    assert rig.worker.stats.outcomes == {"retried": 1, "delivered": 1}
