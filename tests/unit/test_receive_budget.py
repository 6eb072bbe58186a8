"""Receives are a budget under the redrive policy: a worker spends them only on work it starts.

Found by the scaler's burst test: three workers taking ten three-second jobs each handed most of
them back, every hand-back cost a receive, and SQS dead-lettered 29 of 60 requests unanswered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from worker.config import AwsTarget, WorkerConfig
from worker.consume.inbox import Inbox
from worker.consume.loop import Worker
from worker.consume.outcome import DELETE, Outcome
from worker.consume.queue import Message


def message(n: int, receives: int) -> Message:
    return Message(f"m-{n}", f"r-{n}", b"<x/>", receives)


def worker(
    tmp_path: Path,
    hold_s: float = 1.0,
    max_receive_count: int = 5,
    clock: Callable[[], float] = time.monotonic,
) -> Worker:
    config = WorkerConfig(
        aws=AwsTarget(), request_queue_url="q", response_queue_url="r", bucket="b",
        log_group="g", worker_id="w", work_dir=tmp_path, hold_s=hold_s,
        max_receive_count=max_receive_count, concurrency=3,
    )  # fmt: skip
    return Worker(config, None, None, Inbox(clock), None, None, clock)  # type: ignore[arg-type]


def test_a_message_on_its_last_receive_is_never_handed_back(tmp_path: Path) -> None:
    w = worker(tmp_path, max_receive_count=5)
    inbox = w.inbox
    inbox.add([message(1, 1), message(2, 5), message(3, 4), message(4, 9)])
    released = inbox.take_waiting(keep=w.last_receive)
    assert [m.message_id for m in released] == ["m-1", "m-3"]
    assert [m.message_id for m in inbox.take_waiting()] == ["m-2", "m-4"]  # still held, in order


def test_without_a_redrive_policy_everything_may_go_back(tmp_path: Path) -> None:
    assert not worker(tmp_path, max_receive_count=0).last_receive(message(1, 100))


def test_batch_size_follows_job_time(tmp_path: Path) -> None:
    w = worker(tmp_path, hold_s=1.0)
    assert w.batch_size() == 10  # nothing timed yet: a full batch
    for _ in range(5):
        w.stats.record(Outcome("delivered", message(0, 1), DELETE, 3.0))
    assert w.batch_size() == 1  # three-second jobs: one at a time, none waits to be handed back
    for _ in range(20):
        w.stats.record(Outcome("delivered", message(0, 1), DELETE, 0.05))
    assert w.batch_size() == 10  # twenty in a second: ten per receive
    for _ in range(20):
        w.stats.record(Outcome("delivered", message(0, 1), DELETE, 0.25))
    assert w.batch_size() == 4


def test_draining_answers_last_receives_and_leaves_the_rest(tmp_path: Path) -> None:
    w = worker(tmp_path, max_receive_count=3)
    processed: list[str] = []
    w.process = lambda m: processed.append(m.message_id)  # type: ignore[method-assign]
    w.decided = lambda outcome: None  # type: ignore[method-assign]
    w.inbox.add([message(1, 1), message(2, 3), message(3, 2), message(4, 3)])
    w.finish_last_receives()
    assert processed == ["m-2", "m-4"]
    assert [m.message_id for m in w.inbox.take_waiting()] == ["m-1", "m-3"]


def test_a_receive_ahead_only_when_the_queue_has_more_and_a_slot_would_take_it(
    tmp_path: Path,
) -> None:
    now = [100.0]
    w = worker(tmp_path, hold_s=1.0, clock=lambda: now[0])
    w.inbox.add([message(1, 1)])
    running = w.inbox.take()
    assert running is not None
    w.inbox.start(running, None)
    w.jobs = {"m-1": None}  # type: ignore[dict-item]  # one job thread, one slot of three
    assert not w.receive_ahead()  # the last receive came short: the queue is drained
    w.more = True
    assert w.receive_ahead()
    w.inbox.add([message(2, 1)])
    assert not w.receive_ahead()  # one waits for a slot already
    w.inbox.take_waiting()
    w.jobs = dict.fromkeys(["m-1", "m-2", "m-3"])  # type: ignore[arg-type]
    assert not w.receive_ahead()  # no slot free
    w.jobs = {"m-1": None}  # type: ignore[dict-item]
    now[0] += 0.5  # the running job has run half of hold_s: what came would be handed back
    assert not w.receive_ahead()
    now[0] -= 0.1
    assert w.receive_ahead()
    w.stop.set()
    assert not w.receive_ahead()  # draining: no new receive
