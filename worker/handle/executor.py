"""Run a service's binary: argv only (never a shell), its own process group, bounded in time.

It returns how the run ended as an ``Ending`` value (``worker.handle.ending``) and raises nothing
to say so; ``ending.judge`` decides what that means. The executor knows nothing of queues or
AWS; the worker's heartbeat may ask it to stop early by setting ``cancel`` (when the claim was
lost, running on is wasted work).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from worker.handle.ending import Cancelled, Ending, Exited, NotStarted, Signalled, TimedOut

_POLL_S = 0.05
_GRACE_S = 2.0


def run(
    argv: list[str],
    *,
    cwd: Path,
    timeout_s: float,
    max_output_bytes: int,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> Ending:
    """Run ``argv`` until it ends, is cancelled or times out; say which."""
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
            return NotStarted(f"cannot start {argv[0]!r}: {exc.strerror}")
        code = _wait(child, started + timeout_s, cancel)
    seconds = time.monotonic() - started
    if code == "cancelled":
        return Cancelled(seconds)
    if code == "timed out":
        return TimedOut(timeout_s, seconds)
    if code < 0:
        return Signalled(signal.Signals(-code).name, seconds)
    stdout, stderr = _head(out_path, max_output_bytes), _head(err_path, max_output_bytes)
    return Exited(code, stdout, stderr, seconds)


def _wait(
    child: subprocess.Popen[bytes], deadline: float, cancel: threading.Event | None
) -> int | Literal["cancelled", "timed out"]:
    """Wait for ``child``; kill its group on cancel or at the deadline and say which then.

    A pidfd becomes readable the instant the child exits, so a fast binary costs no polling
    delay, while the cancel flag is still looked at every ``_POLL_S``.
    """
    pidfd = os.pidfd_open(child.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while True:
            remaining = deadline - time.monotonic()
            # Cancel first: a lost claim makes the run moot, whatever its clock says.
            if cancel is not None and cancel.is_set():
                _kill_group(child)
                return "cancelled"
            if remaining <= 0:
                _kill_group(child)
                return "timed out"
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
