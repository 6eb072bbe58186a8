"""Reading the activity log back: CloudWatch Logs lines parsed into ``Line`` records.

The layout is the one ``worker.activity.Event.line`` writes; this is its one reader in the lab
(chaos evidence, the dashboard's stream and a request's story, the DLQ's logged reasons).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from worker.aws import Clients

# worker msgid reqid [date] "event service" status seconds "detail"
LINE = re.compile(
    r'^(?P<worker>\S+) (?P<message_id>\S+) (?P<request_id>\S+) \[[^\]]+\] "(?P<event>\S+) '
    r'(?P<service>\S+)" (?P<status>\S+) (?P<seconds>\S+) "(?P<detail>.*)"$'
)
_MAX_PAGES = 200  # a bound on one read: 200 pages of up to 10,000 events


@dataclass(frozen=True)
class Line:
    """One activity-log line, with the time CloudWatch Logs holds for it (epoch ms)."""

    worker: str
    message_id: str
    request_id: str
    event: str
    status: str
    detail: str
    service: str = "-"
    seconds: str = "-"
    at_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def parse(message: str, at_ms: int = 0) -> Line | None:
    """One line, or None if it is not an activity line."""
    match = LINE.match(message)
    if not match:
        return None
    return Line(**match.groupdict(), at_ms=at_ms)


def read(clients: Clients, log_group: str, since_ms: int | None = None) -> list[Line]:
    """Every activity line of the group (since ``since_ms``), oldest first."""
    kwargs: dict[str, Any] = {"logGroupName": log_group}
    if since_ms is not None:
        kwargs["startTime"] = since_ms
    found: list[Line] = []
    pages = clients.logs.get_paginator("filter_log_events").paginate(**kwargs)
    for number, page in enumerate(pages):
        if number >= _MAX_PAGES:
            break
        for event in page.get("events", []):
            line = parse(event.get("message", ""), event.get("timestamp", 0))
            if line:
                found.append(line)
    return sorted(found, key=lambda x: x.at_ms)


# A worker's decision on a message it held: after one, its holding it is over.
_DECIDED = frozenset({"deleted", "retry", "dead-letter", "released", "fenced", "busy", "error"})


def held_by_the_dead(lines: list[Line]) -> dict[str, Line]:
    """Messages a worker took on their last receive and never decided (message id -> its
    "last-receive" line): the worker died holding them (crash, termination, reclaim), and SQS
    dead-letters such a message unanswered. ``lines`` oldest first."""
    held: dict[tuple[str, str], Line] = {}
    for line in lines:
        where = (line.worker, line.message_id)
        if line.event == "last-receive":
            held[where] = line
        elif line.event in _DECIDED:
            held.pop(where, None)
    return {message_id: line for (_, message_id), line in held.items()}
