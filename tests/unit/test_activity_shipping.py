"""The activity log's central copy: a sink that refuses for a while still gets every line when
the worker stops, and one that never comes back does not hold the stop up for long."""

from __future__ import annotations

import time
from pathlib import Path

from botocore.exceptions import EndpointConnectionError

from worker.state.activity import ActivityLog


class FlakySink:
    """Refuses the first ``failures`` sends, as a partitioned endpoint does; keeps the rest."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.lines: list[str] = []

    def send(self, lines: list[tuple[int, str]]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/")
        self.lines += [text for _, text in lines]


def events(lines: list[str]) -> list[str]:
    """Each line's event name (the first word of its quoted "event service" field)."""
    return [line.split('"')[1].split()[0] for line in lines]


def test_close_retries_until_the_sink_takes_every_line(tmp_path: Path) -> None:
    sink = FlakySink(failures=3)
    log = ActivityLog("i-0123456789abcdef0", tmp_path / "activity.jsonl", sink, flush_s=3600)
    log.event("claimed", request_id="r-1")
    log.event("deleted", request_id="r-1")
    log.close(patience_s=30)
    assert sink.failures == 0
    assert events(sink.lines) == ["claimed", "deleted"]


def test_close_gives_up_after_its_patience_and_the_file_keeps_the_lines(tmp_path: Path) -> None:
    sink = FlakySink(failures=10**6)
    path = tmp_path / "activity.jsonl"
    log = ActivityLog("i-0123456789abcdef0", path, sink, flush_s=3600)
    log.event("claimed", request_id="r-1")
    started = time.monotonic()
    log.close(patience_s=1.0)
    assert time.monotonic() - started < 20  # bounded: a hang guard, not a timing claim
    assert sink.lines == []
    assert events(path.read_text().splitlines()) == ["claimed"]
