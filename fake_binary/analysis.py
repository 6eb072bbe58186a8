"""Pure functions of the fake binary: header parsing, duration, fault choice and the result."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

R_MIN = -1000
R_MAX = 1000
FAULTS = ("crash", "hang", "exit", "garbage")
HEADER_MAGIC = "FAKEVIDEO"
HEADER_MAX_BYTES = 256
DEFAULT_BYTES_PER_SECOND = 100_000
ROWS = 2
COLUMNS = 10


@dataclass(frozen=True)
class Header:
    """What an optional ``FAKEVIDEO key=value ...`` first line states, plus the tokens ignored."""

    duration: float | None = None
    fault: str | None = None
    ignored: tuple[str, ...] = ()


def header_line(head: bytes) -> bytes:
    """Return the first line of ``head`` as the header sees it: at most 256 bytes, no newline."""
    return head[:HEADER_MAX_BYTES].split(b"\n", 1)[0].rstrip(b"\r")


def parse_header(first_line: bytes) -> Header:
    """Parse a first line; any file is valid input, so a bad token is reported, never fatal."""
    try:
        tokens = first_line.decode("ascii").split()
    except UnicodeDecodeError:
        return Header()
    if not tokens or tokens[0] != HEADER_MAGIC:
        return Header()
    duration: float | None = None
    fault: str | None = None
    ignored: list[str] = []
    for token in tokens[1:]:
        key, _, value = token.partition("=")
        if key == "duration" and (parsed := _parse_duration(value)) is not None:
            duration = parsed
        elif key == "fault" and value in FAULTS:
            fault = value
        else:
            ignored.append(token)
    return Header(duration=duration, fault=fault, ignored=tuple(ignored))


def _parse_duration(value: str) -> float | None:
    """Return ``value`` as a finite, non-negative number of seconds, or None."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def duration_for(size: int, header: Header, bytes_per_second: int) -> float:
    """Return the header's duration, else ``size / bytes_per_second`` seconds."""
    if bytes_per_second <= 0:
        raise ValueError(f"bytes_per_second must be positive, got {bytes_per_second}")
    if header.duration is not None:
        return header.duration
    return size / bytes_per_second


def resolve_fault(flag: str | None, header: Header, env: str | None) -> str | None:
    """Return the fault to simulate: the flag wins over the header, which wins over the env."""
    for candidate in (flag, header.fault, env or None):
        if candidate is not None:
            if candidate not in FAULTS:
                raise ValueError(f"unknown fault {candidate!r}; expected one of {FAULTS}")
            return candidate
    return None


def analyse(data_digest: bytes, r: int) -> list[list[int]]:
    """Return 2 rows of 10 integers in [0, 100), a function of (digest, r) only."""
    if not R_MIN <= r <= R_MAX:
        raise ValueError(f"r must be in [{R_MIN}, {R_MAX}], got {r}")
    # R is hashed in, not added mod 100, so that R and R + 100 still give different results.
    mixed = hashlib.sha256(data_digest + r.to_bytes(2, "big", signed=True)).digest()
    values = [byte % 100 for byte in mixed[: ROWS * COLUMNS]]
    return [values[row * COLUMNS : (row + 1) * COLUMNS] for row in range(ROWS)]


def format_result(rows: list[list[int]]) -> str:
    """Render rows as the binary's listing: space-separated integers, one row per line."""
    return "".join(" ".join(str(value) for value in row) + "\n" for row in rows)
