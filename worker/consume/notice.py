"""Spot notices: the worker watches its instance's metadata for an interruption notice (the
instance is reclaimed at a stated time) and a rebalance recommendation (it is at raised risk).

On an interruption the worker stops receiving, lets each running job finish if it fits before the
deadline, and hands back at once every message it will not finish — visibility 0, its claim
released — so that another instance takes it over without waiting out a visibility timeout or a
lease. Whether a running job fits is a pure rule of the times (``finishes_in_time``); the
watcher only polls, cheaply (one GET every few seconds, the token cached), and reports.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from worker.consume.inbox import Inbox
from worker.consume.outcome import Stats
from worker.net.imds import Metadata, MetadataError

_log = logging.getLogger(__name__)
INSTANCE_ACTION = "meta-data/spot/instance-action"
REBALANCE = "meta-data/events/recommendations/rebalance"


@dataclass(frozen=True)
class Notice:
    """What the metadata says: when the instance is reclaimed (epoch seconds), if it is, and
    whether a rebalance is recommended."""

    interruption_at: float | None = None
    rebalance: bool = False


def finishes_in_time(
    elapsed_s: float, expected_s: float | None, remaining_s: float, margin_s: float
) -> bool:
    """True if a job that has run ``elapsed_s`` of an expected ``expected_s`` ends, with
    ``margin_s`` left to deliver and settle, before the instance goes in ``remaining_s``. A job
    of unknown length is not gambled on: handed back now, it costs another instance its run;
    cut off by the reclaim, it costs that and a lease besides."""
    if expected_s is None:
        return False
    return max(0.0, expected_s - elapsed_s) + margin_s <= remaining_s


def abandon_if_late(
    inbox: Inbox, stats: Stats, remaining_s: float, now: float, margin_s: float
) -> int:
    """Under notice: abandon each running job (its binary stopped, the pipeline hands it back
    and releases its claim) unless, by the recent mean job time, it ends in time. A job without
    a lease (result mode: short) is let finish. ``now`` is the inbox's clock. Return how many
    were abandoned."""
    timed = stats.durations
    expected = sum(timed) / len(timed) if timed else None
    abandoned = 0
    for running in inbox.running():
        if running.lease is None:
            continue
        if finishes_in_time(now - running.started, expected, remaining_s, margin_s):
            continue
        running.lease.abandon()
        abandoned += 1
    return abandoned


def read(metadata: Metadata) -> Notice:
    """One look at the notices (two small GETs; a 404 is "none")."""
    action = metadata.get(INSTANCE_ACTION)
    at = None
    if action:
        try:
            when = json.loads(action)["time"]
            at = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            _log.warning("unreadable spot instance-action: %r", action[:200])
    return Notice(at, metadata.get(REBALANCE) is not None)


class NoticeWatcher:
    """Polls the notices every ``interval_s``; calls ``on_interruption(at)`` and
    ``on_rebalance()`` once each, when first seen."""

    def __init__(
        self,
        look: Callable[[], Notice],
        interval_s: float,
        on_interruption: Callable[[float], None],
        on_rebalance: Callable[[], None],
    ) -> None:
        self._look = look
        self._interval_s = interval_s
        self._on_interruption = on_interruption
        self._on_rebalance = on_rebalance
        self.seen = Notice()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spot-notice", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def check(self) -> Notice:
        """One poll; reports what is new (public: the worker checks once before it starts)."""
        try:
            now = self._look()
        except MetadataError as exc:
            _log.warning("cannot read the spot notices: %s", exc)
            return self.seen
        if now.interruption_at is not None and self.seen.interruption_at is None:
            self.seen = Notice(now.interruption_at, self.seen.rebalance)
            self._on_interruption(now.interruption_at)
        if now.rebalance and not self.seen.rebalance:
            self.seen = Notice(self.seen.interruption_at, True)
            self._on_rebalance()
        return self.seen

    def _run(self) -> None:
        while not self._closed.wait(self._interval_s):
            self.check()
