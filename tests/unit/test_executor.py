"""The executor runs argv without a shell, bounded in time and output."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from worker.errors import ExecutionError, ExecutionTimeout
from worker.handle.executor import run


def test_argv_is_never_shell_interpreted(tmp_path: Path) -> None:
    result = run(["/bin/echo", "$(id); rm -rf /"], cwd=tmp_path, timeout_s=5, max_output_bytes=100)
    assert result.stdout == b"$(id); rm -rf /\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    with pytest.raises(ExecutionTimeout):
        run(
            ["/bin/sh", "-c", "sleep 30 & sleep 30"],
            cwd=tmp_path,
            timeout_s=0.3,
            max_output_bytes=10,
        )


def test_cancel_stops_the_binary(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(ExecutionTimeout):
        run(["/bin/sleep", "30"], cwd=tmp_path, timeout_s=30, max_output_bytes=10, cancel=cancel)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/bin/false"], "status 1"),
        (["/bin/sh", "-c", "kill -SEGV $$"], "SIGSEGV"),
        (["/no/such/binary"], "cannot start"),
    ],
)
def test_failures_are_named(tmp_path: Path, argv: list[str], message: str) -> None:
    with pytest.raises(ExecutionError, match=message):
        run(argv, cwd=tmp_path, timeout_s=5, max_output_bytes=10)


def test_output_is_bounded(tmp_path: Path) -> None:
    result = run(
        ["/bin/sh", "-c", "yes | head -c 100000"], cwd=tmp_path, timeout_s=5, max_output_bytes=50
    )
    assert len(result.stdout) == 51
