"""The worker under a spot notice, on a virtual clock: which running job is let finish, how an
abandoned one is handed back (visibility 0, claim released) through the settle step, how the
watcher reports each notice once, and how a rebalance leaves long jobs to other instances."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from rig import Rig, request

from worker.consume.notice import Notice, NoticeWatcher, abandon_if_late, finishes_in_time
from worker.consume.outcome import HAND_BACK, Outcome, Stats
from worker.scaler import ec2
from worker.scaler.capacity import Member, Memory, Observed, ScalerConfig, decide
from worker.scaler.loop import member
from worker.scaler.market import Market, recent_interruptions, spot_launches
from worker.state.claims import Claims, claim_key
from worker.state.status import Status


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.close()


@pytest.mark.parametrize(
    ("elapsed", "expected", "remaining", "margin", "fits"),
    [
        (10, 30, 30, 2, True),  # 20 s to go, 2 s margin, 30 s left
        (10, 30, 21, 2, False),  # 20 s + 2 s margin > 21 s
        (40, 30, 5, 2, True),  # overdue by the mean: counted as about to end
        (0, None, 100, 2, False),  # unknown length: not gambled on
        (0, 1, 0.5, 0, False),
    ],
)
def test_a_job_is_let_finish_only_if_it_ends_before_the_reclaim(
    elapsed: float, expected: float | None, remaining: float, margin: float, fits: bool
) -> None:
    assert finishes_in_time(elapsed, expected, remaining, margin) is fits


def test_the_watcher_reports_each_notice_once_as_the_clock_advances() -> None:
    script = iter([Notice(), Notice(rebalance=True), Notice(1000.0, True), Notice(1000.0, True)])
    seen: list[str] = []
    watcher = NoticeWatcher(lambda: next(script), 2.0,
                            lambda at: seen.append(f"interrupt {at:g}"),
                            lambda: seen.append("rebalance"))  # fmt: skip
    for _ in range(4):
        watcher.check()
    assert seen == ["rebalance", "interrupt 1000"]
    assert watcher.seen == Notice(1000.0, True)


def test_a_job_that_would_not_finish_is_handed_back_with_its_claim_released(rig: Rig) -> None:
    rig.queue.send(request("sleep", params=[("s", "15")], request_id="spot-1"))
    message = rig.receive()
    result: list[Outcome] = []
    job = threading.Thread(target=lambda: result.append(rig.pipeline.process(message)))
    job.start()
    while not rig.inbox.running():  # the job has its claim and runs
        time.sleep(0.01)
    started = rig.inbox.running()[0].started
    stats = Stats()
    stats.timed.extend([(20.0, "sleep")] * 2)  # jobs take 20 s here; the instance goes in 10 s
    assert abandon_if_late(rig.inbox, stats, remaining_s=10, now=started + 1, margin_s=2)
    job.join(10)
    [outcome] = result
    assert (outcome.kind, outcome.action, outcome.status) == ("released", HAND_BACK, "interrupted")
    rig.settle(outcome)
    [change] = rig.queue.operations("visibility")
    assert change.seconds == 0  # visible again at once
    assert rig.queue.visible() == [message.message_id]
    # The claim is free at once: the next receiver takes it over without waiting out a lease.
    got = Claims(rig.store, "w2").acquire(claim_key(message.message_id, "spot-1"), "m2",
                                          rig.wall() + 0.001, 30)  # fmt: skip
    assert getattr(got, "takeover", False)
    assert rig.lines(message.message_id, "ran") == []


def test_a_job_that_fits_before_the_reclaim_runs_on_and_is_answered(rig: Rig) -> None:
    stats = Stats()
    assert not abandon_if_late(rig.inbox, stats, 10, 0.0, 2)  # nothing running: nothing to do
    rig.queue.send(request("sleep", params=[("s", "0.5")]))
    message = rig.receive()
    result: list[Outcome] = []
    job = threading.Thread(target=lambda: result.append(rig.pipeline.process(message)))
    job.start()
    while not rig.inbox.running():
        time.sleep(0.01)
    started = rig.inbox.running()[0].started
    stats.timed.extend([(1.0, "sleep")] * 2)
    assert not abandon_if_late(rig.inbox, stats, remaining_s=10, now=started + 0.2, margin_s=2)
    job.join(10)
    assert result[0].kind == "delivered"


def test_under_a_rebalance_long_jobs_are_left_and_short_ones_run(rig: Rig) -> None:
    rig.pipeline.rebalancing.set()
    long_config = replace(rig.config, rebalance_long_s=10.0)
    pipeline = replace(rig.pipeline, config=long_config)
    rig.queue.send(request("sleep", params=[("s", "0")]))  # sleep allows 20 s: long
    left = pipeline.process(rig.receive())
    assert (left.kind, left.action, left.status) == ("released", HAND_BACK, "rebalance")
    rig.queue.send(request("echo"))  # echo allows 5 s: short
    assert pipeline.process(rig.receive()).kind == "delivered"


def test_the_status_document_carries_the_notice_and_the_scaler_reads_it() -> None:
    doc = Status("i-1", "draining", 100.0, interruption_at=130.0).to_doc()
    assert doc["interruption_at"] == 130.0
    assert "interruption_at" not in Status("i-1", "idle", 100.0).to_doc()
    read_back = Status.from_doc(doc)
    assert read_back.interruption_at == 130.0
    instance = ec2.Instance("i-1", "running", "", "", 10.0, "spot")
    assert member(instance, read_back).interrupted
    assert not member(instance, Status("i-1", "idle", 100.0)).interrupted


def test_an_instance_under_notice_is_replaced_at_once() -> None:
    config = ScalerConfig(min_instances=2, max_instances=4, slo_p95_s=900, job_s=180,
                          boot_s=120, stale_after_s=60, scale_in_after_s=600)  # fmt: skip
    now = 1000.0
    steady = Member("i-a", now - 3600, "idle", heartbeat_at=now)
    leaving = Member("i-b", now - 3600, "draining", heartbeat_at=now, interrupted=True)
    seen = Observed(visible=0, in_flight=0, delayed=0, members=(steady, leaving))
    decision = decide(seen, config, Memory(), now)
    assert decision.launch == 1  # its replacement, before EC2 reclaims it
    assert "i-b" not in decision.drain + decision.terminate + decision.replace


def test_an_instance_under_notice_is_left_to_ec2_even_once_drained_and_stopped() -> None:
    # The scaler terminates as "drained and stopped" only what scale-in drained; an instance
    # under notice is EC2's to reclaim, so the explorer's scale-in rule never counts it.
    config = ScalerConfig(min_instances=1, max_instances=4, stale_after_s=60)
    now = 1000.0
    steady = Member("i-a", now - 3600, "idle", heartbeat_at=now)
    leaving = Member("i-b", now - 3600, "stopped", heartbeat_at=now - 300,
                     drain_requested=True, interrupted=True)  # fmt: skip
    decision = decide(Observed(0, 0, 0, (steady, leaving)), config, Memory(), now)
    assert "i-b" not in decision.drain + decision.terminate + decision.replace
    drained = Member("i-b", now - 3600, "stopped", heartbeat_at=now, drain_requested=True)
    assert decide(Observed(0, 0, 0, (steady, drained)), config, Memory(), now).terminate == ("i-b",)


def test_spot_launches_keep_the_fraction_over_an_on_demand_base() -> None:
    half = Market(spot_fraction=0.5, fallback_after=3)
    assert spot_launches(4, {}, half, 0) == 2
    assert spot_launches(1, {"i-a": "on-demand"}, half, 0) == 1  # 2 instances, 1 spot
    assert spot_launches(1, {"i-a": "spot"}, half, 0) == 0  # the base is on-demand
    assert spot_launches(3, {}, Market(), 0) == 0  # no fraction: all on-demand
    assert spot_launches(4, {}, Market(1.0), 0) == 4


def test_repeated_interruptions_fall_back_to_on_demand_for_the_window() -> None:
    policy = Market(spot_fraction=1.0, fallback_after=2, window_s=600)
    seen = [100.0, 400.0]
    assert recent_interruptions(seen, 500.0, 600) == 2
    assert spot_launches(2, {}, policy, recent_interruptions(seen, 500.0, 600)) == 0
    assert recent_interruptions(seen, 800.0, 600) == 1  # the first one is out of the window
    assert spot_launches(2, {}, policy, recent_interruptions(seen, 800.0, 600)) == 2
