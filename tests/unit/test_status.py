"""Status documents are written conditionally and keep what other writers put in them."""

from __future__ import annotations

from memstore import DictStore

from worker.consume.inbox import Inbox
from worker.consume.outcome import DELETE, HAND_BACK, Outcome, Stats
from worker.consume.queue import Message
from worker.state.status import DrainRequest, Status, StatusReporter


def reporter(store: DictStore) -> StatusReporter:
    return StatusReporter(
        store, "i-1", Inbox(), Stats(), lambda: {"PutObject": 2}, 5.0, "v7", lambda: 100.0
    )


def test_first_write_creates_then_replaces_on_its_own_etag() -> None:
    store = DictStore()
    status = reporter(store)
    status.write("idle")
    first = store.read("status/i-1.json")
    assert first is not None and first.doc["state"] == "idle" and first.doc["code_version"] == "v7"
    status.write("stopped")
    second = store.read("status/i-1.json")
    assert second is not None and second.doc["state"] == "stopped" and second.etag != first.etag


def test_a_field_written_by_someone_else_survives_the_next_heartbeat() -> None:
    store = DictStore()
    status = reporter(store)
    status.write("idle")
    found = store.read("status/i-1.json")
    assert found is not None
    store.replace("status/i-1.json", found.doc | {"drain_requested": True}, found.etag)
    status.write("idle")
    after = store.read("status/i-1.json")
    assert after is not None and after.doc["drain_requested"] is True
    assert status.extra == {"drain_requested": True}


def test_a_restarted_worker_adopts_its_old_document() -> None:
    store = DictStore()
    reporter(store).write("idle")
    again = reporter(store)  # same id, no etag yet: create loses, it reads and replaces
    again.write("busy")
    found = store.read("status/i-1.json")
    assert found is not None and found.doc["state"] == "busy"


def test_a_draining_worker_says_so() -> None:
    store = DictStore()
    draining = [False]
    status = StatusReporter(
        store, "i-1", Inbox(), Stats(), dict, 5.0, "v7", lambda: 1.0, draining=lambda: draining[0]
    )
    status.write("idle")
    draining[0] = True
    status.write("idle")
    found = store.read("status/i-1.json")
    assert found is not None and found.doc["state"] == "draining"
    status.write("stopped")
    found = store.read("status/i-1.json")
    assert found is not None and found.doc["state"] == "stopped"


def told_to_drain(store: DictStore) -> tuple[StatusReporter, list[str]]:
    """A reporter whose drain callback records that it was called."""
    told: list[str] = []
    status = StatusReporter(
        store, "i-1", Inbox(), Stats(), dict, 5.0, "v7", lambda: 1.0,
        on_drain=lambda: told.append("drain"),
    )  # fmt: skip
    return status, told


def test_a_drain_request_is_noticed_once_on_the_next_write() -> None:
    store = DictStore()
    status, told = told_to_drain(store)
    status.write("idle")
    assert told == []
    found = store.read("status/i-1.json")
    assert found is not None
    store.replace("status/i-1.json", found.doc | {"drain_requested": {"token": 3}}, found.etag)
    status.write("idle")
    status.write("idle")
    assert told == ["drain"]


def test_a_restarted_worker_told_to_drain_drains_again() -> None:
    store = DictStore()
    store.create("status/i-1.json", {"state": "stopped", "drain_requested": {"token": 1}})
    status, told = told_to_drain(store)
    status.write("idle")
    assert told == ["drain"]


def test_job_durations_reach_the_status_document() -> None:
    store = DictStore()
    stats = Stats()
    stats.record(Outcome("delivered", Message("m-1", "r", b"", 1), DELETE, 2.5))
    stats.record(Outcome("released", Message("m-2", "r", b"", 1), HAND_BACK, 0.0))
    stats.record(Outcome("error-delivered", Message("m-3", "r", b"", 1), DELETE, 0.5))
    StatusReporter(store, "i-1", Inbox(), stats, dict, 5.0).write("idle")
    found = store.read("status/i-1.json")
    assert found is not None and found.doc["job_seconds"] == [2.5, 0.5]


def test_the_jobs_a_worker_runs_at_once_reach_the_status_document() -> None:
    store = DictStore()
    StatusReporter(store, "i-1", Inbox(), Stats(), dict, 5.0, slots=lambda: 4).write("busy")
    found = store.read("status/i-1.json")
    assert found is not None and found.doc["slots"] == 4


def test_the_status_document_round_trips_through_its_dataclass() -> None:
    status = Status(
        worker_id="i-1",
        state="busy",
        heartbeat_at=12.5,
        pid=7,
        current_request="m-1",
        jobs_done=3,
        outcomes={"delivered": 3},
        api_calls=9,
        api_calls_by_operation={"ReceiveMessage": 9},
        job_seconds=(1.0, 2.0),
        slots=4,
        code_version="v1",
        drain_requested=DrainRequest(at=1.0, by="i-2", token=4),
        extra={"someone_else": "kept"},
    )
    doc = status.to_doc()
    assert doc["someone_else"] == "kept" and doc["drain_requested"]["token"] == 4
    assert Status.from_doc(doc) == status


def test_a_broken_status_document_reads_as_unknown_not_as_an_error() -> None:
    odd = Status.from_doc(
        {"state": 3, "heartbeat_at": "soon", "jobs_done": "x", "job_seconds": "y", "pid": True},
        "i-9",
    )
    assert (odd.worker_id, odd.state, odd.heartbeat_at) == ("i-9", "3", None)
    assert (odd.jobs_done, odd.job_seconds, odd.pid, odd.serving) == (0, (), None, False)
    assert [Status.from_doc({"slots": bad}).slots for bad in (0, -3, "4", None)] == [1, 1, 1, 1]
    assert Status.from_doc({}, "i-9").heartbeat_at == 0.0  # never beat: long ago, so stale
    assert Status.from_doc({"drain_requested": True}).drain_requested is not None
