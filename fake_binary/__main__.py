"""Command line of the fake binary: ``fake-binary [options] INPUT`` prints two rows of numbers."""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import NoReturn

from fake_binary.analysis import (
    DEFAULT_BYTES_PER_SECOND,
    FAULTS,
    HEADER_MAX_BYTES,
    R_MAX,
    R_MIN,
    analyse,
    duration_for,
    format_result,
    header_line,
    parse_header,
    resolve_fault,
)
from fake_binary.burn import burn

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SIMULATED_FAILURE = 3
EXIT_NO_INPUT = 66  # sysexits EX_NOINPUT
SPEED_ENV = "FAKE_BINARY_SPEED"
FAULT_ENV = "FAKE_BINARY_FAULT"
CRASH_WORK_SECONDS = 0.05
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class InputSummary:
    """What the binary needs from its input: content digest, size and header line."""

    digest: bytes
    size: int
    first_line: bytes


def main(argv: list[str] | None = None) -> int:
    """Run the fake binary on ``argv`` (default ``sys.argv[1:]``) and return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and bad arguments; we return instead
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        speed = resolve_speed(args.speed, os.environ.get(SPEED_ENV))
    except ValueError as exc:
        return _fail(str(exc), EXIT_USAGE)
    try:
        summary = read_input(args.input)
    except OSError as exc:
        return _fail(f"cannot read input {args.input!r}: {exc.strerror or exc}", EXIT_NO_INPUT)
    header = parse_header(summary.first_line)
    for token in header.ignored:
        print(f"fake_binary: ignoring header token {token!r}", file=sys.stderr)
    try:
        fault = resolve_fault(args.fault, header, os.environ.get(FAULT_ENV))
    except ValueError as exc:
        return _fail(f"{FAULT_ENV}: {exc}", EXIT_USAGE)
    if fault is not None:
        return simulate_fault(fault, args.threads)
    burn(duration_for(summary.size, header, args.bytes_per_second) * speed, args.threads)
    sys.stdout.write(format_result(analyse(summary.digest, args.R)))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; every type check exits 2 through argparse."""
    parser = argparse.ArgumentParser(
        prog="fake_binary", description="Stand-in for the video analysis binary."
    )
    parser.add_argument(
        "--R", type=_r_value, default=0, help=f"integer in [{R_MIN}, {R_MAX}] (default 0)"
    )
    parser.add_argument(
        "--speed",
        type=_speed_value,
        default=None,
        help=f"CPU seconds per video second (default ${SPEED_ENV} or 1.0)",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=os.cpu_count() or 1, help="burning threads"
    )
    parser.add_argument(
        "--bytes-per-second",
        type=_positive_int,
        default=DEFAULT_BYTES_PER_SECOND,
        help="input bytes per video second when the header states no duration",
    )
    parser.add_argument("--fault", choices=FAULTS, default=None, help="simulate a failure")
    parser.add_argument("input", metavar="INPUT", help="any file")
    return parser


def _r_value(text: str) -> int:
    """Parse ``--R``: an integer within [R_MIN, R_MAX]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not R_MIN <= value <= R_MAX:
        raise argparse.ArgumentTypeError(f"{value} is outside [{R_MIN}, {R_MAX}]")
    return value


def _speed_value(text: str) -> float:
    """Parse a speed factor: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"speed must be finite and >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    """Parse an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def resolve_speed(flag: float | None, env: str | None) -> float:
    """Return the flag's speed, else the env's, else 1.0; a bad env value raises ValueError."""
    if flag is not None:
        return flag
    if not env:
        return 1.0
    try:
        return _speed_value(env)
    except argparse.ArgumentTypeError as exc:
        raise ValueError(f"{SPEED_ENV}: {exc}") from None


def read_input(path: str) -> InputSummary:
    """Hash ``path`` in chunks so a multi-gigabyte video never sits in memory."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as stream:
        head = stream.read(HEADER_MAX_BYTES)
        chunk = head
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            chunk = stream.read(_CHUNK_BYTES)
    return InputSummary(digest=digest.digest(), size=size, first_line=header_line(head))


def simulate_fault(fault: str, threads: int) -> int:
    """Fail the way the real binary sometimes does; returns only for ``exit`` and ``garbage``."""
    if fault == "crash":
        crash(threads)
    if fault == "hang":
        hang()
    if fault == "garbage":
        sys.stdout.flush()
        sys.stdout.buffer.write(garbage_payload())
        sys.stdout.buffer.flush()
        return EXIT_OK
    return _fail("simulated failure", EXIT_SIMULATED_FAILURE)


def crash(threads: int) -> NoReturn:
    """Do a little work, then die by SIGABRT like a native crash."""
    burn(CRASH_WORK_SECONDS, threads)
    # A simulated crash must not litter the working directory with core files.
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    sys.stdout.flush()
    sys.stderr.flush()
    os.abort()


def hang() -> NoReturn:
    """Sleep until killed, printing nothing, like a binary stuck on a lock."""
    while True:
        time.sleep(3600)


def garbage_payload() -> bytes:
    """Return output hostile to XML: bad UTF-8, control bytes, ``]]>``, ``<``, ``&``, long line."""
    return b"".join(
        [
            b"1 2 3 <not-a-tag> & ]]> \xff\xfe\xc3\x28 \x00\x07\x1b[31m\n",
            b"<![CDATA[ ]]> &amp; &#0; \x80\x81\xbf\n",
            b"x" * 100_000 + b"\n",
        ]
    )


def _fail(message: str, code: int) -> int:
    """Report ``message`` on stderr and return ``code``."""
    print(f"fake_binary: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
