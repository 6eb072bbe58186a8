"""The worker's status document in S3 (``status/<worker-id>.json``): its schema and its writer.

``Status`` is the document's one schema: the reporter writes it, and the scaler, ``lab status``,
the rollout's health check and the chaos evidence read it through ``Status.from_doc``.

The reporter writes it every ``interval_s``, and soon after the state changes (a job starts or
ends), but at most once per ``_MIN_GAP_S`` so a busy worker does not pay a write per job.
Writes are conditional (create, then ``IfMatch`` on the last etag): a field another writer put
in the document is kept, never overwritten blind. The scaler's ``drain_requested`` is such a
field; the losing write that brings it in calls ``on_drain``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from worker.errors import PreconditionFailed, StoreError
from worker.state.layout import status_key
from worker.state.store import JsonStore

if TYPE_CHECKING:
    from worker.consume.inbox import Inbox
    from worker.consume.outcome import Stats

_log = logging.getLogger(__name__)
_TICK_S = 0.25
_MIN_GAP_S = 1.0

State = Literal["idle", "busy", "draining", "stopped"]
STATES: tuple[State, ...] = get_args(State)
SERVING: tuple[State, ...] = ("idle", "busy")


@dataclass(frozen=True)
class DrainRequest:
    """The scaler's request that a worker drain: when, by which scaler, under which lease token."""

    at: float | None = None
    by: str | None = None
    token: int | None = None

    def to_doc(self) -> dict[str, Any]:
        """The field as stored."""
        return {"at": self.at, "by": self.by, "token": self.token}

    @classmethod
    def from_doc(cls, value: object) -> DrainRequest | None:
        """Read the field; any other truthy value still asks for a drain."""
        if not value:
            return None
        if not isinstance(value, Mapping):
            return cls()
        token = value.get("token")
        return cls(
            at=_number(value.get("at")),
            by=str(value["by"]) if value.get("by") is not None else None,
            token=token if isinstance(token, int) else None,
        )


@dataclass(frozen=True)
class Status:
    """One worker's status document. Unknown fields (other writers') ride along in ``extra``."""

    worker_id: str
    state: str  # one of STATES from a current worker; kept as read otherwise
    heartbeat_at: float | None  # None: unreadable; a document without one beat at 0 (long ago)
    pid: int | None = None
    current_request: str | None = None
    jobs_done: int = 0
    outcomes: Mapping[str, int] = field(default_factory=dict)
    api_calls: int = 0
    api_calls_by_operation: Mapping[str, int] = field(default_factory=dict)
    job_seconds: tuple[float, ...] = ()
    slots: int = 1  # the servers it is worth to the scaler (Worker.servers: jobs run at once)
    code_version: str | None = None
    drain_requested: DrainRequest | None = None
    interruption_at: float | None = None  # a spot notice: the instance goes then (epoch s)
    extra: Mapping[str, Any] = field(default_factory=dict)

    _FIELDS = (
        "worker_id", "pid", "state", "current_request", "jobs_done", "outcomes", "api_calls",
        "api_calls_by_operation", "job_seconds", "slots", "code_version", "heartbeat_at",
        "interruption_at",
    )  # fmt: skip

    def to_doc(self) -> dict[str, Any]:
        """The document as stored (``drain_requested`` only when someone asked)."""
        doc: dict[str, Any] = dict(self.extra) | {
            "worker_id": self.worker_id,
            "pid": self.pid,
            "state": self.state,
            "current_request": self.current_request,
            "jobs_done": self.jobs_done,
            "outcomes": dict(self.outcomes),
            "api_calls": self.api_calls,
            "api_calls_by_operation": dict(self.api_calls_by_operation),
            "job_seconds": list(self.job_seconds),
            "slots": self.slots,
            "code_version": self.code_version,
            "heartbeat_at": self.heartbeat_at,
        }
        if self.drain_requested is not None:
            doc["drain_requested"] = self.drain_requested.to_doc()
        if self.interruption_at is not None:
            doc["interruption_at"] = self.interruption_at
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any], worker_id: str = "") -> Status:
        """Read a stored document; a missing or mistyped field reads as unknown, never raises."""
        return cls(
            worker_id=str(doc.get("worker_id") or worker_id),
            state=str(doc.get("state")),
            heartbeat_at=_number(doc.get("heartbeat_at", 0.0)),
            pid=_whole(doc.get("pid")),
            current_request=_text(doc.get("current_request")),
            jobs_done=_whole(doc.get("jobs_done")) or 0,
            outcomes=_counts(doc.get("outcomes")),
            api_calls=_whole(doc.get("api_calls")) or 0,
            api_calls_by_operation=_counts(doc.get("api_calls_by_operation")),
            job_seconds=_seconds(doc.get("job_seconds")),
            slots=max(1, _whole(doc.get("slots")) or 1),
            code_version=_text(doc.get("code_version")),
            drain_requested=DrainRequest.from_doc(doc.get("drain_requested")),
            interruption_at=_number(doc.get("interruption_at")),
            extra={k: v for k, v in doc.items() if k not in (*cls._FIELDS, "drain_requested")},
        )

    @property
    def serving(self) -> bool:
        """True while the worker takes requests (idle or busy)."""
        return self.state in SERVING


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _whole(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _seconds(value: object) -> tuple[float, ...]:
    numbers = (_number(x) for x in (value if isinstance(value, list) else []))
    return tuple(n for n in numbers if n is not None)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): v for k, v in value.items() if _whole(v) is not None}


def read_status(store: JsonStore, instance_id: str) -> Status | None:
    """An instance's status document as written, or None before its first one."""
    found = store.read(status_key(instance_id))
    return Status.from_doc(found.doc, instance_id) if found else None


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
        interruption: Callable[[], float | None] = lambda: None,
        slots: Callable[[], int] = lambda: 1,
    ) -> None:
        self._slots = slots
        self._draining = draining
        self._interruption = interruption
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
        oldest = running[0] if running else None
        calls = self._calls()
        return Status(
            worker_id=self._worker_id,
            pid=os.getpid(),
            state=self._state(state, oldest is not None),
            current_request=oldest.message.message_id if oldest else None,
            jobs_done=sum(self._stats.outcomes.values()),
            outcomes=dict(self._stats.outcomes),
            api_calls=sum(calls.values()),
            api_calls_by_operation=calls,
            job_seconds=tuple(self._stats.durations),
            slots=self._slots(),
            code_version=self._code_version,
            heartbeat_at=self._wall(),
            interruption_at=self._interruption(),
        ).to_doc()

    def _state(self, asked: str, running: bool) -> str:
        if asked != "idle":
            return asked
        if self._draining():
            return "draining"
        return "busy" if running else "idle"

    def write(self, state: str) -> None:
        """Write the document now; a failure is logged and retried on the next beat."""
        key = status_key(self._worker_id)
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
        oldest = running[0].message.message_id if running else None
        return sum(self._stats.outcomes.values()), oldest

    def _run(self) -> None:
        last_at, last_seen = time.monotonic(), self._signature()
        while not self._closed.wait(_TICK_S):
            now, seen = time.monotonic(), self._signature()
            changed = seen != last_seen and now - last_at >= _MIN_GAP_S
            if changed or now - last_at >= self._interval_s:
                self.write("idle")
                last_at, last_seen = now, seen
