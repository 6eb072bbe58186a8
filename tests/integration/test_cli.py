"""The `lab` and `submit-job` console scripts as real subprocesses against a lab they bring up."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import cli_env, wait_until

from lab.runtime import procs

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
LAB = str(BIN / "lab")
SUBMIT_JOB = str(BIN / "submit-job")
INPUT = "s3://fleetlab-local/examples/clip.fakevideo"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def port_is_free(port: int) -> bool:
    """True if a server could listen on ``port`` (as servers do: TIME_WAIT leftovers are fine)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class LabCli:
    """Runs the console scripts with one lab home and its ports."""

    home: Path
    env: dict[str, str]
    emulator_port: int
    receiver_port: int

    def run(
        self, *args: str, tool: str = LAB, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [tool, *args],
            env=self.env,
            cwd=self.home.parent,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def ok(
        self, *args: str, tool: str = LAB, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        done = self.run(*args, tool=tool, timeout=timeout)
        assert done.returncode == 0, (
            f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
        return done

    @property
    def pids(self) -> Path:
        return self.home / "pids"


def make_cli(tmp_path: Path, emulator_port: int, receiver_port: int | None) -> LabCli:
    home = tmp_path / "lab-home"
    env = cli_env(home, emulator_port, receiver_port)
    return LabCli(home, env, emulator_port, receiver_port or 8765)


@contextlib.contextmanager
def brought_down(cli: LabCli) -> Iterator[None]:
    """Whatever happens, stop what `lab up` started: `lab down`, then SIGKILL leftovers by pid."""
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.TimeoutExpired):
            cli.run("down", timeout=60)
        for pid in procs.running(cli.pids).values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cli(tmp_path: Path, unused_port: Callable[[], int]) -> Iterator[LabCli]:
    found = make_cli(tmp_path, unused_port(), unused_port())
    with brought_down(found):
        yield found


def test_lab_commands_end_to_end(cli: LabCli) -> None:
    up = cli.ok("up", "--instances", "0", "--workers", "1", "--no-samples")
    assert f"emulator http://127.0.0.1:{cli.emulator_port}" in up.stdout
    assert set(procs.running(cli.pids)) == {"emulator", "receiver", "worker-1"}

    env = json.loads(cli.ok("env", "show", "--json").stdout)
    keys = {
        "region",
        "endpoint_url",
        "request_queue_url",
        "response_queue_url",
        "dead_letter_queue_url",
        "bucket",
        "log_group",
    }
    assert keys <= set(env)
    assert env["endpoint_url"] == f"http://127.0.0.1:{cli.emulator_port}"
    assert env["bucket"] == "fleetlab-local"
    assert env["request_queue_url"].endswith("/fleetlab-requests")

    submitted = cli.ok(
        "submit",
        "--service",
        "analyze",
        "--input",
        INPUT,
        "--param",
        "R=-100",
        "--response",
        "queue",
        "--verbose",
    )
    first_id = submitted.stdout.strip()
    assert UUID.match(first_id), submitted.stdout
    assert '<parameter name="R" value="-100"/>' in submitted.stderr
    job = cli.ok(
        "--service=analyze",
        f"--input_url={INPUT}",
        "--param=R:-100",
        "--response=queue",
        "--verbose",
        tool=SUBMIT_JOB,
    )
    second_id = job.stdout.strip()
    assert UUID.match(second_id), job.stdout
    assert job.stderr.strip() == submitted.stderr.strip()  # the very same request XML

    found = json.loads(cli.ok("results", "--wait", "20", "--json", timeout=60).stdout)
    by_id = {r["message_id"]: r for r in found}
    assert set(by_id) == {first_id, second_id}, found
    for result in by_id.values():
        assert (result["status"], result["service"], result["via"]) == (
            "success",
            "analyze",
            "queue",
        )
    assert by_id[first_id]["raw_output"] == by_id[second_id]["raw_output"]
    assert len(by_id[first_id]["raw_output"].split()) == 20

    status = json.loads(cli.ok("status", "--json").stdout)
    for name in ("request", "response", "dead_letter"):
        assert set(status["queues"][name]) == {"visible", "in_flight", "delayed"}
    assert status["queues"]["request"]["visible"] == 0
    assert status["queues"]["dead_letter"]["visible"] == 0
    [worker] = status["workers"]
    assert (worker["worker_id"], worker["process"]) == ("worker-1", "alive")

    logs = wait_until(
        lambda: (out := cli.ok("logs").stdout) and first_id in out and out,
        15,
        "the first job in `lab logs`",
    )
    assert isinstance(logs, str)
    assert any(first_id in line and '"ran analyze"' in line for line in logs.splitlines())

    running = procs.running(cli.pids)
    down = cli.ok("down")
    assert down.stdout.startswith("stopped: ")
    for name in ("worker-1", "receiver", "emulator"):
        assert name in down.stdout
    assert not list(cli.pids.glob("*.pid"))
    assert not any(procs.alive(pid) for pid in running.values())
    assert port_is_free(cli.emulator_port)
    assert port_is_free(cli.receiver_port)
    assert cli.ok("down").stdout.strip() == "stopped: nothing was running"


def test_lab_up_with_samples_on_the_default_receiver_port(
    tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    if not port_is_free(8765):
        pytest.skip("port 8765 (the examples' receiver port) is in use")
    cli = make_cli(tmp_path, unused_port(), None)
    with brought_down(cli):
        # Exactly what `make lab-up` runs: two EC2 instances booted from a bundle in S3.
        up = cli.ok("up", "--wait", "90", timeout=240)
        assert set(procs.running(cli.pids)) == {"emulator", "receiver", "hypervisor"}
        assert "2 instance(s)" in up.stdout
        assert len(re.findall(r"^\S+\.xml -> success via ", up.stdout, re.MULTILINE)) == 4, (
            up.stdout
        )
        assert "-> success via callback" in up.stdout
        down = cli.ok("down", timeout=120)
        assert down.stdout.count("instance i-") == 2, down.stdout
        assert not procs.running(cli.pids)
    assert port_is_free(8765)


def test_cli_errors_are_clear(tmp_path: Path, unused_port: Callable[[], int]) -> None:
    cli = make_cli(tmp_path, unused_port(), unused_port())
    # Before `lab up` there is an environment (the suite's) but no resources yet: not an error.
    shown = cli.ok("env", "show", "--json")
    assert json.loads(shown.stdout) == {
        "environment": cli.env.get("FLEETLAB_LAB_ENV", "local"),
        "resources": "none yet: `lab up` (emulators) or `lab provision` (aws)",
    }

    bad = cli.run("submit", "--input", INPUT, "--param", "X")
    assert bad.returncode != 0
    assert "error: parameter 'X' is not NAME=VALUE" in bad.stderr
    assert bad.stdout == ""

    bad_job = cli.run(f"--input_url={INPUT}", "--param=X", tool=SUBMIT_JOB)
    assert bad_job.returncode == 1
    assert "parameter 'X' is not NAME:VALUE" in bad_job.stderr

    results = cli.run("results")
    assert results.returncode == 1
    assert "run `lab up` first" in results.stderr
    assert not cli.home.exists() or not list(cli.home.glob("pids/*.pid"))
