"""`lab chaos explore` and `lab chaos replay` as a user runs them, on the session's emulator:
a bounded exploration passes every rule; and the explorer fails, with the right class, when
the system is made wrong from outside the worker (requests deleted behind the fleet's back:
lost; a rolled-out worker that skips its claim: duplicate effects), and shrinks the failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lab.chaos.explore.schedule import FaultPlan, JobPlan, Schedule

LAB = str(Path(sys.executable).parent / "lab")
ENV = os.environ.get("FLEETLAB_LAB_ENV") or "local"


def explore(home: Path, *args: str, timeout: float, sabotage: bool = False) -> tuple[int, Any]:
    """Run `lab chaos ARGS --env ENV --json` as a user would; exit code and report."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLEETLAB_"))}
    env |= {"FLEETLAB_LAB_HOME": str(home)}
    if sabotage:
        env["FLEETLAB_EXPLORE_SABOTAGE"] = "1"
    if tools := os.environ.get("FLEETLAB_TOOLS"):
        env["FLEETLAB_TOOLS"] = tools
    done = subprocess.run([LAB, "chaos", *args, "--env", ENV, "--json"], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        raise AssertionError(
            f"no JSON report: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        ) from None


def rules(report: Any) -> dict[str, bool]:
    return {r["name"]: r["passed"] for r in report["rules"]}


@pytest.mark.timeout(900)  # a hang guard: 6 min on a loaded machine, the run itself about 4
def test_a_bounded_exploration_keeps_every_rule(tmp_path: Path) -> None:
    code, report = explore(tmp_path, "explore", "--clean", "--seed", "1", "--jobs", "120",
                           "--duration", "40", "--intensity", "16", "--shrink", "1",
                           "--plot", str(tmp_path / "run.png"),
                           "--save-schedule", str(tmp_path / "run.json"), timeout=880)  # fmt: skip
    print({k: report[k] for k in ("counts", "faults_by_kind", "latency", "seconds")})
    broken = [r for r in report["rules"] if not r["passed"]]
    faults = [f"{f['at']:.1f} s {f['kind']}: {f['did']}" for f in report["faults"]]
    assert code == 0, json.dumps({"broken": broken, "error": report.get("error"), "faults": faults},
                                 indent=1)  # fmt: skip
    assert report["passed"] and (report["seed"], report["env"], report["jobs"]) == (1, ENV, 120)
    counts = report["counts"]
    assert counts["lost"] == counts["duplicate_effects"] == counts["unexpected"] == 0
    assert counts["answered"] > 80 and counts["dead_lettered"] >= 1  # the poison requests
    assert len(report["faults"]) >= 8 and len(report["faults_by_kind"]) >= 5
    assert all(rules(report).values()) and len(report["rules"]) == 7
    assert report["latency"]["count"] >= counts["answered"]
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(Schedule.load(tmp_path / "run.json").faults) == len(report["faults"])


@pytest.mark.timeout(600)  # a hang guard: the test takes about 2 minutes
def test_spot_interruptions_keep_every_rule(tmp_path: Path) -> None:
    code, report = explore(tmp_path, "explore", "--clean", "--seed", "1", "--jobs", "20",
                           "--duration", "20", "--intensity", "8", "--faults",
                           "spot-interruption", "--shrink", "0", timeout=580)  # fmt: skip
    timeline = " | ".join(f"{f['kind']}: {f['did']}" for f in report["faults"])
    print(report["seconds"], timeline)
    assert code == 0, json.dumps(report["rules"], indent=1) + timeline
    assert report["passed"] and all(rules(report).values()) and len(report["rules"]) == 7
    assert {f["kind"] for f in report["faults"]} == {"spot-interruption"}, timeline
    did = [d for f in report["faults"] for d in f["did"]]
    assert any(" s interruption notice to i-" in d for d in did), timeline
    assert any("reclaimed through EC2" in d for d in did), timeline
    counts = report["counts"]
    assert counts["lost"] == counts["duplicate_effects"] == counts["unexpected"] == 0
    assert counts["answered"] + counts["dead_lettered"] == report["sent"]


@pytest.mark.timeout(900)
def test_deleted_requests_are_lost_and_a_worker_skipping_its_claim_duplicates(
    tmp_path: Path,
) -> None:
    # A burst of 40 while the deleter runs: the two instances take ten each at most (their
    # receive batch), so requests wait in the queue for it. Spread out, the fleet's long polls
    # took every one first and the deleter found none (seen in CI).
    first = [JobPlan(1.5 + 0.01 * k, f"s-{k:02d}", "short", 0.05) for k in range(40)]
    late = [JobPlan(20.0 + 0.3 * k, f"t-{k:02d}", "short", 0.05) for k in range(16)]
    again = [JobPlan(40.0 + 0.3 * k, j.request_id, "resubmit", 0.05, of=j.request_id)
             for k, j in enumerate(late)]  # fmt: skip
    schedule = Schedule(
        seed=5,
        jobs=tuple(first + late + again),
        faults=(FaultPlan(1.0, "sabotage-delete", 5.0), FaultPlan(12.0, "sabotage-skip-claim")),
    )
    schedule.save(tmp_path / "wrong.json")
    code, report = explore(tmp_path, "replay", str(tmp_path / "wrong.json"), timeout=880,
                           sabotage=True)  # fmt: skip
    timeline = " | ".join(f"{f['kind']}: {f['did']}" for f in report["faults"])
    assert code == 1, timeline
    assert report["counts"]["lost"] >= 1, timeline  # deleted: neither answered nor DLQ'd
    # The rogue worker takes about a third of the resubmissions, and runs each one again.
    assert report["counts"]["duplicate_effects"] >= 1, timeline
    broken = {name for name, ok in rules(report).items() if not ok}
    assert {"nothing lost", "no duplicate effect"} <= broken, timeline
    assert not report["passed"]
    # The failed run's lab stays to be read: every instance's own activity log.
    logs = list(Path(report["folder"]).glob("instances/*/root/work/activity.log"))
    assert len(logs) >= 2 and all('"started -"' in log.read_text() for log in logs), logs


# Three clean labs in a row (up, run, settle, down): about 3.5 min per emulator, so `make soak`
# runs it and `make test` (CI, 55 min budget) does not.
@pytest.mark.soak
@pytest.mark.timeout(1200)
def test_a_failure_is_shrunk_to_a_schedule_that_replays_it(tmp_path: Path) -> None:
    code, report = explore(tmp_path, "explore", "--clean", "--seed", "2", "--jobs", "30",
                           "--duration", "10", "--intensity", "30", "--faults",
                           "crash,sabotage-delete", "--shrink", "2", timeout=1180,
                           sabotage=True)  # fmt: skip
    assert code == 1 and report["counts"]["lost"] >= 1
    shrunk = report["shrunk"]
    small = Schedule.load(Path(shrunk["schedule"]))
    assert len(small.faults) <= len(report["faults"]) and len(small.jobs) <= 30
    assert any(f.kind == "sabotage-delete" for f in small.faults)
    assert report["replay"] == f"lab chaos replay {shrunk['schedule']}"
    # The shrinker's replays ran beside the failed run, not over it: its logs are its own.
    failed = Path(report["folder"])
    assert failed.name == "explore-2" and (failed.parent / "explore-2-shrink").is_dir()
    assert list(failed.glob("instances/*/root/work/activity.log"))
