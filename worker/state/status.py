"""The worker's status document in S3 (``status/<worker-id>.json``).

Written every ``interval_s``, and soon after the state changes (a job starts or ends), but at
most once per ``_MIN_GAP_S`` so a busy worker does not pay a write per job.

State, current request, jobs done, recent job durations, code version and heartbeat time: what
``lab status`` and the scaler read. Writes are conditional (create, then ``IfMatch`` on the last
etag): a field another writer put in the document is kept, never overwritten blind. The scaler's
``drain_requested`` is such a field; the losing write that brings it in calls ``on_drain``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from worker.consume.inbox import Inbox
from worker.consume.loop import Stats
from worker.errors import PreconditionFailed, StoreError
from worker.state.store import JsonStore

_log = logging.getLogger(__name__)
_TICK_S = 0.25
_MIN_GAP_S = 1.0


class StatusReporter:
    """Writes the status document on start, every ``interval_s`` and on stop."""

    def __init__(
        self,
        store: JsonStore,
        worker_id: str,
        inbox: Inbox,
        stats: Stats,
        calls: Callable[[], dict[str, int]],
        interval_s: float,
        code_version: str = "dev",
        wall: Callable[[], float] = time.time,
        draining: Callable[[], bool] = lambda: False,
        on_drain: Callable[[], None] = lambda: None,
    ) -> None:
        self._draining = draining
        self._on_drain = on_drain
        self._drain_seen = False
        self._code_version = code_version
        self._etag: str | None = None
        self._others: dict[str, Any] = {}
        self._store = store
        self._worker_id = worker_id
        self._inbox = inbox
        self._stats = stats
        self._calls = calls
        self._interval_s = interval_s
        self._wall = wall
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)

    def start(self) -> None:
        """Write ``idle`` and keep writing."""
        self.write("idle")
        self._thread.start()

    def close(self) -> None:
        """Write ``stopped`` and end the thread."""
        self._closed.set()
        self._thread.join(timeout=10)
        self.write("stopped")

    def document(self, state: str) -> dict[str, Any]:
        """The status as stored."""
        running = self._inbox.running()
        calls = self._calls()
        return {
            "worker_id": self._worker_id,
            "pid": os.getpid(),
            "state": self._state(state, running is not None),
            "current_request": running.message.message_id if running else None,
            "jobs_done": sum(self._stats.outcomes.values()),
            "outcomes": dict(self._stats.outcomes),
            "api_calls": sum(calls.values()),
            "api_calls_by_operation": calls,
            "job_seconds": list(self._stats.durations),
            "code_version": self._code_version,
            "heartbeat_at": self._wall(),
        }

    def _state(self, asked: str, running: bool) -> str:
        if asked != "idle":
            return asked
        if self._draining():
            return "draining"
        return "busy" if running else "idle"

    def write(self, state: str) -> None:
        """Write the document now; a failure is logged and retried on the next beat."""
        key = f"status/{self._worker_id}.json"
        try:
            for _ in range(3):
                mine = self.document(state)
                doc = self._others | mine
                try:
                    if self._etag is None:
                        self._etag = self._store.create(key, doc)
                    else:
                        self._etag = self._store.replace(key, doc, self._etag)
                    return
                except PreconditionFailed:
                    self._adopt(key, set(mine))
            _log.warning("status write kept losing to other writers")
        except StoreError as exc:
            _log.warning("status write failed: %s", exc)

    def _adopt(self, key: str, mine: set[str]) -> None:
        """Someone else wrote (or this id ran before): keep their fields, write over their etag."""
        found = self._store.read(key)
        self._etag = found.etag if found else None
        self._others = {k: v for k, v in (found.doc if found else {}).items() if k not in mine}
        if self._others.get("drain_requested") and not self._drain_seen:
            self._drain_seen = True
            self._on_drain()

    @property
    def extra(self) -> dict[str, Any]:
        """Fields other writers put in this worker's status document."""
        return dict(self._others)

    def _signature(self) -> tuple[int, str | None]:
        running = self._inbox.running()
        return sum(self._stats.outcomes.values()), running.message.message_id if running else None

    def _run(self) -> None:
        last_at, last_seen = time.monotonic(), self._signature()
        while not self._closed.wait(_TICK_S):
            now, seen = time.monotonic(), self._signature()
            changed = seen != last_seen and now - last_at >= _MIN_GAP_S
            if changed or now - last_at >= self._interval_s:
                self.write("idle")
                last_at, last_seen = now, seen
