"""Several jobs at once on one worker (README, "Concurrency"), on the in-memory rig.

Overlap is observed, never timed: a gate service's job writes a marker when it starts and then
waits until the test opens its gate, so the markers present while the gate is shut are the
jobs running together.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from memstore import DictStore
from rig import Rig, request
from test_loop import answers, start, wait_for
from typer.testing import CliRunner

from lab.cli import service as service_cli
from worker.config import load_worker_config
from worker.consume.heartbeat import Beat, Heartbeat
from worker.consume.inbox import Inbox
from worker.consume.notice import abandon_if_late
from worker.consume.outcome import DELETE, Outcome, Stats
from worker.consume.queue import Message
from worker.consume.slots import Slots, group_of
from worker.errors import ConfigError
from worker.handle.service_file import load_registry
from worker.state.claims import Claims
from worker.state.lease import Lease


def gate(name: str, folder: Path, concurrency: int, claim: str = "result") -> str:
    """A service whose job marks its start in ``folder``, then waits for ``folder/open``; a job
    that starts while another of the same service runs leaves an ``overlap`` marker."""
    script = (
        f"d={folder}; [ -e $d/busy-{name} ] && touch $d/overlap-{name}; touch $d/busy-{name}; "
        f"touch $d/started-{name}-$$; while [ ! -e $d/open ]; do sleep 0.01; done; "
        f"rm -f $d/busy-{name}"
    )
    return f"""
[services.{name}]
command = ["/bin/sh", "-c", "{script}"]
input = false
timeout_seconds = 20
claim = "{claim}"
concurrency = {concurrency}
"""


class Gates:
    """The gate services' folder: which jobs started, and the gate they wait at."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def started(self, name: str) -> int:
        return len(list(self.folder.glob(f"started-{name}-*")))

    def overlapped(self, name: str) -> bool:
        return (self.folder / f"overlap-{name}").exists()

    def open(self) -> None:
        (self.folder / "open").touch()


@pytest.fixture
def gates(tmp_path: Path) -> Gates:
    return Gates(tmp_path / "gates")


@pytest.fixture
def make_rig(tmp_path: Path, gates: Gates) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []
    services = (
        gate("wide", gates.folder, 8)
        + gate("other", gates.folder, 8)
        + gate("single", gates.folder, 1, claim="lease")
    )

    def make(**kwargs: object) -> Rig:
        rig = Rig(tmp_path / f"rig{len(made)}", services_extra=services, **kwargs)  # type: ignore[arg-type]
        made.append(rig)
        return rig

    yield make
    gates.open()  # a failed test must not leave jobs waiting
    for rig in made:
        rig.close()


def settled_by_loop(rig: Rig) -> list[str]:
    """Wrap the settle step: record every outcome's message id, and that the loop settled it."""
    settled: list[str] = []
    real = rig.worker.settle

    def settle(outcomes: Sequence[Outcome]) -> None:
        assert threading.current_thread().name == "loop"
        settled.extend(o.message_id for o in outcomes)
        real(outcomes)

    rig.worker.settle = settle  # type: ignore[assignment]
    return settled


def test_a_service_of_concurrency_n_runs_n_jobs_at_once(
    make_rig: Callable[..., Rig], gates: Gates
) -> None:
    rig = make_rig(concurrency=4, hold_s=60)
    sent = [rig.queue.send(request("wide")) for _ in range(4)]
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    wait_for(lambda: gates.started("wide") == 4)  # all four began before any could end
    assert len(rig.inbox.running()) == 4
    gates.open()
    loop.join(30)
    assert not loop.is_alive()
    assert answers(rig) == dict.fromkeys(sent, "success")
    assert rig.worker.stats.outcomes == {"delivered": 4}


def test_a_concurrency_1_service_never_overlaps_itself_but_others_pass_it(
    make_rig: Callable[..., Rig], gates: Gates
) -> None:
    rig = make_rig(concurrency=4, hold_s=60)
    singles = [rig.queue.send(request("single")) for _ in range(3)]
    wide = rig.queue.send(request("wide"))  # behind the singles, it starts beside the first
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    wait_for(lambda: gates.started("wide") == 1)
    assert gates.started("single") == 1  # the other two wait for the first to end
    assert rig.inbox.waiting() == 2
    gates.open()
    loop.join(30)
    assert not loop.is_alive()
    assert gates.started("single") == 3
    assert not gates.overlapped("single")
    assert answers(rig) == dict.fromkeys([*singles, wide], "success")


