"""The supervisor: its restart policy on a fake clock, and the real process with fake children."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from worker.config import Retry
from worker.supervisor import RestartPolicy, after_exit

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")
POLICY = RestartPolicy(retry=Retry(base_s=0.5, cap_s=30.0), reset_after_s=60.0, grace_s=60.0)

# ------------------------------------------------------------------------------ the pure policy


@contextlib.contextmanager
def reaped(proc: subprocess.Popen[str]) -> Iterator[None]:
    """Whatever happens in the block, the supervisor under test does not outlive it."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_exit_0_is_never_restarted() -> None:
    assert after_exit(0, started_at=0.0, exited_at=1.0, failures=3, policy=POLICY, draw=0.5) is None


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    now, failures, delays = 100.0, 0, []
    for _ in range(10):
        started = now
        now += 1.0  # each run fails after a second
        decision = after_exit(1, started, now, failures, POLICY, draw=0.999999)
        assert decision is not None
        delays.append(round(decision.at - now, 3))
        failures, now = decision.failures, decision.at
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]
    assert failures == 10


def test_jitter_keeps_at_least_half_the_ceiling() -> None:
    low = after_exit(1, 0.0, 1.0, 3, POLICY, draw=0.0)
    high = after_exit(1, 0.0, 1.0, 3, POLICY, draw=0.999999)
    assert low is not None and high is not None
    assert low.at - 1.0 == pytest.approx(2.0)  # ceiling for the 4th restart is 4 s
    assert high.at - 1.0 == pytest.approx(4.0, abs=1e-4)


def test_a_signal_death_is_a_failure() -> None:
    decision = after_exit(-signal.SIGKILL, 0.0, 1.0, 0, POLICY, draw=0.0)
    assert decision is not None and decision.failures == 1


def test_a_long_run_resets_the_backoff() -> None:
    short = after_exit(1, started_at=0.0, exited_at=59.9, failures=6, policy=POLICY, draw=0.0)
    long = after_exit(1, started_at=0.0, exited_at=60.0, failures=6, policy=POLICY, draw=0.0)
    assert short is not None and long is not None
    assert short.failures == 7 and short.at - 59.9 == pytest.approx(15.0)
    assert long.failures == 1 and long.at - 60.0 == pytest.approx(0.25)


# ------------------------------------------------------------------------- the real process

# Records each start, fails its first two runs, then runs until SIGTERM and notes that it got it.
CHILD = """
import os, signal, sys, time
starts, stopped = sys.argv[1], sys.argv[2]
with open(starts, "a") as f:
    f.write(f"{time.monotonic()} {os.getpid()}\\n")
if len(open(starts).read().splitlines()) <= int(sys.argv[3]):
    sys.exit(1)
def term(signum, frame):
    open(stopped, "w").write("SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
while True:
    time.sleep(0.02)
"""


def start_supervisor(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.supervisor", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as an instance's processes are
    )


def child_command(tmp_path: Path, fail_first: int) -> str:
    argv = [sys.executable, "-c", CHILD, str(tmp_path / "starts"), str(tmp_path / "stopped")]
    return "fake=" + shlex.join([*argv, str(fail_first)])


def starts(tmp_path: Path) -> list[tuple[float, int]]:
    path = tmp_path / "starts"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(float(t), int(pid)) for t, pid in (line.split() for line in lines)]


def wait_for(check: Callable[[], T], timeout_s: float = 10.0) -> T:
    deadline = time.monotonic() + timeout_s
    while not (value := check()):
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.02)
    return value


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_failing_child_is_restarted_with_backoff_and_sigterm_is_forwarded(tmp_path: Path) -> None:
    proc = start_supervisor(tmp_path, "--run", child_command(tmp_path, fail_first=2))
    with reaped(proc):
        runs = wait_for(lambda: len(found := starts(tmp_path)) >= 3 and found)
        time.sleep(0.3)
        assert len(starts(tmp_path)) == 3  # the third run is healthy: no more restarts
        (t1, _), (t2, _), (t3, pid) = runs
        assert 0.25 <= t2 - t1 < 2.0  # first restart: half to all of 0.5 s
        assert 0.5 <= t3 - t2 < 3.0  # second: half to all of 1 s
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert (tmp_path / "stopped").read_text() == "SIGTERM"
    assert gone(pid)
    assert err.count("restart #") == 2
    assert f"fake (pid {pid}) still running: SIGTERM" in err  # forwarded: it was sent only to us
    assert "fake failed (exit 1" in err
    assert "fake (pid" in err and "stopped: exit 0" in err


def test_child_that_exits_0_is_not_restarted(tmp_path: Path) -> None:
    argv = shlex.join([sys.executable, "-c", "import sys; sys.exit(0)"])
    proc = start_supervisor(tmp_path, "--run", f"done={argv}")
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert err.count("done started") == 1
    assert "not restarted" in err
    assert "every child finished" in err


def test_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    ignore = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    argv = shlex.join([sys.executable, "-c", ignore])
    proc = start_supervisor(tmp_path, "--grace", "0.5", "--run", f"stubborn={argv}")
    with reaped(proc):
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "stubborn started (pid" in line
        pid = int(line.split("(pid ")[1].rstrip(")\n"))
        time.sleep(0.3)  # let the child install its SIG_IGN
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert 0.5 <= time.monotonic() - began < 5
    assert "SIGKILL" in err and "stopped: signal SIGKILL" in err
    assert gone(pid)


def test_bad_child_arguments_are_a_usage_error(tmp_path: Path) -> None:
    proc = start_supervisor(tmp_path, "--run", "no-equals-sign")
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert "NAME=ARGV" in err


# Drains for 0.3 s after SIGTERM, noting every SIGTERM it gets.
DRAINER = """
import signal, sys, time
def term(signum, frame):
    open(sys.argv[1], "a").write("SIGTERM\\n")
    global stopping
    stopping = stopping or time.monotonic()
stopping = 0.0
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while not stopping or time.monotonic() - stopping < 0.3:
    time.sleep(0.02)
"""


def test_a_group_sigterm_reaches_a_child_once(tmp_path: Path) -> None:
    got = tmp_path / "got"
    argv = shlex.join([sys.executable, "-u", "-c", DRAINER, str(got)])
    proc = start_supervisor(tmp_path, "--run", f"drainer={argv}")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        os.killpg(proc.pid, signal.SIGTERM)  # as the lab's hypervisor stops a body
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0
    assert got.read_text() == "SIGTERM\n"  # the supervisor did not send a second one
    assert "drainer (pid" in err and "stopped: exit 0" in err
