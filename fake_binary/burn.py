"""Burn CPU on several threads, the way the real analysis binary loads every core."""

from __future__ import annotations

import hashlib
import threading
import time

# hashlib drops the GIL for buffers over 2 KiB; 256 KiB keeps each slice well under a
# millisecond, so a thread overshoots its budget by very little.
_BUFFER = bytes(256 * 1024)
# Below this a burn is noise next to interpreter start-up; skip starting threads at all.
MIN_TARGET_SECONDS = 0.001


def burn(target_cpu_seconds: float, threads: int) -> None:
    """Spend about ``target_cpu_seconds`` of CPU in total, split evenly over ``threads``."""
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if not target_cpu_seconds >= MIN_TARGET_SECONDS:  # also catches NaN
        return
    share = target_cpu_seconds / threads
    workers = [threading.Thread(target=burn_thread, args=(share,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def burn_thread(seconds: float) -> None:
    """Hash a buffer until this thread has used ``seconds`` of its own CPU time."""
    deadline = time.thread_time() + seconds
    digest = hashlib.sha256()
    while time.thread_time() < deadline:
        digest.update(_BUFFER)