def test_the_workers_cap_holds_across_services(make_rig: Callable[..., Rig], gates: Gates) -> None:
    rig = make_rig(concurrency=2, hold_s=60)
    for _ in range(2):
        rig.queue.send(request("wide"))
        rig.queue.send(request("other"))
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    wait_for(lambda: gates.started("wide") + gates.started("other") == 2)
    assert rig.worker.slots.busy() == 2
    assert rig.inbox.waiting() == 2  # the cap, not the services' eight, keeps two back
    gates.open()
    loop.join(30)
    assert not loop.is_alive()
    assert rig.worker.stats.outcomes == {"delivered": 4}


def test_slots_count_the_cap_and_each_service() -> None:
    limits = {"a": 2, "b": 8}
    slots = Slots(3, lambda group: limits.get(group or "", 1))
    slots.take("a")
    slots.take("a")
    assert not slots.fits("a")  # its own limit
    assert slots.fits("b")
    slots.take("b")
    assert not slots.fits("b")  # the cap: three in all
    slots.free("a")
    assert slots.fits("b") and slots.fits(None)
    slots.take(None)
    assert not slots.fits(None)


def test_a_message_names_its_service_only_if_readable() -> None:
    assert group_of(Message("m", "h", request("wide").encode(), 1), 2048) == "wide"
    assert group_of(Message("m", "h", b"not xml", 1), 2048) is None
    offloaded = Message("m", "h", request("wide").encode(), 1, payload_size=10)
    assert group_of(offloaded, 2048) is None  # its request is in S3: unknown, one at a time


def leases(count: int, store: DictStore) -> tuple[Inbox, list[Lease]]:
    inbox, claims, made = Inbox(clock=lambda: 100.0), Claims(store, "w1"), []
    for n in range(count):
        message = Message(f"m-{n}", f"h-{n}", b"<x/>", 1)
        got = claims.acquire(f"k-{n}", message.message_id, 0.0, 30)
        lease = Lease(claims, got.claim)  # type: ignore[union-attr]
        inbox.add([message])
        inbox.take()
        inbox.start(message, lease)
        made.append(lease)
    return inbox, made


class Extensions:
    """The heartbeat's side of the queue: records each visibility change."""

    def __init__(self) -> None:
        self.changed: list[tuple[str, int]] = []

    def change_visibility(self, changes: Sequence[tuple[Message, int]]) -> dict[Message, str]:
        self.changed.extend((m.message_id, s) for m, s in changes)
        return {}


def test_the_heartbeat_renews_every_running_lease() -> None:
    store = DictStore()
    inbox, made = leases(3, store)
    queue = Extensions()
    clock = iter([0.0, 10.0])
    heartbeat = Heartbeat(
        inbox, queue, Beat(5.0, 30), lambda *_: None,  # type: ignore[arg-type]
        wall=lambda: 50.0, clock=lambda: next(clock),
    )  # fmt: skip
    heartbeat.tick()
    assert sorted(queue.changed) == [("m-0", 30), ("m-1", 30), ("m-2", 30)]
    assert [lease.claim.lease_until for lease in made] == [80.0, 80.0, 80.0]


def test_a_spot_notice_abandons_each_running_job_that_would_not_finish() -> None:
    store = DictStore()
    inbox, made = leases(2, store)
    late = Message("m-late", "h", b"<x/>", 1)
    got = Claims(store, "w1").acquire("k-late", late.message_id, 0.0, 30)
    late_lease = Lease(Claims(store, "w1"), got.claim)  # type: ignore[union-attr]
    inbox.add([late])
    inbox.take()
    inbox._clock = lambda: 119.0  # started at 119: 19 s to go
    inbox.start(late, late_lease)
    short = Message("m-result", "h", b"<x/>", 1)
    inbox.add([short])
    inbox.take()
    inbox.start(short, None)  # result mode: no lease, let finish
    stats = Stats()
    stats.timed.extend([(20.0, None)] * 2)
    # now 120: the jobs from 100 have 0 s to go, the one from 119 has 19 s; 10 s are left.
    assert abandon_if_late(inbox, stats, remaining_s=10, now=120.0, margin_s=2) == 1
    assert late_lease.abandoned.is_set()
    assert not any(lease.abandoned.is_set() for lease in made)


