"""Result mode end to end: real workers on a real emulator, overlapping copies of one request,
a later copy, and a publish that fails (README, "Claim modes")."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support import wait_until
from test_pipeline import no_more_responses, raw_responses, request

from lab.client.results import parse_response
from worker.state.claims import claim_key

if TYPE_CHECKING:
    from conftest import Activity, Lab, WorkerProc

pytestmark = pytest.mark.integration

StartWorker = Callable[..., "WorkerProc"]

# A result-mode service whose runs never answer alike, and long enough for two to overlap.
COIN = """
[services.coin]
description = "Sleeps, then prints eight random bytes: no two runs answer alike"
command = ["/bin/sh", "-c", "sleep 1.5; od -An -N8 -tx1 /dev/urandom"]
input = false
timeout_seconds = 20
claim = "result"
"""


def lines(workers: list[WorkerProc], event: str, request_id: str) -> list[Activity]:
    return [a for w in workers for a in w.events(event, request_id=request_id)]


def test_overlapping_copies_deliver_the_winners_bytes_and_a_later_one_does_not_run(
    lab: Lab, start_worker: StartWorker, tmp_path: Path
) -> None:
    folder = tmp_path / "coin"
    folder.mkdir()
    (folder / "services.toml").write_text(COIN)
    # One message a receive: each worker takes one copy, and both run at once.
    env = {"FLEETLAB_SERVICES_DIR": str(folder), "FLEETLAB_BATCH_SIZE": "1"}
    workers = [start_worker(lab, name=name, **env) for name in ("worker-a", "worker-b")]
    request_id = f"coin-{uuid.uuid4().hex[:8]}"
    body = request("coin", request_id=request_id)
    lab.send(body)
    lab.send(body)

    bodies = raw_responses(lab, 2)
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]  # byte for byte, though the two runs printed different bytes
    ran = lines(workers, "ran", request_id)
    assert {a.worker for a in ran} == {"worker-a", "worker-b"}, "the copies did not overlap"
    [published] = lines(workers, "published", request_id)
    [lost] = lines(workers, "duplicate", request_id)
    assert lost.worker != published.worker
    assert lost.detail == f"published first by {published.worker}"
    stored = lab.claim(claim_key("", request_id))
    assert (stored["state"], stored["owner"]) == ("done", published.worker)
    assert stored["response"] == bodies[0]

    later = lab.send(body)  # after the result was published: re-sent, never run
    [again] = raw_responses(lab, 1)
    assert again == bodies[0]
    no_more_responses(lab, 1)
    [resent] = wait_until(
        lambda: [a for a in lines(workers, "duplicate", request_id) if a.message_id == later],
        10,
        "the later copy's duplicate line",
    )
    assert resent.detail == f"finished before by {published.worker}"
    assert len(lines(workers, "ran", request_id)) == 2  # no third run
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request queue to be empty")


def test_an_unpublished_result_is_not_delivered_and_the_message_is_not_lost(
    make_lab: Callable[..., Lab], start_worker: StartWorker
) -> None:
    lab = make_lab(visibility_timeout_s=2, max_receive_count=4)
    later = f"{lab.env.bucket}-later"  # the worker's bucket, absent: every S3 write fails
    worker = start_worker(lab, FLEETLAB_BUCKET=later)
    message_id = lab.send(request("noop"))  # no request id: its first receive looks nothing up
    [retry] = worker.wait_for("retry", message_id)
    assert retry.status == "STORE_ERROR"
    assert retry.detail.startswith("result not published, so not delivered")
    assert worker.events("ran", message_id) and not worker.events("delivered", message_id)
    assert raw_responses(lab, 1, wait_s=1) == []

    lab.clients.s3.create_bucket(Bucket=later)  # S3 is back: the message comes back, answered
    [answer] = raw_responses(lab, 1)
    result = parse_response(answer, "queue")
    assert (result.status, result.message_id) == ("success", message_id)
    assert len(worker.events("published", message_id)) == 1
    key = f"claims/{claim_key(message_id, None)}.json"
    assert json.loads(lab.get_bytes(key, bucket=later))["response"] == answer
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request to be deleted")
