"""What each ``/api/...`` endpoint answers: plain JSON-able dicts, read through the lab's own
readers (``lab status``'s joins, the scaler's state, the activity log, the DLQ, the receiver's
journal). Nothing here spells an S3 key or a log layout of its own."""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.client import activity, dlq, results
from lab.client.observe import fleet_instances, queue_depths, status_docs, workers
from lab.dashboard.history import History
from lab.errors import LabError
from lab.runtime import scaler
from lab.runtime.resources import LabEnv
from worker.aws import Clients
from worker.state.store import S3JsonStore

ACTIVITY_WINDOW_S = 3600.0  # the stream shows the last hour
MAX_LINES = 1000
_REPORT_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class BadInput(LabError):
    """Raised when an API call carries a parameter or body it cannot use (HTTP 400)."""

    code = "BAD_INPUT"


PEEK_MAX_AGE_S = 30.0


@dataclass
class Sources:
    """Where the dashboard reads from: the lab's environment, its clients and folder; and the
    last look at the dead-letter queue, kept while its depth stays the same (for up to
    ``PEEK_MAX_AGE_S``), because every look receives each message once more and raises its
    receive count: a page polling every few seconds must not make that count meaningless."""

    env: LabEnv
    clients: Clients
    home: Path
    _peeked: tuple[int, float, list[dlq.DeadLetter]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dead_letters(self, now: float) -> list[dlq.DeadLetter]:
        """The DLQ's messages: a fresh look if its depth changed or the last is too old."""
        counts = queue_depths(self.clients, self.env)["dead_letter"]
        depth = counts["visible"] + counts["in_flight"] + counts["delayed"]
        with self._lock:
            if self._peeked and self._peeked[0] == depth and now - self._peeked[1] < PEEK_MAX_AGE_S:
                return self._peeked[2]
            letters = dlq.peek(self.clients, self.env) if depth else []
            self._peeked = (depth, now, letters)
            return letters

    def forget_dead_letters(self) -> None:
        """After a redrive: the next look is a fresh one."""
        with self._lock:
            self._peeked = None

    @property
    def read_only(self) -> bool:
        """On AWS the dashboard changes nothing but a redrive, which asks first."""
        return self.env.env == "aws"

    def store(self) -> S3JsonStore:
        return S3JsonStore(self.clients.s3, self.env.bucket)

    def sample(self) -> tuple[dict[str, dict[str, int]], dict[str, Any] | None]:
        """What the history records every tick: queue depths and the scaler's state."""
        return queue_depths(self.clients, self.env), scaler.read_state(self.store())


def checked_id(value: str | None, what: str) -> str:
    """A message or request id from a URL: bounded and of the characters ids use."""
    if not value or not _ID.fullmatch(value):
        raise BadInput(f"{what} must be 1-128 letters, digits or ._:-")
    return value


def overview(src: Sources, history: History) -> dict[str, Any]:
    """Environment, queue depths now, the scaler's state and whether reading works."""
    points = history.points()
    return {
        "env": src.env.env,
        "region": src.env.region,
        "endpoint_url": src.env.endpoint_url,
        "read_only": src.read_only,
        "queues": points[-1]["queues"] if points else queue_depths(src.clients, src.env),
        "scaler": scaler.read_state(src.store()),
        "error": history.error,
        "now": time.time(),
    }


def queue_history(history: History) -> dict[str, Any]:
    """The sampled depths, oldest first: the chart's points."""
    return {"points": history.points()}


def fleet(src: Sources) -> dict[str, Any]:
    """Instances (EC2 joined with body and status, as `lab status --json`) and plain workers."""
    docs = status_docs(src.clients, src.env)
    return {
        "instances": fleet_instances(src.clients, src.env, docs),
        "workers": workers(docs),
    }


def scaler_view(src: Sources, history: History) -> dict[str, Any]:
    """The leader's published state and the decisions seen while the dashboard ran."""
    return {"state": scaler.read_state(src.store()), "decisions": history.decisions()}


def activity_lines(src: Sources, query: dict[str, str], now: float) -> dict[str, Any]:
    """The last hour's activity, newest first, filtered by request id, instance and event."""
    limit = _limit(query.get("limit"))
    lines = activity.read(src.clients, src.env.log_group, int((now - ACTIVITY_WINDOW_S) * 1000))
    wanted = {k: query[k] for k in ("request_id", "worker", "event") if query.get(k)}
    chosen = [x for x in lines if all(getattr(x, k) == v for k, v in wanted.items())]
    return {"lines": [x.as_dict() for x in reversed(chosen[-limit:])], "filters": wanted}


def _limit(text: str | None) -> int:
    try:
        limit = int(text or 200)
    except ValueError:
        raise BadInput("limit must be a whole number") from None
    if not 1 <= limit <= MAX_LINES:
        raise BadInput(f"limit must be between 1 and {MAX_LINES}")
    return limit


def story(src: Sources, ident: str) -> dict[str, Any]:
    """One request's whole story, oldest first: every activity line of the request id (or message
    id) and of every message that carried it, the callbacks received, and the DLQ if it is there."""
    lines = activity.read(src.clients, src.env.log_group)
    messages = {x.message_id for x in lines if ident in (x.request_id, x.message_id)}
    messages.discard("-")
    mine = [x for x in lines if x.request_id == ident or x.message_id in messages]
    requests = {x.request_id for x in mine} - {"-"}
    callbacks = [
        {k: v for k, v in entry.items() if k != "body"}
        for entry in (results.journal(src.env.receiver_url) if src.env.receiver_url else [])
        if entry.get("message_id") in messages
    ]
    dead = [
        x.as_dict()
        for x in src.dead_letters(time.time())
        if x.message_id in messages or x.request_id in requests | {ident}
    ]
    return {
        "id": ident,
        "request_ids": sorted(requests),
        "message_ids": sorted(messages),
        "workers": sorted({x.worker for x in mine}),
        "lines": [x.as_dict() for x in mine],
        "callbacks": callbacks,
        "dead_letters": dead,
    }


def dead_letters(src: Sources) -> dict[str, Any]:
    """The dead-letter queue, oldest first, with receive counts and logged reasons."""
    return {"messages": [x.as_dict() for x in src.dead_letters(time.time())]}


def redrive(src: Sources, body: dict[str, Any]) -> dict[str, Any]:
    """``{"message_id": ID}`` or ``{"all": true}``, with ``"confirm": true`` (the page asks)."""
    if body.get("confirm") is not True:
        raise BadInput('a redrive needs "confirm": true')
    src.forget_dead_letters()
    if body.get("all") is True:
        return dlq.redrive_all(src.clients, src.env).as_dict()
    message_id = checked_id(body.get("message_id"), "message_id")
    return dlq.redrive_one(src.clients, src.env, message_id).as_dict()


def journal(src: Sources) -> dict[str, Any]:
    """The callback receiver's journal (lab only), newest first, bodies cut to 2,000 chars."""
    if not src.env.receiver_url:
        return {"entries": [], "note": "no receiver in this environment"}
    entries = results.journal(src.env.receiver_url)[-MAX_LINES:]
    return {"entries": [e | {"body": str(e.get("body", ""))[:2000]} for e in reversed(entries)]}


def reports_dir(home: Path) -> Path:
    """Where chaos reports (JSON) and planner plots (PNG) are kept for the dashboard."""
    return home / "reports"


def reports(src: Sources) -> dict[str, Any]:
    """Chaos reports with their checks and timelines, and the names of the planner's plots."""
    folder = reports_dir(src.home)
    chaos: list[dict[str, Any]] = []
    for path in sorted(folder.glob("chaos-*.json"), reverse=True)[:20]:
        try:
            chaos.append({"name": path.name} | json.loads(path.read_text()))
        except (OSError, ValueError):
            chaos.append({"name": path.name, "error": "unreadable"})
    plots = sorted(p.name for p in folder.glob("*.png"))
    return {"folder": str(folder), "chaos": chaos, "plots": plots}


def report_file(home: Path, name: str) -> Path:
    """A plot from the reports folder, by a plain name (never a path)."""
    if not _REPORT_NAME.fullmatch(name) or not name.endswith(".png"):
        raise BadInput("a plot is named NAME.png")
    path = reports_dir(home) / name
    if not path.is_file():
        raise BadInput(f"no plot {name}")
    return path
