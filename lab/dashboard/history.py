"""What the dashboard remembers while it runs: queue depths every few seconds (the chart's
points) and every scaler decision it saw published (the scaler keeps only its last one)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from worker.errors import FleetlabError

Sample = Callable[[], tuple[dict[str, dict[str, int]], dict[str, Any] | None]]


class History:
    """A bounded record of samples, filled by a daemon thread every ``interval_s``."""

    def __init__(
        self, sample: Sample, interval_s: float = 2.0, keep_s: float = 900.0, decisions: int = 50
    ) -> None:
        self._sample = sample
        self._interval_s = interval_s
        self._points: deque[dict[str, Any]] = deque(maxlen=max(2, int(keep_s / interval_s)))
        self._decisions: deque[dict[str, Any]] = deque(maxlen=decisions)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="history", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        """Take the first sample now, then keep sampling."""
        self.take(time.time())
        self._thread.start()

    def close(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)

    def take(self, now: float) -> None:
        """One sample; a failure is kept (shown on the page) and the next tick tries again."""
        try:
            depths, scaler = self._sample()
        except (FleetlabError, BotoCoreError, ClientError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            return
        self.error = None
        with self._lock:
            self._points.append({"at": now, "queues": depths})
            last = self._decisions[-1] if self._decisions else {}
            if scaler and last.get("at") != scaler.get("at"):
                self._decisions.append(scaler)

    def points(self) -> list[dict[str, Any]]:
        """The samples, oldest first."""
        with self._lock:
            return list(self._points)

    def decisions(self) -> list[dict[str, Any]]:
        """Scaler decisions seen, newest first."""
        with self._lock:
            return list(reversed(self._decisions))

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.take(time.time())
