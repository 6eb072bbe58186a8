"""The activity log's central copy: a sink that refuses for a while still gets every line when
the worker stops, and one that never comes back does not hold the stop up for long."""

from __future__ import annotations

import threading
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


class Recording:
    """A sink that keeps every line it is sent."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str]] = []

    def send(self, lines: list[tuple[int, str]]) -> None:
        self.lines.extend(lines)


def test_lines_from_several_threads_ship_in_the_order_of_their_times(tmp_path: Path) -> None:
    # Found by the concurrency test: job threads timed their lines before taking the lock, so
    # a batch could reach CloudWatch Logs out of order, which it refuses whole.
    a_timed, b_logged = threading.Event(), threading.Event()
    times = iter([1.0, 2.0])

    def clock() -> float:
        at = next(times)
        if threading.current_thread().name == "a":
            a_timed.set()
            b_logged.wait(0.5)  # unlocked, b would log its later line first meanwhile
        return at

    sink = Recording()
    log = ActivityLog("w", tmp_path / "activity.log", sink, flush_s=60, clock=clock)
    a = threading.Thread(target=lambda: log.event("ran"), name="a")
    a.start()
    a_timed.wait(5)
    b = threading.Thread(target=lambda: (log.event("deleted"), b_logged.set()), name="b")
    b.start()
    a.join(5)
    b.join(5)
    log.close()
    assert [ms for ms, _ in sink.lines] == [1000, 2000]
    assert events((tmp_path / "activity.log").read_text().splitlines()) == ["ran", "deleted"]
