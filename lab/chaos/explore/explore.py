"""The explorer's top level: draw a schedule from a seed, play it (on the running lab or a
clean one), and on failure shrink it to a small schedule that still fails."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from lab.chaos.explore import nemesis, runner
from lab.chaos.explore.schedule import Schedule, draw_jobs, fault_times
from lab.chaos.explore.shrink import shrink
from lab.runtime.settings import LabSettings

JOBS_PER_S = 3.5  # the default pace: what two instances on two cores keep up with, faults on


@dataclass(frozen=True)
class Options:
    """What a user asks of one exploration."""

    seed: int = 1
    jobs: int = 200
    duration_s: float | None = None  # default: jobs / JOBS_PER_S (at least a minute)
    faults: tuple[str, ...] | None = None  # kinds; None: every default kind
    intensity: float = 10.0  # faults per minute, on average


def draw(options: Options) -> Schedule:
    """The schedule ``options`` and its seed make (the same every time)."""
    rng = random.Random(options.seed)  # noqa: S311 (a seeded, repeatable draw)
    duration = options.duration_s or max(60.0, options.jobs / JOBS_PER_S)
    chosen = nemesis.kinds(list(options.faults) if options.faults is not None else None)
    jobs = draw_jobs(rng, options.jobs, duration, f"x{options.seed}")
    faults = nemesis.draw(rng, chosen, fault_times(rng, duration, options.intensity))
    return Schedule(
        seed=options.seed,
        jobs=tuple(jobs),
        faults=tuple(faults),
        proxy=any(nemesis.REGISTRY[f.kind].needs_proxy for f in faults),
        spot=any(nemesis.REGISTRY[f.kind].needs_spot for f in faults),
    )


def play(
    settings: LabSettings,
    schedule: Schedule,
    clean: bool,
    say: Callable[[str], None],
    shrinking: bool = False,
) -> runner.Outcome:
    """Play ``schedule`` on a clean lab of its own (a shrinker's trial beside the run it
    shrinks), or on the lab `lab up` started."""
    if clean:
        with runner.clean_arena(settings, schedule, shrinking) as arena:
            return runner.play(arena, schedule, say)
    with runner.running_arena(settings, schedule) as arena:
        return runner.play(arena, schedule, say, mine=f"x{schedule.seed}-")


def minimise(
    settings: LabSettings, schedule: Schedule, trials: int, say: Callable[[str], None]
) -> Schedule:
    """A smaller schedule that still fails, each trial a replay on a clean lab."""

    def fails(candidate: Schedule) -> bool:
        outcome = play(settings, candidate, True, lambda _: None, shrinking=True)
        say(
            f"shrink: {len(candidate.jobs)} jobs, {len(candidate.faults)} faults: "
            + ("still fails" if not outcome.passed else "passes")
        )
        return not outcome.passed

    return shrink(schedule, fails, trials)
