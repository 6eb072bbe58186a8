"""Several jobs at once on one real worker over a real emulator (README, "Concurrency")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest
from support import wait_until
from test_pipeline import raw_responses, request

if TYPE_CHECKING:
    from conftest import Activity, Lab, WorkerProc

pytestmark = pytest.mark.integration

JOB_END = ("deleted", "released", "retry", "busy", "dead-letter", "fenced", "error")


def overlapping(lines: list[Activity]) -> int:
    """How many jobs began (their ``received`` line) while another was between its own
    ``received`` and ``delivered``: read from the order of the log, not from clocks."""
    open_jobs: set[str] = set()
    overlaps = 0
    for line in lines:
        if line.event == "received":
            overlaps += bool(open_jobs)
            open_jobs.add(line.message_id)
        elif line.event == "delivered":
            open_jobs.discard(line.message_id)
    return overlaps


def test_a_worker_with_cap_4_drains_noop_requests_several_at_once(
    lab: Lab, start_worker: Callable[..., WorkerProc]
) -> None:
    count = 40
    sent = {lab.send(request("noop")) for _ in range(count)}
    # A long hold: nothing is handed back, so each message has one receive and one outcome.
    worker = start_worker(lab, FLEETLAB_CONCURRENCY="4", FLEETLAB_HOLD_SECONDS="30")
    assert len(raw_responses(lab, count, wait_s=25)) == count
    wait_until(lambda: len(worker.events("deleted")) >= count, 10, "every message deleted")
    lines = worker.activity()
    ended = Counter(a.message_id for a in lines if a.event in JOB_END)
    assert ended == dict.fromkeys(sent, 1)  # exactly one outcome each: deleted
    assert {a.message_id for a in lines if a.event == "deleted"} == sent
    assert overlapping(lines) > 0, "no job began while another ran"
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request queue to be empty")
