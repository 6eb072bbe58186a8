"""Run one job of a service on this machine: the fast loop while writing a service.

No queue, no S3, no claim: the request's parameters go through the very same filter
(``Service.argv``) and the binary through the very same executor, environment and judge as on
an instance. The result file, if the service makes one, is copied into ``out_dir``.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from worker.errors import MissingInput
from worker.handle import executor
from worker.handle.ending import Verdict, judge
from worker.handle.job import BINARY_ENV
from worker.handle.services import Registry

_HEAD = 64 * 1024


@dataclass(frozen=True)
class LocalRun:
    """What one local run did: its argv, the verdict, its whole output, its result file."""

    argv: tuple[str, ...]
    verdict: Verdict
    stdout: bytes
    stderr: bytes
    result: Path | None


def run_here(
    registry: Registry,
    name: str,
    input_file: Path | None,
    parameters: Sequence[tuple[str, str]],
    out_dir: Path,
    speed: float = 1.0,
) -> LocalRun:
    """Run service ``name`` on ``input_file``; raise a ``RequestError`` as the worker would."""
    service = registry.get(name)
    if service.needs_input and input_file is None:
        raise MissingInput(f"service {name!r} needs an input: --input FILE")
    with tempfile.TemporaryDirectory(prefix="fleetlab-run-") as tmp:
        scratch = Path(tmp)
        input_path = None
        if service.needs_input and input_file is not None:
            input_path = scratch / f"input{input_file.suffix}"
            shutil.copyfile(input_file, input_path)
        output_path = scratch / service.result_name(parameters)
        argv = service.argv(
            parameters,
            python=sys.executable,
            input_path=str(input_path or ""),
            output_path=str(output_path),
            speed=speed,
        )
        ending = executor.run(
            argv,
            cwd=scratch,
            timeout_s=service.timeout_s,
            max_output_bytes=_HEAD,  # the whole output is read from its files below
            env=BINARY_ENV | service.environment() | {"HOME": str(scratch)},
        )
        # One receive of one: a crash is answered here, not retried.
        verdict = judge(ending, 1, 1)
        stdout, stderr = (_read(scratch / executor.STREAM_FILES[s]) for s in ("stdout", "stderr"))
        result = None
        if service.output == "file" and output_path.is_file():
            out_dir.mkdir(parents=True, exist_ok=True)
            result = Path(shutil.copyfile(output_path, out_dir / output_path.name))
    return LocalRun(tuple(argv), verdict, stdout, stderr, result)


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""
