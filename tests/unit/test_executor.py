"""The executor runs argv without a shell, bounded in time and output, and says how it ended."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from worker.errors import BinaryCrashed, ExecutionError, ExecutionTimeout
from worker.handle.ending import (
    Cancelled,
    Exited,
    Failed,
    Fenced,
    NotStarted,
    Retry,
    Signalled,
    Succeeded,
    TimedOut,
    judge,
)
from worker.handle.executor import run

BINARY_CODES = {ExecutionError.code, BinaryCrashed.code, ExecutionTimeout.code}


def test_argv_is_never_shell_interpreted(tmp_path: Path) -> None:
    result = run(["/bin/echo", "$(id); rm -rf /"], cwd=tmp_path, timeout_s=5, max_output_bytes=100)
    assert isinstance(result, Exited)
    assert result.stdout == b"$(id); rm -rf /\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    ending = run(
        ["/bin/sh", "-c", "sleep 30 & sleep 30"],
        cwd=tmp_path,
        timeout_s=0.3,
        max_output_bytes=10,
    )
    assert isinstance(ending, TimedOut)
    verdict = judge(ending, 1, 5)
    assert isinstance(verdict, Failed) and verdict.code == ExecutionTimeout.code


def test_cancel_stops_the_binary(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    ending = run(
        ["/bin/sleep", "30"], cwd=tmp_path, timeout_s=30, max_output_bytes=10, cancel=cancel
    )
    assert isinstance(ending, Cancelled)
    assert isinstance(judge(ending, 1, 5), Fenced)  # a lost claim: publish nothing


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/bin/false"], "status 1"),
        (["/bin/sh", "-c", "kill -SEGV $$"], "SIGSEGV"),
        (["/no/such/binary"], "cannot start"),
    ],
)
def test_failures_are_named(tmp_path: Path, argv: list[str], message: str) -> None:
    # On its last receive every failure is answered, with a binary error code that names it.
    verdict = judge(run(argv, cwd=tmp_path, timeout_s=5, max_output_bytes=10), 5, 5)
    assert isinstance(verdict, Failed)
    assert verdict.code in BINARY_CODES
    assert message in verdict.message


def test_output_is_bounded(tmp_path: Path) -> None:
    result = run(
        ["/bin/sh", "-c", "yes | head -c 100000"], cwd=tmp_path, timeout_s=5, max_output_bytes=50
    )
    assert isinstance(result, Exited)
    assert len(result.stdout) == 51


# ------------------------------------------------------------------------------ the one rule


def test_exit_zero_succeeds_and_a_non_zero_exit_is_answered_at_once() -> None:
    ok = Exited(0, b"out", b"", 1.0)
    assert judge(ok, 1, 5) == Succeeded(ok)
    failed = judge(Exited(3, b"", b"first\nlast words\n", 1.0), 1, 5)
    assert failed == Failed("BINARY_FAILED", "binary exited with status 3: last words")


def test_a_crash_is_retried_until_its_last_receive_then_answered_and_dead_lettered() -> None:
    crash = Signalled("SIGABRT", 0.5)
    assert judge(crash, 1, 3) == Retry("BINARY_CRASHED", "binary was killed by signal SIGABRT")
    assert judge(crash, 2, 3) == Retry("BINARY_CRASHED", "binary was killed by signal SIGABRT")
    last = judge(crash, 3, 3)
    assert last == Failed(
        "BINARY_CRASHED", "binary was killed by signal SIGABRT on each of 3 receives", True
    )
    assert isinstance(judge(crash, 100, 0), Retry)  # no redrive policy: no last receive


def test_timeout_and_a_binary_that_cannot_start_are_answered() -> None:
    timed_out = judge(TimedOut(2, 2.1), 1, 5)
    assert timed_out == Failed(
        "BINARY_TIMEOUT", "binary ran past its limit of 2 seconds and was killed"
    )
    assert judge(NotStarted("cannot start 'x': gone"), 1, 5) == Failed(
        "BINARY_FAILED", "cannot start 'x': gone"
    )
