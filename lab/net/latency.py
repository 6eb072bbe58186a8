"""AWS-like latency per service and operation, for the lab's proxy: the numbers live in one
data file (``aws_latency.toml``), each call's delay is drawn from a lognormal distribution with
that operation's p50 and p99.

A draw is a pure function of the seed, the call (service, operation) and how many calls of it
came before: a run replays the same delays for the same calls whatever order its connections
interleave in.
"""

from __future__ import annotations

import math
import random
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

from lab.errors import LabError

DATA = Path(__file__).with_name("aws_latency.toml")
MODES = ("none", "aws")
DEFAULT = "default"
_Z99 = NormalDist().inv_cdf(0.99)
_CAP = 5.0  # no draw beyond 5 times p99: a lognormal's far tail would stall a lab for seconds


class LatencyError(LabError):
    """Raised when a latency mode is unknown or its data file is malformed."""

    code = "BAD_LATENCY"


@dataclass(frozen=True)
class Spread:
    """One operation's latency: lognormal with median ``p50_ms`` and 99th percentile ``p99_ms``."""

    p50_ms: float
    p99_ms: float

    def __post_init__(self) -> None:
        if not 0 < self.p50_ms <= self.p99_ms:
            raise LatencyError(f"need 0 < p50 <= p99, got p50={self.p50_ms} p99={self.p99_ms}")

    @property
    def sigma(self) -> float:
        """The log-space standard deviation that puts p99 where it is."""
        return math.log(self.p99_ms / self.p50_ms) / _Z99

    def quantile(self, q: float) -> float:
        """The model's ``q`` quantile (0 < q < 1), in ms."""
        return self.p50_ms * math.exp(self.sigma * NormalDist().inv_cdf(q))

    def draw(self, rng: random.Random) -> float:
        """One delay in ms, capped at 5 times p99."""
        return min(self.p50_ms * math.exp(self.sigma * rng.gauss(0.0, 1.0)), _CAP * self.p99_ms)


@dataclass(frozen=True)
class Call:
    """What one HTTP request was: the AWS service (signing name) and operation."""

    service: str
    operation: str

    @property
    def name(self) -> str:
        """``service.Operation``, as counts are keyed."""
        return f"{self.service}.{self.operation}"


@dataclass(frozen=True)
class LatencyModel:
    """Spreads by service and operation; a service's ``default`` and the file's ``default``
    cover what is not named."""

    spreads: Mapping[str, Mapping[str, Spread]]
    fallback: Spread
    seed: int = 0

    def spread(self, call: Call) -> Spread:
        """The spread a call is drawn from."""
        ops = self.spreads.get(call.service, {})
        return ops.get(call.operation) or ops.get(DEFAULT) or self.fallback

    def draw_ms(self, call: Call, index: int) -> float:
        """The delay of the ``index``-th call (from 0) of this operation, in ms."""
        rng = random.Random(f"{self.seed}:{call.name}:{index}")  # noqa: S311 (delays, not secrets)
        return self.spread(call).draw(rng)


def load(path: Path = DATA, seed: int = 0) -> LatencyModel:
    """Read a latency data file; a clear error names what is wrong in it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LatencyError(f"cannot read {path}: {exc}") from None
    fallback = _spread(path, DEFAULT, data.get(DEFAULT))
    spreads: dict[str, dict[str, Spread]] = {}
    for service, ops in data.items():
        if service == DEFAULT:
            continue
        if not isinstance(ops, dict):
            raise LatencyError(f"{path}: [{service}] must be a table of operations")
        spreads[service] = {op: _spread(path, f"{service}.{op}", v) for op, v in ops.items()}
    return LatencyModel(spreads, fallback, seed)


def _spread(path: Path, where: str, value: object) -> Spread:
    if not isinstance(value, dict) or set(value) != {"p50_ms", "p99_ms"}:
        raise LatencyError(f"{path}: {where} needs exactly p50_ms and p99_ms")
    p50, p99 = value["p50_ms"], value["p99_ms"]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (p50, p99)):
        raise LatencyError(f"{path}: {where}: p50_ms and p99_ms must be numbers")
    try:
        return Spread(float(p50), float(p99))
    except LatencyError as exc:
        raise LatencyError(f"{path}: {where}: {exc}") from None


def model_for(mode: str, seed: int = 0) -> LatencyModel | None:
    """The model of a latency mode: ``none`` (no model) or ``aws`` (the data file)."""
    if mode not in MODES:
        raise LatencyError(f"unknown latency mode {mode!r}: use one of {', '.join(MODES)}")
    return load(seed=seed) if mode == "aws" else None
