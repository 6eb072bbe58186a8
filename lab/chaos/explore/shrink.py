"""Shrinking a failing schedule: drop faults, then jobs, in ever smaller chunks (delta
debugging), keeping each cut that still fails. Pure: the trial is given."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from lab.chaos.explore.schedule import Schedule

T = TypeVar("T")


def shrink(schedule: Schedule, fails: Callable[[Schedule], bool], trials: int) -> Schedule:
    """The smallest schedule found within ``trials`` replays for which ``fails`` holds; faults
    are cut first (they are what a reader must understand), then jobs."""
    budget = [trials]

    def attempt(candidate: Schedule) -> bool:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        return fails(candidate)

    faults = _cut(list(schedule.faults), lambda kept: attempt(schedule.with_faults(kept)))
    schedule = schedule.with_faults(faults)
    jobs = _cut(list(schedule.jobs), lambda kept: attempt(schedule.with_jobs(kept)))
    return schedule.with_jobs(jobs)


def _cut(items: list[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """ddmin's complement step: try without each of n chunks; on a failure keep the cut and
    go on from there, else split finer, down to single items."""
    n = 2
    while len(items) >= 1:
        chunks = _split(items, min(n, len(items)))
        for index in range(len(chunks)):
            rest = [x for k, chunk in enumerate(chunks) if k != index for x in chunk]
            if fails(rest):
                items = rest
                n = max(n - 1, 2)
                break
        else:
            if n >= len(items):
                return items
            n = min(len(items), n * 2)
        if not items:
            return items
    return items


def _split(items: Sequence[T], n: int) -> list[list[T]]:
    size, extra = divmod(len(items), n)
    chunks, start = [], 0
    for k in range(n):
        end = start + size + (1 if k < extra else 0)
        chunks.append(list(items[start:end]))
        start = end
    return chunks
