"""The run step: fetch the input, run the service's binary, judge its ending, store a result.

It takes a validated ``Job`` (``worker.handle.validate``) and checks nothing again. Everything
here works in one scratch directory per job, removed afterwards. The binary gets a minimal
environment: no AWS credentials and nothing else of the worker's leaks into it.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from worker.config import WorkerConfig
from worker.errors import ExecutionError, FetchError, InputTooLarge
from worker.handle import executor
from worker.handle.ending import Failed, Fenced, Retry, Succeeded, judge
from worker.handle.request import InputSpec
from worker.handle.response import OutputFile, Response, decode_output, success
from worker.handle.validate import Job
from worker.net.http import SafeHttp
from worker.state.layout import result_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_CHUNK = 1 << 20
BINARY_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class JobContext:
    """What the run step needs from the worker; no queue, no claim."""

    config: WorkerConfig
    http: SafeHttp
    s3: S3Client


@dataclass(frozen=True)
class Answer:
    """Answer the request with ``response``; ``dead_letter``: and keep it for the DLQ too."""

    response: Response
    dead_letter: bool = False


def run_job(
    ctx: JobContext, job: Job, receive_count: int, cancel: threading.Event
) -> Answer | Failed | Retry | Fenced:
    """Fetch, run and judge ``job``; a success comes back as ``Answer`` with its response.

    Trusts ``job`` as validated. Failures to fetch or store (``RequestError``) propagate: the
    caller answers them with an error response.
    """
    shutil.rmtree(job.scratch, ignore_errors=True)
    job.scratch.mkdir(parents=True)
    try:
        if job.fetch is not None and job.input_path is not None:
            _fetch(ctx, job.fetch, job.input_path)
        ending = executor.run(
            list(job.argv),
            cwd=job.scratch,
            timeout_s=min(job.service.timeout_s, ctx.config.limits.default_run_timeout_s),
            max_output_bytes=ctx.config.limits.max_output_bytes,
            env=BINARY_ENV | job.service.environment() | {"HOME": str(job.scratch)},
            cancel=cancel,
        )
        verdict = judge(ending, receive_count, ctx.config.max_receive_count)
        if not isinstance(verdict, Succeeded):
            return verdict
        ran, service = verdict.ran, job.service
        name = "stderr" if service.output == "stderr" else "stdout"
        stream = ran.stderr if name == "stderr" else ran.stdout
        # In result mode two runs of one request may overlap and only one response is published:
        # each run stores its files under a folder of its own, so the loser's upload can never
        # replace the file the winner's response names (age, for one, never encrypts alike twice).
        run = secrets.token_hex(4) if service.claim == "result" else None
        files = [_store(ctx, job.output_path, job.key, run)] if service.output == "file" else []
        limit = ctx.config.limits.max_output_bytes
        whole = None
        if len(stream) > limit:  # too long to go inline: stored whole, its head inline
            path = job.scratch / executor.STREAM_FILES[name]
            whole = _store(ctx, path, job.key, run, name=f"{name}.txt", stream=name)
            files.append(whole)
        return Answer(
            success(
                message_id=job.message_id,
                service=service.name,
                request_id=job.request.request_id,
                raw_output=decode_output(stream, limit, whole),
                seconds=ran.seconds,
                files=tuple(files),
            )
        )
    finally:
        shutil.rmtree(job.scratch, ignore_errors=True)


def _fetch(ctx: JobContext, spec: InputSpec, dest: Path) -> None:
    limits = ctx.config.limits
    if spec.type == "s3":
        _download_s3(ctx.s3, spec.url, dest, limits.max_input_bytes)
        return
    auth = (spec.credentials.username, spec.credentials.password) if spec.credentials else None
    # Validation checked this URL; download() checks it (and each redirect) again as it connects:
    # defence in depth on DNS answers that may have changed since, not a second validation.
    ctx.http.download(
        spec.url,
        dest,
        auth=auth,
        max_bytes=limits.max_input_bytes,
        timeout_s=limits.fetch_timeout_s,
    )


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


def _store(
    ctx: JobContext,
    path: Path,
    key: str,
    run: str | None,
    name: str | None = None,
    stream: str | None = None,
) -> OutputFile:
    if not path.is_file():
        raise ExecutionError("the service produced no result file")
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    object_key = result_key(key, name or path.name, run)
    ctx.s3.upload_file(str(path), ctx.config.bucket, object_key)
    return OutputFile(
        url=f"s3://{ctx.config.bucket}/{object_key}",
        size=size,
        sha256=digest.hexdigest(),
        stream=stream,
    )


def _reason(exc: BotoCoreError | ClientError) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "error"))
    return type(exc).__name__
