"""The run step: fetch the input, run the service's binary, store a result file, answer.

Everything here works in one scratch directory per job, removed afterwards. The binary gets a
minimal environment: no AWS credentials and nothing else of the worker's leaks into it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from worker.config import WorkerConfig
from worker.errors import (
    ClaimLost,
    ExecutionError,
    ExecutionTimeout,
    FetchError,
    InputTooLarge,
    MissingInput,
)
from worker.handle import executor
from worker.handle.request import InputSpec, Request
from worker.handle.response import OutputFile, Response, decode_output, success
from worker.handle.services import Service
from worker.net.http import SafeHttp
from worker.net.urls import check_url
from worker.state.layout import result_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
_CHUNK = 1 << 20
_BINARY_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class JobContext:
    """What the run step needs from the worker; no queue, no claim."""

    config: WorkerConfig
    http: SafeHttp
    s3: S3Client


def run_job(
    ctx: JobContext,
    request: Request,
    service: Service,
    message_id: str,
    key: str,
    cancel: threading.Event,
) -> Response:
    """Run ``request`` and return its success response; raise a ``RequestError`` on failure."""
    scratch = ctx.config.work_dir / "jobs" / key
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        input_path = _fetch(ctx, request.input, scratch) if service.needs_input else None
        output_path = scratch / f"result{service.output_suffix}"
        argv = service.argv(
            request.parameters,
            python=sys.executable,
            input_path=str(input_path or ""),
            output_path=str(output_path),
            speed=ctx.config.speed,
        )
        try:
            result = executor.run(
                argv,
                cwd=scratch,
                timeout_s=min(service.timeout_s, ctx.config.limits.default_run_timeout_s),
                max_output_bytes=ctx.config.limits.max_output_bytes,
                env=_BINARY_ENV | {"HOME": str(scratch)},
                cancel=cancel,
            )
        except ExecutionTimeout:
            if cancel.is_set():
                raise ClaimLost("claim lost while the binary ran; run abandoned") from None
            raise
        stream = result.stderr if service.output == "stderr" else result.stdout
        files = (_store(ctx, output_path, key),) if service.output == "file" else ()
        return success(
            message_id=message_id,
            service=service.name,
            request_id=request.request_id,
            raw_output=decode_output(stream, ctx.config.limits.max_output_bytes),
            seconds=result.seconds,
            files=files,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fetch(ctx: JobContext, spec: InputSpec | None, scratch: Path) -> Path:
    if spec is None:
        raise MissingInput("this service needs an <input>")
    suffix = _SUFFIX.fullmatch(PurePosixPath(urlsplit(spec.url).path).suffix)
    dest = scratch / f"input{suffix.group(0) if suffix else ''}"
    limits = ctx.config.limits
    if spec.type == "s3":
        check_url(spec.url, ctx.config.url_policy)  # bucket and key well-formed
        _download_s3(ctx.s3, spec.url, dest, limits.max_input_bytes)
        return dest
    # download() checks the URL (and every redirect) itself; a host that does not resolve
    # is an unavailable input there, not a refused one.
    auth = (spec.credentials.username, spec.credentials.password) if spec.credentials else None
    ctx.http.download(
        spec.url,
        dest,
        auth=auth,
        max_bytes=limits.max_input_bytes,
        timeout_s=limits.fetch_timeout_s,
    )
    return dest


def _download_s3(s3: S3Client, url: str, dest: Path, max_bytes: int) -> None:
    parts = urlsplit(url)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    try:
        reply = s3.get_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise FetchError(f"cannot fetch input s3://{bucket}/{key}: {_reason(exc)}") from None
    size = reply.get("ContentLength", 0)
    if size > max_bytes:
        reply["Body"].close()
        raise InputTooLarge(f"input is {size} bytes; the limit is {max_bytes}")
    written = 0
    with dest.open("wb") as out:
        for chunk in iter(lambda: reply["Body"].read(_CHUNK), b""):
            written += len(chunk)
            if written > max_bytes:
                raise InputTooLarge(f"input is over the limit of {max_bytes} bytes")
            out.write(chunk)


def _store(ctx: JobContext, path: Path, key: str) -> OutputFile:
    if not path.is_file():
        raise ExecutionError("the service produced no result file")
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    object_key = result_key(key, path.name)
    ctx.s3.upload_file(str(path), ctx.config.bucket, object_key)
    return OutputFile(
        url=f"s3://{ctx.config.bucket}/{object_key}", size=size, sha256=digest.hexdigest()
    )


def _reason(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__