def test_draining_settles_the_running_and_hands_back_the_unstarted(
    make_rig: Callable[..., Rig], gates: Gates
) -> None:
    rig = make_rig(concurrency=2, hold_s=60)
    settled = settled_by_loop(rig)
    sent = [rig.queue.send(request("wide")) for _ in range(5)]
    loop = start(rig)
    wait_for(lambda: gates.started("wide") == 2)
    rig.worker.stop.set()  # what the SIGTERM handler does
    gates.open()
    loop.join(30)
    assert not loop.is_alive()
    assert gates.started("wide") == 2  # nothing started after the stop
    assert sorted(answers(rig)) == sent[:2]
    assert set(rig.queue.messages) == set(sent[2:])
    assert sorted(rig.queue.visible()) == sent[2:]  # handed back at once
    assert [e.detail for e in rig.lines(event="released")] == ["draining"] * 3
    assert Counter(settled) == dict.fromkeys(sent, 1)
    assert rig.worker.stats.outcomes == {"delivered": 2, "released": 3}


def test_every_message_ends_with_exactly_one_outcome_under_concurrency(
    make_rig: Callable[..., Rig], gates: Gates
) -> None:
    gates.open()
    rig = make_rig(concurrency=4, hold_s=60)
    settled = settled_by_loop(rig)
    kinds = ["echo", "say", "crash", "fail", "crash-result", "wide", "single", "other"]
    sent = [rig.queue.send(request(kind)) for kind in kinds * 3]
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    loop.join(60)
    assert not loop.is_alive()
    assert Counter(settled) == dict.fromkeys(sent, 1)
    assert sum(rig.worker.stats.outcomes.values()) == len(sent)
    assert not rig.inbox.running() and not rig.inbox.held()


def test_a_long_job_hands_back_what_waits_for_its_slot(
    make_rig: Callable[..., Rig], gates: Gates
) -> None:
    rig = make_rig(concurrency=4, hold_s=0.2)
    first = rig.queue.send(request("single"))
    behind = rig.queue.send(request("single"))
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    wait_for(lambda: rig.lines(behind, "released"))
    assert gates.started("single") == 1
    gates.open()
    loop.join(30)
    assert not loop.is_alive()
    [released] = rig.lines(behind, "released")
    assert released.detail == "held behind a long job"
    assert answers(rig) == {first: "success", behind: "success"}


def test_the_batch_and_the_servers_said_grow_with_the_jobs_run_at_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, concurrency=4, services_extra=gate("wide", tmp_path, 8))
    try:
        stats = rig.worker.stats
        assert rig.worker.at_once() == 1  # nothing run yet: it may be anything
        for _ in range(5):
            stats.record(
                Outcome("delivered", Message("m", "h", b"", 1), DELETE, 0.5, service="wide")
            )
        assert rig.worker.batch_size() == 8  # two a slot within hold_s, four slots
        assert rig.worker.at_once() == 4
        stats.record(Outcome("delivered", Message("m", "h", b"", 1), DELETE, 0.5, service="echo"))
        assert rig.worker.batch_size() == 2  # echo runs one at a time
        assert rig.worker.at_once() == 1
    finally:
        rig.close()


def test_the_servers_an_instance_is_worth_are_weighted_by_the_time_its_jobs_took(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, concurrency=4, services_extra=gate("wide", tmp_path, 8))
    try:
        stats, worker = rig.worker.stats, rig.worker

        def ran(service: str, seconds: float) -> None:
            message = Message("m", "h", b"", 1)
            stats.record(Outcome("delivered", message, DELETE, seconds, service=service))

        assert worker.servers() == 1  # nothing timed yet
        for _ in range(5):
            ran("wide", 0.5)
        assert worker.servers() == 4  # the cap, below wide's own 8
        ran("echo", 60.0)  # one long job of a one-at-a-time service takes most of the time:
        assert worker.servers() == 1  # 62.5 s of jobs in 60.6 s of the instance's time
        for _ in range(20):
            ran("wide", 0.5)  # ...until it has left the last 20 timed jobs
        assert worker.servers() == 4
    finally:
        rig.close()


def test_concurrency_defaults_to_1_and_is_checked_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text('[services.x]\ncommand = ["a"]\n')
    assert load_registry(path).get("x").concurrency == 1
    for bad in ("0", "65", '"4"', "true", "2.5"):
        path.write_text(f'[services.x]\ncommand = ["a"]\n\nconcurrency = {bad}\n')
        with pytest.raises(
            ConfigError,
            match=r"services.toml:4: services.x.concurrency must be an integer from 1 to 64",
        ):
            load_registry(path)


