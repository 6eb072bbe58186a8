"""Job slots: how many jobs a worker runs at once, in all (its cap) and per service.

A pure count, kept by the loop thread alone: the loop asks ``fits`` before it starts a message's
job, ``take``s a slot when it does and ``free``s it when the job has decided its outcome. A
message whose service is at its own limit is passed over, not waited on, so a long job of a
concurrency-1 service never keeps short jobs of another service from the free slots.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from worker.consume.queue import Message
from worker.handle.request import salvage_envelope
from worker.handle.services import Registry

Group = str | None  # the service a message names; None: none readable before it is fetched


class Slots:
    """Running jobs counted against ``cap`` and against each service's ``limit``."""

    def __init__(self, cap: int, limit: Callable[[Group], int]) -> None:
        self.cap = cap
        self._limit = limit
        self._running: Counter[Group] = Counter()

    def fits(self, group: Group) -> bool:
        """May a job of ``group`` start now?"""
        return self.busy() < self.cap and self._running[group] < min(self.cap, self._limit(group))

    def take(self, group: Group) -> None:
        """A job of ``group`` starts."""
        self._running[group] += 1

    def free(self, group: Group) -> None:
        """A job of ``group`` has ended."""
        self._running[group] -= 1

    def busy(self) -> int:
        """How many jobs run."""
        return sum(self._running.values())


def service_limit(registry: Registry, group: Group) -> int:
    """The ``concurrency`` the service ``group`` declares; a message naming no service the
    registry knows (unreadable, offloaded to S3, or unknown) runs one at a time: it may be
    anything."""
    service = registry.services.get(group) if group is not None else None
    return service.concurrency if service is not None else 1


def group_of(message: Message, max_bytes: int) -> Group:
    """The service ``message`` names, read as an error response's envelope is (bounded, no DTD);
    None for an offloaded body (its request is in S3) or one that names none."""
    if message.payload_size is not None:
        return None
    return salvage_envelope(message.body, max_bytes).service
