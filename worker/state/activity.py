"""The activity log: one line per event, Common-Log-Format style, to a file and CloudWatch Logs.

Line layout (CLF's host ident user [date] "request" status bytes, adapted)::

    worker-1 7d57b74c-... req-42 [25/Nov/2026:06:11:02 +0000] "ran analyze" ok 6.012 "detail"

Fields a line cannot fill are ``-``. Details pass through ``scrub`` so that no password, token or
URL userinfo ever reaches a log line, whatever a caller hands in.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

_log = logging.getLogger(__name__)
_SECRET_ASSIGN = re.compile(
    r"(?i)\b(password|passwd|pass|secret|token|signature|authorization|x-amz-[a-z-]+)"
    r"(\"?\s*[=:]\s*\"?)([^\s\"&,;]+)"
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_MAX_BATCH = 500


# Every event a line can name: writers are held to it by the type checker, readers (``lab logs``,
# the chaos evidence, tests) match these names.
EventName = Literal[
    # a process
    "started", "stopped",
    # a message on a worker
    "received", "claimed", "busy", "duplicate", "ran", "published", "error", "fenced", "delivered",
    "retry", "dead-letter", "deleted", "released", "lease-lost", "last-receive",
    # the instance (spot notices in its metadata)
    "interruption", "rebalance",
    # the scaler
    "leader", "follower", "skipped", "idle", "scaled", "holding", "launched", "drain",
    "terminated", "replaced",
]  # fmt: skip
EVENTS: tuple[EventName, ...] = get_args(EventName)


def scrub(text: str) -> str:
    """Remove credentials from free text: ``password=...`` values and ``user:pass@`` in URLs."""
    text = _USERINFO.sub(r"\1", text)
    return _SECRET_ASSIGN.sub(lambda m: f"{m.group(1)}{m.group(2)}REDACTED", text)


@dataclass(frozen=True)
class Event:
    """One activity: what happened to which message, how it went, how long it took."""

    event: EventName
    worker: str
    at: float
    message_id: str | None = None
    request_id: str | None = None
    service: str | None = None
    status: str = "ok"
    seconds: float | None = None
    detail: str = ""

    def line(self) -> str:
        """Render as one log line (no trailing newline)."""
        stamp = datetime.fromtimestamp(self.at, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        took = f"{self.seconds:.3f}" if self.seconds is not None else "-"
        detail = scrub(self.detail).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")
        return (
            f"{self.worker} {self.message_id or '-'} {self.request_id or '-'} [{stamp}] "
            f'"{self.event} {self.service or "-"}" {self.status} {took} "{detail[:1000]}"'
        )


class Sink(Protocol):
    """Somewhere log lines go besides the local file."""

    def send(self, lines: list[tuple[int, str]]) -> None:
        """Deliver ``(epoch_ms, line)`` pairs in order; raise on failure."""
        ...


class CloudWatchSink:
    """Ships lines to one CloudWatch Logs stream (a stream per worker)."""

    def __init__(self, logs: CloudWatchLogsClient, group: str, stream: str) -> None:
        self._logs = logs
        self._group = group
        self._stream = stream
        self._ready = False

    def send(self, lines: list[tuple[int, str]]) -> None:
        if not self._ready:
            with contextlib.suppress(self._logs.exceptions.ResourceAlreadyExistsException):
                self._logs.create_log_stream(logGroupName=self._group, logStreamName=self._stream)
            self._ready = True
        for start in range(0, len(lines), _MAX_BATCH):
            chunk = lines[start : start + _MAX_BATCH]
            self._logs.put_log_events(
                logGroupName=self._group,
                logStreamName=self._stream,
                logEvents=[{"timestamp": ms, "message": text} for ms, text in chunk],
            )


class ActivityLog:
    """Writes every event to the local file at once and ships it to the sink in batches."""

    def __init__(
        self,
        worker: str,
        path: Path,
        sink: Sink | None = None,
        flush_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._worker = worker
        self._clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8", buffering=1)
        self._sink = sink
        self._flush_s = flush_s
        self._pending: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        if sink is not None:
            self._thread = threading.Thread(target=self._ship, name="activity-log", daemon=True)
            self._thread.start()

    def event(self, event: EventName, **fields: str | float | None) -> Event:
        """Record one event; returns it (tests and callers may read it back)."""
        with self._lock:
            # Timed under the lock: lines from several job threads then reach the file and the
            # sink in the order of their times, which CloudWatch Logs requires of a batch.
            record = Event(event=event, worker=self._worker, at=self._clock(), **fields)  # type: ignore[arg-type]
            text = record.line()
            self._file.write(text + "\n")
            if self._sink is not None:
                self._pending.append((int(record.at * 1000), text))
                if len(self._pending) >= _MAX_BATCH:
                    self._wake.set()
        return record

    def close(self, patience_s: float = 10.0) -> None:
        """Ship what is pending — retrying for up to ``patience_s``, since an instance that
        stops is often terminated next and takes its local file with it — and close the file."""
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        deadline = time.monotonic() + patience_s
        while not self._flush() and time.monotonic() < deadline:
            time.sleep(0.5)
        with self._lock:
            self._file.close()

    def _ship(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_s)
            self._wake.clear()
            self._flush()

    def _flush(self) -> bool:
        """Ship the pending lines; False if the sink refused them (they stay pending)."""
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch or self._sink is None:
            return True
        try:
            self._sink.send(batch)
        except (BotoCoreError, ClientError) as exc:
            # The local file has every line; the central copy catches up on the next flush.
            _log.warning("activity log: cannot ship %d lines: %s", len(batch), exc)
            with self._lock:
                self._pending = (batch + self._pending)[-10 * _MAX_BATCH :]
            return False
        return True
