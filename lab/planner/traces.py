"""Demand traces: expected job arrivals per bin of fixed length, synthetic or read from a file.

Synthetic shapes (5-minute bins, ``days`` long, rescaled afterwards like every trace):

- ``uniform``: the same rate all day.
- ``diurnal``: a raised cosine to a power, ((1 + cos(2π(t - 14:00)/day)) / 2)^p, its peak at
  14:00 and its trough (nothing) at 02:00; p is solved numerically so that the peak bin is exactly
  3x the mean bin.
- ``spike``: a flat base rate with a 30-minute burst at 8x that base every day at 12:00; the base
  is what is left of the daily volume once the burst is paid for (about 0.87 of the mean).
- ``weekly``: the diurnal profile on weekdays and 0.35 of it on Saturday and Sunday (the trace
  starts on a Monday), so a week has a slow decline, a trough and a Monday ramp.
- ``bursty``, ``bursty-2``: one-second bins by default, the way request logs count. A milder
  daily cosine (peak 2x the mean) times a lognormal noise that wanders on a 10-minute time scale
  (an AR(1) process, sd 0.35) times bursts: on average one every 3 hours, lasting an exponential
  5 minutes (mean), at 3-8x. Generated from a fixed shape seed (1 for ``bursty``, 2 for
  ``bursty-2``) with Python's seeded ``random``, so every run and machine sees the same shape;
  the counts are expected arrivals per second, not integers (the Poisson draw comes later).

Files hold either ``INDEX COUNT`` lines (hourly bins unless ``bin_seconds`` says otherwise; the
trace runs from the first index to the last, missing indices count 0) or one whitespace-separated
sequence of counts, wrapped over lines as you like (one-second bins unless told). Every line of
two fields is ``INDEX COUNT``; a first line of two fields with other lines of another width is
refused as ambiguous. Lines starting with ``#`` are comments.

Bundled traces (real, with their provenance and licence in ``traces/README.md``) carry their own
bin length: ``google-2011`` hourly submissions, ``flights-2001`` departures per minute,
``usgs-quakes`` events per second.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from lab.planner.errors import TraceError

DAY_S = 86_400.0
SYNTHETIC_BIN_S = 300.0
INDEXED_BIN_S = 3_600.0
SEQUENCE_BIN_S = 1.0
DEFAULT_DAYS = 7.0

DIURNAL_PEAK_AT_S = 14 * 3_600.0
DIURNAL_PEAK_TO_MEAN = 3.0
SPIKE_AT_S = 12 * 3_600.0
SPIKE_S = 1_800.0
SPIKE_FACTOR = 8.0

BUNDLED = {  # name: (file, its bins' length in seconds)
    "google-2011": ("google-2011.txt", INDEXED_BIN_S),
    "flights-2001": ("flights-2001.txt", 60.0),
    "usgs-quakes": ("usgs-quakes.txt", 1.0),
}


@dataclass(frozen=True)
class Trace:
    """Expected arrivals in each bin (``counts``), every bin ``bin_seconds`` long, from t = 0."""

    name: str
    counts: tuple[float, ...]
    bin_seconds: float

    @property
    def seconds(self) -> float:
        """How long the trace lasts."""
        return len(self.counts) * self.bin_seconds

    @property
    def jobs_per_day(self) -> float:
        """Mean arrivals per day over the whole trace."""
        return sum(self.counts) * DAY_S / self.seconds

    def rescaled(self, jobs_per_day: float) -> Trace:
        """The same shape with a mean of ``jobs_per_day``."""
        factor = jobs_per_day / self.jobs_per_day
        return replace(self, counts=tuple(c * factor for c in self.counts))

    def truncated(self, seconds: float) -> Trace:
        """The first ``seconds`` of the trace (whole bins, at least one)."""
        bins = max(1, math.ceil(seconds / self.bin_seconds - 1e-9))
        return replace(self, counts=self.counts[:bins])


def _day_bins(days: float, bin_s: float) -> tuple[int, int]:
    """Bins per day and in all, for a synthetic trace."""
    per_day = DAY_S / bin_s
    if bin_s <= 0 or abs(per_day - round(per_day)) > 1e-9:
        raise TraceError(f"synthetic traces need --bin-seconds that divides a day, not {bin_s:g}")
    if days <= 0:
        raise TraceError(f"--days must be positive, not {days:g}")
    return round(per_day), max(1, round(days * per_day))


def _tile(name: str, day: list[float], total: int, bin_s: float) -> Trace:
    return Trace(name, tuple(day[i % len(day)] for i in range(total)), bin_s)


def uniform(days: float = DEFAULT_DAYS, bin_s: float = SYNTHETIC_BIN_S) -> Trace:
    """The same rate in every bin."""
    per_day, total = _day_bins(days, bin_s)
    return _tile("uniform", [1.0] * per_day, total, bin_s)


def _raised_cosine(per_day: int, bin_s: float, power: float) -> list[float]:
    """One day of the diurnal profile, sampled at bin centres."""
    phases = (2 * math.pi * ((i + 0.5) * bin_s - DIURNAL_PEAK_AT_S) / DAY_S for i in range(per_day))
    return [((1 + math.cos(phase)) / 2) ** power for phase in phases]


def _peak_to_mean(day: list[float]) -> float:
    return max(day) * len(day) / sum(day)


def diurnal(days: float = DEFAULT_DAYS, bin_s: float = SYNTHETIC_BIN_S) -> Trace:
    """A daily raised-cosine profile whose peak bin is exactly 3x the mean bin."""
    per_day, total = _day_bins(days, bin_s)
    # peak/mean grows with the power (1 at p = 0, about 2.7 at p = 2): bisect for exactly 3.
    low, high = 0.0, 64.0
    for _ in range(200):
        mid = (low + high) / 2
        if _peak_to_mean(_raised_cosine(per_day, bin_s, mid)) < DIURNAL_PEAK_TO_MEAN:
            low = mid
        else:
            high = mid
    return _tile("diurnal", _raised_cosine(per_day, bin_s, (low + high) / 2), total, bin_s)


def spike(days: float = DEFAULT_DAYS, bin_s: float = SYNTHETIC_BIN_S) -> Trace:
    """A flat base with a 30-minute burst at 8x the base every day at 12:00."""
    per_day, total = _day_bins(days, bin_s)
    day = []
    for i in range(per_day):
        start = i * bin_s
        overlap = max(0.0, min(start + bin_s, SPIKE_AT_S + SPIKE_S) - max(start, SPIKE_AT_S))
        day.append(1.0 + (SPIKE_FACTOR - 1.0) * overlap / bin_s)
    return _tile("spike", day, total, bin_s)


WEEKEND_FACTOR = 0.35
BURSTY_BIN_S = 1.0
BURSTY_PEAK_POWER = 1.0  # (1 + cos) / 2 to this power: peak 2x the mean
BURSTY_NOISE_SD = 0.35
BURSTY_NOISE_S = 600.0
BURSTY_EVERY_S = 3 * 3_600.0
BURSTY_LENGTH_S = 300.0
BURSTY_FACTORS = (3.0, 8.0)


def weekly(days: float = DEFAULT_DAYS, bin_s: float = SYNTHETIC_BIN_S) -> Trace:
    """The diurnal profile on weekdays, ``WEEKEND_FACTOR`` of it at the weekend."""
    _, total = _day_bins(days, bin_s)
    day = diurnal(1, bin_s).counts
    week = [c * (WEEKEND_FACTOR if d >= 5 else 1.0) for d in range(7) for c in day]
    return _tile("weekly", week, total, bin_s)


def bursty(days: float, bin_s: float, shape_seed: int, name: str) -> Trace:
    """Per-bin expected counts: a daily cosine x wandering lognormal noise x random bursts."""
    _, total = _day_bins(days, bin_s)
    rng = random.Random(f"bursty:{shape_seed}")  # noqa: S311 -- a replayable shape, no secrets
    keep = math.exp(-bin_s / BURSTY_NOISE_S)  # AR(1): what is left of the noise after one bin
    shake = BURSTY_NOISE_SD * math.sqrt(1 - keep * keep)
    noise = rng.gauss(0.0, BURSTY_NOISE_SD)
    burst_end, burst_factor = 0.0, 1.0
    next_burst = rng.expovariate(1 / BURSTY_EVERY_S)
    counts = []
    for i in range(total):
        start = i * bin_s
        if start >= next_burst:
            burst_end = start + rng.expovariate(1 / BURSTY_LENGTH_S)
            burst_factor = rng.uniform(*BURSTY_FACTORS)
            next_burst = start + rng.expovariate(1 / BURSTY_EVERY_S)
        phase = 2 * math.pi * (start + bin_s / 2 - DIURNAL_PEAK_AT_S) / DAY_S
        daily = ((1 + math.cos(phase)) / 2) ** BURSTY_PEAK_POWER + 0.05
        noise = keep * noise + shake * rng.gauss(0.0, 1.0)
        counts.append(daily * math.exp(noise) * (burst_factor if start < burst_end else 1.0))
    return Trace(name, tuple(counts), bin_s)


SYNTHETIC: dict[str, Callable[[float, float], Trace]] = {
    "uniform": uniform,
    "diurnal": diurnal,
    "spike": spike,
    "weekly": weekly,
    "bursty": lambda days, bin_s: bursty(days, bin_s, 1, "bursty"),
    "bursty-2": lambda days, bin_s: bursty(days, bin_s, 2, "bursty-2"),
}
DEFAULT_BIN_S = {"bursty": BURSTY_BIN_S, "bursty-2": BURSTY_BIN_S}


def _number(token: str, where: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise TraceError(f"{where}: {token!r} is not a number") from None
    if not math.isfinite(value):
        raise TraceError(f"{where}: {token!r} is not a finite number")
    if value < 0:
        raise TraceError(f"{where}: count {token} is negative")
    return value


def _indexed(rows: list[tuple[int, list[str]]], name: str) -> list[float]:
    counts: list[float] = []
    first = last = -1
    for line, (index_text, count_text) in rows:
        where = f"{name}, line {line}"
        try:
            index = int(index_text)
        except ValueError:
            raise TraceError(f"{where}: index {index_text!r} is not a whole number") from None
        if index < 0 or index <= last:
            raise TraceError(f"{where}: index {index} must be >= 0 and above {last}")
        if first < 0:
            first = index
        counts.extend([0.0] * (index - first - len(counts)))  # missing indices count 0
        counts.append(_number(count_text, where))
        last = index
    return counts


def parse(text: str, name: str, bin_seconds: float | None = None) -> Trace:
    """A trace from file contents: ``INDEX COUNT`` lines or one sequence of counts."""
    rows = [
        (n, line.split())
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not rows:
        raise TraceError(f"{name}: no counts (the file is empty)")
    widths = {len(fields) for _, fields in rows}
    if len(rows) > 1 and widths == {2}:
        counts, default_bin = _indexed(rows, name), INDEXED_BIN_S
    elif len(rows) == 1 or len(rows[0][1]) != 2:
        counts = [_number(t, f"{name}, line {n}") for n, fields in rows for t in fields]
        default_bin = SEQUENCE_BIN_S
    else:
        odd = next((n, len(f)) for n, f in rows if len(f) != len(rows[0][1]))
        raise TraceError(
            f"{name}: mixed formats (line {rows[0][0]} has {len(rows[0][1])} fields, line "
            f"{odd[0]} has {odd[1]}): use INDEX COUNT on every line, or one sequence of counts"
        )
    bin_s = default_bin if bin_seconds is None else bin_seconds
    if bin_s <= 0:
        raise TraceError(f"--bin-seconds must be positive, not {bin_s:g}")
    if sum(counts) <= 0:
        raise TraceError(f"{name}: every count is 0; there is nothing to replay")
    return Trace(name, tuple(counts), bin_s)


def read(path: Path, bin_seconds: float | None = None) -> Trace:
    """A trace from a file (see ``parse``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"cannot read trace {path}: {exc}") from None
    return parse(text, str(path), bin_seconds)


