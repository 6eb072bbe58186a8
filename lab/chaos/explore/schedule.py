"""The explorer's schedule: the workload and the faults, as data drawn from a seed.

A schedule is everything a run depends on that the explorer decides (what is sent when, which
fault starts when and for how long); saved as JSON it replays the same run, and shrinking it is
editing data. What the machine does in between (scheduling, timing) still varies.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from lab.errors import LabError

FORMAT = 1
# Kinds of job the workload mixes (share of the stream); lengths are seconds of the lab's time.
JOB_MIX = (
    ("noop", 0.42),  # no input, no binary time: the fleet's bookkeeping alone
    ("short", 0.32),  # the analyser, 0.02-0.15 s
    ("medium", 0.1),  # the analyser, 0.2-0.6 s
    ("long", 0.02),  # the analyser, 1.5-3 s: beats of the heartbeat, takeovers when frozen
    ("resubmit", 0.08),  # an earlier request again, same requestId, same body
    ("invalid", 0.03),  # a disallowed parameter: a clear error response
    ("malformed", 0.01),  # not a request at all: an error keyed by the message id
    ("poison", 0.02),  # the binary crashes every time: answered and dead-lettered
)
# Seconds of the whole (2-core) machine; the lab's analyser spreads a job over every core, so
# the mix costs about 0.1 s of machine per request: 1,000 requests in under 2 minutes of CPU.
_SECONDS = {"short": (0.02, 0.15), "medium": (0.2, 0.6), "long": (1.5, 3.0)}


class ScheduleError(LabError):
    """Raised when a schedule file cannot be read or names what the explorer does not know."""

    code = "SCHEDULE_INVALID"


@dataclass(frozen=True)
class JobPlan:
    """One message to send: at ``at`` seconds into the run, ``request_id`` (``of`` names the
    request a resubmission repeats), the job's lab seconds, and where its response goes."""

    at: float
    request_id: str
    kind: str
    seconds: float = 0.0
    output: str = "queue"  # or callback
    of: str | None = None


@dataclass(frozen=True)
class FaultPlan:
    """One fault: its kind (a name in the nemesis' registry), when it starts, how long it lasts
    (0: a single act), what it aims at, and the kind's own parameters."""

    at: float
    kind: str
    duration: float = 0.0
    target: str = "any"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    """A whole run: the lab it needs, the jobs, the faults."""

    seed: int
    jobs: tuple[JobPlan, ...]
    faults: tuple[FaultPlan, ...]
    instances: int = 2
    bounds: tuple[int, int] = (2, 4)
    visibility_timeout_s: int = 6
    max_receive_count: int = 6  # room for the nemesis' own receives (visibility-expiry)
    proxy: bool = False  # instances reach their endpoints through the lab's proxy
    spot: bool = False  # the fleet is part spot (its first instances, and the scaler's share)

    @property
    def duration(self) -> float:
        """When the last job is sent or the last fault ends."""
        ends = [j.at for j in self.jobs] + [f.at + f.duration for f in self.faults]
        return max(ends, default=0.0)

    def to_doc(self) -> dict[str, Any]:
        """The JSON form."""
        doc = asdict(self)
        doc["format"] = FORMAT
        doc["bounds"] = list(self.bounds)
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Schedule:
        """Read the JSON form; ``ScheduleError`` when it is not one."""
        try:
            if doc.get("format") != FORMAT:
                raise ScheduleError(f"schedule format {doc.get('format')!r}: expected {FORMAT}")
            low, high = doc["bounds"]
            return cls(
                seed=int(doc["seed"]),
                jobs=tuple(JobPlan(**j) for j in doc["jobs"]),
                faults=tuple(FaultPlan(**f) for f in doc["faults"]),
                instances=int(doc["instances"]),
                bounds=(int(low), int(high)),
                visibility_timeout_s=int(doc["visibility_timeout_s"]),
                max_receive_count=int(doc["max_receive_count"]),
                proxy=bool(doc.get("proxy", False)),
                spot=bool(doc.get("spot", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ScheduleError(f"not a schedule: {type(exc).__name__}: {exc}") from None

    def save(self, path: Path) -> None:
        """Write the JSON form to ``path``."""
        path.write_text(json.dumps(self.to_doc(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Schedule:
        """Read a schedule file; ``ScheduleError`` with the reason when it cannot."""
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ScheduleError(f"cannot read {path}: {exc}") from None
        if not isinstance(doc, dict):
            raise ScheduleError(f"{path}: not a schedule (a JSON object)")
        return cls.from_doc(doc)

    def with_jobs(self, jobs: Iterable[JobPlan]) -> Schedule:
        """The same schedule with only ``jobs`` (resubmissions of a dropped job dropped too)."""
        kept = [j for j in jobs]
        ids = {j.request_id for j in kept if j.of is None}
        return replace(self, jobs=tuple(j for j in kept if j.of is None or j.of in ids))

    def with_faults(self, faults: Iterable[FaultPlan]) -> Schedule:
        """The same schedule with only ``faults``."""
        return replace(self, faults=tuple(faults))


def draw_jobs(rng: random.Random, count: int, duration: float, run: str) -> list[JobPlan]:
    """``count`` jobs over ``duration`` seconds: a steady stream with bursts (a fifth of the
    jobs arrive in a few tight clusters), the mix of ``JOB_MIX``, half with callbacks."""
    bursts = [rng.uniform(0.1, 0.8) * duration for _ in range(max(1, count // 150))]
    times = []
    for _ in range(count):
        if rng.random() < 0.2:
            times.append(min(duration, rng.choice(bursts) + rng.expovariate(4.0)))
        else:
            times.append(rng.uniform(0.0, duration))
    times.sort()
    kinds, weights = zip(*JOB_MIX, strict=True)
    jobs: list[JobPlan] = []
    for n, at in enumerate(times):
        kind = rng.choices(kinds, weights)[0]
        originals = [j for j in jobs if j.of is None and j.kind not in ("malformed", "poison")]
        if kind == "resubmit" and originals:
            first = rng.choice(originals)
            jobs.append(replace(first, at=round(at, 3), kind="resubmit", of=first.request_id))
            continue
        kind = "short" if kind == "resubmit" else kind
        low, high = _SECONDS.get(kind, (0.0, 0.0))
        jobs.append(
            JobPlan(
                at=round(at, 3),
                request_id=f"{run}-{n:05d}",
                kind=kind,
                seconds=round(rng.uniform(low, high), 3) if high else 0.0,
                output="callback" if rng.random() < 0.5 else "queue",
            )
        )
    return jobs


def fault_times(rng: random.Random, duration: float, per_minute: float) -> list[float]:
    """Start times of faults: a Poisson process at ``per_minute`` over ``duration``, so that
    faults overlap where the draw puts them close together."""
    times: list[float] = []
    t = 0.0
    rate = per_minute / 60.0
    if rate <= 0:
        return []
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            return times
        times.append(round(t, 3))
