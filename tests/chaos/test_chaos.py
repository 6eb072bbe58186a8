"""The whole chaos suite, as a user runs it: `lab chaos run all --json` on the emulator that
FLEETLAB_LAB_ENV names (moto by default; `make test` runs it on LocalStack as well)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LAB = str(Path(sys.executable).parent / "lab")
ENV = os.environ.get("FLEETLAB_LAB_ENV") or "local"


def run_lab(home: Path, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLEETLAB_"))}
    env |= {"FLEETLAB_LAB_HOME": str(home)}
    if tools := os.environ.get("FLEETLAB_TOOLS"):
        env["FLEETLAB_TOOLS"] = tools
    return subprocess.run(
        [LAB, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.timeout(1500)
def test_every_scenario_keeps_every_rule(tmp_path: Path) -> None:
    done = run_lab(tmp_path, "chaos", "run", "all", "--env", ENV, "--seed", "1", "--json",
                   timeout=1450)  # fmt: skip
    report = json.loads(done.stdout)
    summary = "\n".join(
        f"{s['name']}: passed={s['passed']} {s['seconds']} s {s['notes'][:3]}"
        for s in report["scenarios"]
    )
    print(summary)  # the run's figures, in the test log
    timelines = "\n".join(
        f"{s['name']}: {s.get('timeline')}" for s in report["scenarios"] if not s["passed"]
    )
    assert done.returncode == 0, f"{summary}\n{timelines}\n{done.stderr}"
    assert (report["env"], report["seed"]) == (ENV, 1)
    scenarios = {s["name"]: s for s in report["scenarios"]}
    assert set(scenarios) == {
        "crash-mid-job", "zombie", "duplicate-delivery", "visibility-timeout", "no-heartbeat",
        "callback-flaky", "poison-message", "leader-lost", "bad-bundle", "demand-spike",
        "spot-interruption", "emulator-restart",
    }  # fmt: skip
    assert all(s["passed"] for s in scenarios.values())
    assert sum(s["lost"] for s in scenarios.values()) == 0
    # Only the scenario without a heartbeat shows the duplicate run it exists to prevent.
    assert {n for n, s in scenarios.items() if s["duplicate_effects"]} == {"no-heartbeat"}
    assert scenarios["poison-message"]["dead_lettered"] == 1
    assert scenarios["demand-spike"]["figures"]["peak_instances"] > 1


def test_an_unknown_scenario_is_a_clear_error(tmp_path: Path) -> None:
    done = run_lab(tmp_path, "chaos", "run", "no-such-thing", timeout=60)
    assert done.returncode == 1
    assert "no scenario 'no-such-thing'" in done.stderr
    assert "crash-mid-job" in done.stderr