def bundled(name: str, bin_seconds: float | None = None) -> Trace:
    """A trace shipped with the planner, by name, in its own bins unless ``bin_seconds`` says."""
    file, bin_s = BUNDLED[name]
    text = resources.files("lab.planner").joinpath("traces", file).read_text("utf-8")
    return replace(parse(text, name, bin_s if bin_seconds is None else bin_seconds), name=name)


def load(
    spec: str, jobs_per_day: float, days: float | None = None, bin_seconds: float | None = None
) -> Trace:
    """Resolve ``spec`` (a synthetic or bundled name, else a file), cut to ``days`` if given, and
    rescale to ``jobs_per_day``. Synthetic traces are ``DEFAULT_DAYS`` long unless told."""
    if jobs_per_day <= 0:
        raise TraceError(f"--jobs-per-day must be positive, not {jobs_per_day:g}")
    if spec in SYNTHETIC:
        default_bin = DEFAULT_BIN_S.get(spec, SYNTHETIC_BIN_S)
        bin_s = default_bin if bin_seconds is None else bin_seconds
        trace = SYNTHETIC[spec](DEFAULT_DAYS if days is None else days, bin_s)
    else:
        if spec in BUNDLED:
            trace = bundled(spec, bin_seconds)
        elif Path(spec).is_file():
            trace = read(Path(spec), bin_seconds)
        else:
            known = ", ".join([*SYNTHETIC, *BUNDLED])
            raise TraceError(f"unknown trace {spec!r}: not one of {known}, and no such file")
        if days is not None:
            if days <= 0:
                raise TraceError(f"--days must be positive, not {days:g}")
            trace = trace.truncated(days * DAY_S)
            if sum(trace.counts) <= 0:
                raise TraceError(f"{spec}: no jobs in the first {days:g} days")
    return trace.rescaled(jobs_per_day)
