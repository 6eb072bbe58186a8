"""Schedules as data: drawn the same from the same seed, saved and read back, shrunk."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.chaos.explore import nemesis
from lab.chaos.explore.explore import Options, draw
from lab.chaos.explore.schedule import FaultPlan, JobPlan, Schedule, ScheduleError
from lab.chaos.explore.shrink import shrink


def test_the_same_seed_draws_the_same_schedule() -> None:
    one = draw(Options(seed=7, jobs=300, intensity=12))
    assert one == draw(Options(seed=7, jobs=300, intensity=12))
    assert one != draw(Options(seed=8, jobs=300, intensity=12))
    assert len(one.jobs) == 300
    kinds = {j.kind for j in one.jobs}
    assert {"noop", "short", "medium", "resubmit", "invalid"} <= kinds
    assert {j.output for j in one.jobs} == {"queue", "callback"}
    assert all(j.of in {x.request_id for x in one.jobs if x.of is None} for j in one.jobs if j.of)
    assert len(one.faults) > 10 and all(f.kind in nemesis.REGISTRY for f in one.faults)
    assert one.proxy == any(nemesis.REGISTRY[f.kind].needs_proxy for f in one.faults)


def test_only_the_kinds_named_are_drawn_and_an_unknown_one_is_refused() -> None:
    schedule = draw(Options(seed=1, jobs=50, faults=("crash", "callback-500"), intensity=30))
    assert {f.kind for f in schedule.faults} == {"crash", "callback-500"}
    assert not schedule.proxy
    assert draw(Options(seed=1, jobs=50, faults=("net-partition",), intensity=30)).proxy
    with pytest.raises(KeyError, match="no-such-fault"):
        draw(Options(seed=1, jobs=10, faults=("no-such-fault",)))


def test_emulator_restart_is_drawn_only_when_named() -> None:
    assert "emulator-restart" not in {k.name for k in nemesis.kinds(None)}
    assert [k.name for k in nemesis.kinds(["emulator-restart"])] == ["emulator-restart"]


def test_a_saved_schedule_reads_back_equal(tmp_path: Path) -> None:
    schedule = draw(Options(seed=3, jobs=40))
    schedule.save(tmp_path / "s.json")
    assert Schedule.load(tmp_path / "s.json") == schedule


@pytest.mark.parametrize("text", ["not json", "[]", '{"format": 99}', '{"format": 1}'])
def test_a_bad_schedule_file_is_a_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "s.json").write_text(text)
    with pytest.raises(ScheduleError):
        Schedule.load(tmp_path / "s.json")


def test_dropping_a_job_drops_its_resubmissions() -> None:
    a = JobPlan(0.0, "a", "short")
    b = JobPlan(1.0, "b", "short")
    again = JobPlan(2.0, "a", "resubmit", of="a")
    schedule = Schedule(1, (a, b, again), ())
    assert schedule.with_jobs([b, again]).jobs == (b,)


def test_shrink_finds_the_faults_and_jobs_that_matter() -> None:
    faults = tuple(FaultPlan(float(k), "crash" if k != 13 else "freeze") for k in range(20))
    jobs = tuple(JobPlan(float(k), f"j{k}", "short") for k in range(30))
    schedule = Schedule(1, jobs, faults)
    trials = []

    def fails(candidate: Schedule) -> bool:  # fails while the freeze and job j7 are in it
        trials.append(candidate)
        return any(f.kind == "freeze" for f in candidate.faults) and any(
            j.request_id == "j7" for j in candidate.jobs
        )

    small = shrink(schedule, fails, trials=200)
    assert [f.kind for f in small.faults] == ["freeze"]
    assert [j.request_id for j in small.jobs] == ["j7"]
    assert len(trials) < 100


def test_shrink_stops_at_its_budget() -> None:
    schedule = Schedule(1, (), tuple(FaultPlan(float(k), "crash") for k in range(64)))
    calls = []
    small = shrink(schedule, lambda s: calls.append(s) is None, trials=5)
    assert len(calls) == 5
    assert 0 < len(small.faults) < 64


def test_spot_interruptions_are_drawn_from_the_seed_and_ask_for_a_spot_fleet() -> None:
    assert "spot-interruption" in {k.name for k in nemesis.kinds(None)}  # a default kind
    options = Options(seed=4, jobs=40, duration_s=60, faults=("spot-interruption",), intensity=20)
    schedule = draw(options)
    assert schedule == draw(options) and schedule.faults
    assert schedule.spot and not schedule.proxy
    for fault in schedule.faults:
        assert (fault.kind, fault.target) == ("spot-interruption", "spot")
        notice = fault.params["notice_s"]
        assert 10 <= notice <= 20 and fault.duration == round(
            notice + 2, 2
        )  # ends past the reclaim
    assert not draw(Options(seed=4, jobs=40, faults=("crash",), intensity=20)).spot
    mixed = draw(Options(seed=9, jobs=300, intensity=30))
    assert mixed.spot == any(f.kind == "spot-interruption" for f in mixed.faults)


def test_a_spot_schedule_replays_and_shrinks_as_data(tmp_path: Path) -> None:
    schedule = draw(Options(seed=4, jobs=20, duration_s=30, faults=("spot-interruption", "crash"),
                            intensity=30))  # fmt: skip
    assert {f.kind for f in schedule.faults} == {"spot-interruption", "crash"}
    schedule.save(tmp_path / "s.json")
    assert Schedule.load(tmp_path / "s.json") == schedule
    # Shrinking drops faults, not the lab they ran on: a replay of a cut keeps the spot fleet.
    cut = schedule.with_faults([f for f in schedule.faults if f.kind == "crash"])
    assert cut.spot and not any(f.kind == "spot-interruption" for f in cut.faults)
    old = schedule.to_doc()
    del old["spot"]  # a schedule saved before the kind existed
    assert not Schedule.from_doc(old).spot
