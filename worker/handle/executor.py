"""Run a service's binary: argv only (never a shell), its own process group, bounded in time.

The executor knows nothing of queues or AWS; the worker's heartbeat may ask it to stop early by
setting ``cancel`` (when the claim was lost, running on is wasted work).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from worker.errors import BinaryCrashed, ExecutionError, ExecutionTimeout

_POLL_S = 0.05
_GRACE_S = 2.0


@dataclass(frozen=True)
class RunResult:
    """A finished run: exit status, bounded output, wall time."""

    returncode: int
    stdout: bytes
    stderr: bytes
    seconds: float


def run(
    argv: list[str],
    *,
    cwd: Path,
    timeout_s: float,
    max_output_bytes: int,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run ``argv`` to completion; raise ``ExecutionTimeout`` or ``ExecutionError`` on failure."""
    started = time.monotonic()
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            child = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
        except OSError as exc:
            raise ExecutionError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
        code = _wait(child, started + timeout_s, cancel)
    seconds = time.monotonic() - started
    stdout, stderr = _head(out_path, max_output_bytes), _head(err_path, max_output_bytes)
    if code is None:
        raise ExecutionTimeout(f"binary ran past its limit of {timeout_s:g} seconds and was killed")
    if code < 0:
        raise BinaryCrashed(f"binary was killed by signal {signal.Signals(-code).name}")
    if code != 0:
        detail = stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise ExecutionError(f"binary exited with status {code}: {detail[0][:300]}")
    return RunResult(returncode=code, stdout=stdout, stderr=stderr, seconds=seconds)


def _wait(
    child: subprocess.Popen[bytes], deadline: float, cancel: threading.Event | None
) -> int | None:
    """Wait for ``child``; kill its group at the deadline or on cancel and return None then.

    A pidfd becomes readable the instant the child exits, so a fast binary costs no polling
    delay, while the cancel flag is still looked at every ``_POLL_S``.
    """
    pidfd = os.pidfd_open(child.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (cancel is not None and cancel.is_set()):
                _kill_group(child)
                return None
            if poller.poll(max(1, int(min(_POLL_S, remaining) * 1000))):
                return child.wait()
    finally:
        os.close(pidfd)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, _GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            break
        try:
            child.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue


def _head(path: Path, limit: int) -> bytes:
    # Read one byte past the limit so the caller can tell the output was cut.
    with path.open("rb") as handle:
        return handle.read(limit + 1)
