"""Rich output on a terminal, plain output otherwise: commands run in a pseudo-terminal (the pty
module) and through a pipe against a lab of their own."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import LAB_CLI, cli_env

from lab.runtime.procs import free_port

pytestmark = pytest.mark.integration

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def text_of(out: str) -> str:
    """Terminal output without its escape sequences (colours, cursor moves)."""
    return _ESCAPES.sub("", out)


def in_pty(
    argv: list[str],
    env: dict[str, str],
    timeout_s: float = 300,
    interrupt_when: Callable[[str], bool] | None = None,
) -> tuple[int, str]:
    """Run ``argv`` with a pseudo-terminal as stdin/stdout/stderr; its exit code and output.
    ``interrupt_when(output so far)`` true: send SIGINT (as Ctrl-C would)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command, Ctrl-C acting as on a terminal (a shell
        # starts background jobs with SIGINT ignored, and an exec keeps that)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execve(argv[0], argv, env | {"TERM": "xterm-256color", "COLUMNS": "160"})
    chunks: list[bytes] = []
    began = time.monotonic()
    interrupted = False
    try:
        while time.monotonic() - began < timeout_s:
            seen = b"".join(chunks).decode("utf-8", "replace")
            if interrupt_when is not None and not interrupted and interrupt_when(seen):
                os.kill(pid, signal.SIGINT)
                interrupted = True
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        status = _reap(pid)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def _reap(pid: int, grace_s: float = 10.0) -> int:
    """The child's wait status, killed if it has not ended within ``grace_s`` (when the test is
    cut short, nothing reads its terminal any more and it would block writing to it forever)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def piped(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip


@dataclass(frozen=True)
class Lab:
    """A lab brought up in a pseudo-terminal (one worker, no instances) and what `up` showed."""

    env: dict[str, str]
    up_output: str


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("progress") / "lab"
    env = cli_env(home, free_port(), free_port())
    try:
        argv = [LAB_CLI, "up", "--instances", "0", "--workers", "1", "--no-samples"]
        code, out = in_pty(argv, env)
        assert code == 0, out
        yield Lab(env, out)
    finally:
        piped([LAB_CLI, "down"], env)


def test_lab_up_shows_its_steps_on_a_terminal(lab: Lab) -> None:
    out = text_of(lab.up_output)
    assert "✓ starting the" in out and "emulator" in out
    assert "✓ starting worker-1" in out
    assert "lab up: " in out  # the plain summary still comes


def test_status_is_a_table_on_a_terminal_and_plain_in_a_pipe(lab: Lab) -> None:
    env = lab.env
    code, out = in_pty([LAB_CLI, "status"], env)
    assert code == 0, out
    assert "┃" in out and "queues" in out and "worker-1" in out
    plain = piped([LAB_CLI, "status"], env)
    assert plain.returncode == 0
    assert "┃" not in plain.stdout and "\x1b[" not in plain.stdout
    assert any(line.startswith("queue request") for line in plain.stdout.splitlines())


def test_json_stays_plain_on_a_terminal(lab: Lab) -> None:
    env = lab.env
    for argv in (
        [LAB_CLI, "status", "--json"],
        [LAB_CLI, "dlq", "list", "--json"],
        [LAB_CLI, "plan", "--days", "1", "--jobs-per-day", "500", "--json"],
    ):
        code, out = in_pty(argv, env)
        assert code == 0, out
        assert "\x1b[" not in out and not set(SPINNER) & set(out), argv
        json.loads(out)


def test_plan_shows_progress_on_a_terminal_only(lab: Lab) -> None:
    env = lab.env
    argv = [LAB_CLI, "plan", "--days", "1", "--jobs-per-day", "500"]
    code, out = in_pty(argv, env)
    assert code == 0, out
    assert "✓ replaying" in text_of(out) and "┃ policy" in text_of(out)
    plain = piped(argv, env)
    assert plain.returncode == 0 and "✓" not in plain.stdout + plain.stderr
    assert plain.stdout.splitlines()[0].startswith("trace ")


def test_status_watch_refreshes_in_place(lab: Lab, tmp_path: Path) -> None:
    env = lab.env
    argv = [LAB_CLI, "status", "--watch", "1"]
    code, out = in_pty(
        argv, env, timeout_s=120, interrupt_when=lambda seen: seen.count("queues") >= 3
    )
    assert code == 0, out
    assert out.count("queues") >= 2, "redrawn at least once"
    assert "\x1b[1A" in out or "\x1b[2K" in out, "redrawn in place (cursor moved up)"
