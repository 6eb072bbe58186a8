"""The scaler on real instances (on the emulator, process bodies): grow for a burst, drain back to
min, and a new leader when the leader's instance dies; and, with no bodies at all, a new leader
that still knows the spot interruptions the old one saw."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Emulator, Lab
from support import Up, clean_env, cli_env, wait_until

from lab.client.submit import JobSpec, build_xml, send
from lab.ec2 import instances
from lab.runtime.resources import LabEnv, clients_for
from worker.scaler import ec2
from worker.state.layout import status_key
from worker.state.status import Status
from worker.state.store import S3JsonStore

pytestmark = pytest.mark.integration


@pytest.fixture
def lab_up(tmp_path: Path, unused_port: Callable[[], int]) -> Iterator[Callable[..., Up]]:
    started: list[Up] = []

    def bring_up(*args: str) -> Up:
        env = cli_env(tmp_path / "lab", unused_port(), unused_port())
        env["FLEETLAB_LAB_VISIBILITY_TIMEOUT"] = "6"
        found = Up(tmp_path / "lab", env, "process")
        started.append(found)
        done = found.lab("up", "--no-samples", *args, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return found

    yield bring_up
    for found in started:
        down = found.lab("down", timeout=180)
        assert down.returncode == 0, down.stderr


def burst(up: Up, n: int) -> list[str]:
    env = LabEnv.load(up.home)
    sqs = clients_for(env).sqs
    spec = JobSpec("analyze", f"s3://{env.bucket}/examples/clip.fakevideo", params=[("R", "5")])
    return [
        send(
            sqs,
            env.request_queue_url,
            build_xml(JobSpec(**{**spec.__dict__, "request_id": f"burst-{k}"})),
        )
        for k in range(n)
    ]


def answered(up: Up, into: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    done = up.lab("results", "--wait", "1", "--json")
    assert done.returncode == 0, done.stderr
    for result in json.loads(done.stdout or "[]"):
        assert result["message_id"] not in into, "a request was answered twice"
        into[result["message_id"]] = result
    return into


def scaler_lines(up: Up) -> str:
    done = up.lab("logs", "--limit", "5000")
    return "\n".join(line for line in done.stdout.splitlines() if "-scaler " in line)


# A whole scale-out and scale-in (boot, grow, 40 jobs, the 20 s scale-in window, drains) takes
# about 2 minutes on either emulator on 2 shared cores: the suite's 120 s guard against a hang
# cut it short. Its own waits bound each step; this only guards against a hang.
@pytest.mark.timeout(480)
def test_a_burst_grows_the_fleet_which_then_drains_back_to_min(lab_up: Callable[..., Up]) -> None:
    up = lab_up("--instances", "1", "--min", "1", "--max", "3")
    wait_until(lambda: [i for i in up.live() if i["state"] == "idle"], 120, "the first instance up")
    ids = burst(up, 40)

    seen_sizes: set[int] = set()

    def grown() -> bool:
        seen_sizes.add(len(up.live()))
        return max(seen_sizes) == 3

    wait_until(grown, 120, "the fleet to grow to its max of 3", interval_s=0.5)
    results: dict[str, dict[str, Any]] = {}
    wait_until(lambda: set(ids) <= set(answered(up, results)), 240, "every request answered")
    assert all(r["status"] == "success" for r in results.values())

    wait_until(lambda: len(up.live()) == 1, 180, "the fleet to drain back to min (1)", interval_s=1)
    status = up.status()
    assert status["queues"]["dead_letter"]["visible"] == 0
    gone = [i for i in status["instances"] if i["ec2_state"] != "running"]
    assert len(gone) >= 2
    # Scale-in drained them: each was asked, stopped its worker, and only then was terminated.
    assert all(i["drain_requested"] and i["state"] == "stopped" for i in gone), gone

    # No job was cut short and run again: every claim is the first run's, finished.
    env = LabEnv.load(up.home)
    s3 = clients_for(env).s3
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=env.bucket, Prefix="claims/").get("Contents", [])
    ]
    claims = [json.loads(s3.get_object(Bucket=env.bucket, Key=k)["Body"].read()) for k in keys]
    jobs = [c for c in claims if c.get("message_id") in ids]
    assert len(jobs) == 40 and all(c["token"] == 1 and c["state"] == "done" for c in jobs)

    lines = scaler_lines(up)
    assert '"launched -"' in lines and '"drain -"' in lines and '"terminated -"' in lines
    # Each decision says why. The burst is 40 sends, not one: a look in the middle of it may see
    # part of the backlog and launch one, the next look the other; either way the launches add up.
    launches = re.findall(r'"scaled -" ok - "launch (\d+): need (\d+), have (\d+); \w', lines)
    assert launches, lines
    assert all(int(k) == int(need) - int(have) for k, need, have in launches), launches
    assert sum(int(k) for k, _, _ in launches) == 2, launches


def test_a_dead_leader_is_succeeded_and_its_instance_replaced(lab_up: Callable[..., Up]) -> None:
    up = lab_up("--instances", "2")
    done = up.lab("scaler", "config", "--stale-after", "6")
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: len([i for i in up.live() if i["state"] == "idle"]) == 2, 120, "two instances"
    )
    first = wait_until(lambda: up.status()["scaler"], 30, "a leader")
    crashed = up.lab("instance", "crash", first["leader"])
    assert crashed.returncode == 0, crashed.stderr

    def successor() -> dict[str, Any] | None:
        now = up.status()["scaler"]
        return now if now["leader"] != first["leader"] else None

    after = wait_until(successor, 60, "another instance to take the lease", interval_s=0.5)
    assert after["token"] == first["token"] + 1  # a takeover, fenced by a new token

    def replaced() -> bool:
        rows = {i["id"]: i for i in up.status()["instances"]}
        live = [i for i in rows.values() if i["ec2_state"] == "running" and i["state"] == "idle"]
        return rows[first["leader"]]["ec2_state"] != "running" and len(live) == 2

    wait_until(replaced, 120, "the dead leader's instance replaced", interval_s=1)
    assert f"{first['leader']}: terminated" in scaler_lines(up)


def test_lab_scaler_run_outside_the_fleet_scales_up_from_zero(lab_up: Callable[..., Up]) -> None:
    up = lab_up("--instances", "0")

    def once() -> dict[str, Any]:
        done = up.lab("scaler", "run", "--once")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    assert once() == {"leader": False, "decision": None}  # not configured: it does not act
    shown = up.lab("scaler", "config")
    assert "not configured" in shown.stdout

    bad = up.lab("scaler", "config", "--min", "3", "--max", "1")
    assert bad.returncode == 1 and "min (3) <= max (1)" in bad.stderr
    done = up.lab("scaler", "config", "--min", "0", "--max", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["max_instances"] == 2

    idle = once()
    assert idle["leader"] and idle["decision"]["desired"] == 0 and idle["decision"]["launch"] == 0

    assert up.lab("deploy").returncode == 0  # the launch template the scaler launches from
    burst(up, 3)
    grown = once()["decision"]
    assert grown["launch"] >= 1 and "backlog 3" in grown["reason"]
    launched = [i for i in up.status()["instances"] if i["ec2_state"] in ("pending", "running")]
    assert len(launched) == grown["launch"]


def scaler_once(lab: Lab, fleet: str, owner: str, work: Path) -> dict[str, Any]:
    """One tick of ``python -m worker.scaler`` as ``owner`` (a process of its own, so nothing
    of another tick's memory); its decision."""
    env = clean_env() | lab.env.worker_env() | {
        "FLEETLAB_FLEET": fleet, "FLEETLAB_WORKER_ID": owner,
        "FLEETLAB_WORK_DIR": str(work / owner), "FLEETLAB_LOG_FLUSH": "0.2",
    }  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "worker.scaler", "--once"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["leader"], done.stdout + done.stderr
    return dict(shown["decision"])


def test_a_new_leader_still_falls_back_to_on_demand_after_the_old_ones_interruptions(
    make_lab: Callable[..., Lab], emulator: Emulator, tmp_path: Path
) -> None:
    lab = make_lab()
    fleet = f"spot-{uuid.uuid4().hex[:8]}"  # no other test's instances in its view
    store = S3JsonStore(lab.clients.s3, lab.env.bucket)
    instances.ensure_template(lab.clients.ec2, fleet, "#!/bin/sh\n")
    lab.home.mkdir(parents=True, exist_ok=True)
    lab.env.save(lab.home)
    user = Up(lab.home, cli_env(lab.home, emulator.port), "process")
    bad = user.lab("scaler", "config", "--spot-fraction", "1.5")
    assert bad.returncode == 1 and "spot_fraction must be between 0 and 1" in bad.stderr
    done = user.lab("scaler", "config", "--min", "1", "--max", "3", "--spot-fraction", "1",
                    "--spot-fallback-after", "2", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert (shown["spot_fraction"], shown["spot_fallback_after"]) == (1.0, 2)

    def markets() -> dict[str, str]:
        return {i.id: i.market for i in ec2.fleet(lab.clients.ec2, fleet)}

    def under_notice(instance_id: str) -> None:  # what its worker writes on the notice
        now = time.time()
        doc = Status(instance_id, "busy", now, interruption_at=now + 60).to_doc()
        store.put(status_key(instance_id), doc)

    [first] = ec2.launch(lab.clients.ec2, fleet, 1, spot=True)
    under_notice(first)
    assert scaler_once(lab, fleet, "scaler-a", tmp_path)["launch"] == 1  # its replacement
    [second] = set(markets()) - {first}
    assert markets()[second] == "spot"  # one interruption: spot yet
    ec2.terminate(lab.clients.ec2, [first])  # reclaimed
    under_notice(second)
    # Another scaler leads now; it never saw the first interruption, the shared count did.
    assert scaler_once(lab, fleet, "scaler-b", tmp_path)["launch"] == 1
    [third] = set(markets()) - {first, second}
    assert markets()[third] == "on-demand"  # two interruptions within the hour: fallback