def test_the_light_built_ins_run_several_at_once_and_the_heavy_ones_alone() -> None:
    at_once = {s.name: s.concurrency for s in load_registry().services.values()}
    assert at_once["analyze"] == 1 and at_once["wait"] == 1
    assert at_once["noop"] == 8
    assert all(
        at_once[n] > 1 for n in ("audio-stats", "audio-spectrogram", "image-thumbnail", "encrypt")
    )


@pytest.mark.parametrize("bad", ["0", "65", "2.5", "many"])
def test_the_workers_cap_is_checked(bad: str) -> None:
    env = {"FLEETLAB_REQUEST_QUEUE_URL": "q", "FLEETLAB_RESPONSE_QUEUE_URL": "r",
           "FLEETLAB_BUCKET": "b", "FLEETLAB_LOG_GROUP": "g"}  # fmt: skip
    assert load_worker_config(env).concurrency == 4
    with pytest.raises(ConfigError, match="FLEETLAB_CONCURRENCY"):
        load_worker_config(env | {"FLEETLAB_CONCURRENCY": bad})


def test_lab_service_list_shows_each_services_concurrency() -> None:
    listed = CliRunner().invoke(service_cli.app, ["list"])
    assert listed.exit_code == 0, listed.output
    [noop] = [line for line in listed.output.splitlines() if line.startswith("noop ")]
    assert "claim result, concurrency 8" in noop
    rows = CliRunner().invoke(service_cli.app, ["list", "--json"])
    found = {row["name"]: row["concurrency"] for row in json.loads(rows.output)["services"]}
    assert (found["analyze"], found["encrypt"]) == (1, 4)


def spy_receives(rig: Rig) -> list[tuple[int, int, bool]]:
    """Record each receive: the seconds it may wait, what it brought, whether jobs were running."""
    seen: list[tuple[int, int, bool]] = []
    real = rig.queue.receive

    def receive(max_messages: int, wait_s: int, visibility_s: int) -> list[Message]:
        running = bool(rig.worker.jobs)
        got = real(max_messages, wait_s, visibility_s)
        seen.append((wait_s, len(got), running))
        return got

    rig.queue.receive = receive  # type: ignore[method-assign]
    return seen


def test_a_full_receive_is_followed_by_a_receive_ahead_while_jobs_run(
    make_rig: Callable[..., Rig], gates: Gates
) -> None:
    rig = make_rig(concurrency=3, batch_size=2, hold_s=60)
    sent = [rig.queue.send(request("wide")) for _ in range(4)]
    receives = spy_receives(rig)
    resets: list[bool] = []
    real_reset = rig.heartbeat.reset
    rig.heartbeat.reset = lambda: (resets.append(bool(rig.worker.jobs)), real_reset())  # type: ignore[method-assign]
    rig.queue.on_empty = rig.worker.stop
    loop = start(rig)
    # Two came (a full batch of two); a third slot was free: the next two came before either
    # job could end, one of them started in it, the other waits for a slot.
    wait_for(lambda: gates.started("wide") == 3)
    assert rig.inbox.waiting() == 1
    assert receives[:2] == [(0, 2, False), (0, 2, True)]
    gates.open()
    loop.join(30)
    assert not loop.is_alive()
    assert answers(rig) == dict.fromkeys(sent, "success")
    assert rig.worker.stats.outcomes == {"delivered": 4}
    # The heartbeat counts from a receive only when it brought everything held.
    assert resets and not any(resets)


def test_no_receive_ahead_after_a_receive_that_came_short(
    make_rig: Callable[..., Rig], gates: Gates
) -> None:
    rig = make_rig(concurrency=3, batch_size=3, hold_s=60)
    first = [rig.queue.send(request("wide")) for _ in range(2)]
    receives = spy_receives(rig)
    loop = start(rig)
    wait_for(lambda: gates.started("wide") == 2)
    late = rig.queue.send(request("wide"))
    threading.Event().wait(0.5)  # time enough for a receive, were one due
    assert gates.started("wide") == 2 and len(receives) == 1
    rig.queue.on_empty = rig.worker.stop
    gates.open()
    loop.join(30)
    assert not loop.is_alive()
    assert answers(rig) == dict.fromkeys([*first, late], "success")
