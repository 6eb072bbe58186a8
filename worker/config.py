"""Worker configuration: one frozen dataclass, built once at the edge from the environment.

Nothing else in the worker reads ``os.environ``; everything takes a ``WorkerConfig`` (or the part
of it it needs). Variables are ``FLEETLAB_*``; the AWS ones are the usual ``AWS_*`` names.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from worker.errors import ConfigError

ENVIRONMENTS = ("local", "localstack", "aws")
# The inline head of an output may grow six-fold as XML (escaping, U+FFFD for bytes XML cannot
# carry); at 128 KiB a response stays under SQS's 1 MiB and the callback receiver's 1 MiB.
MAX_INLINE_OUTPUT = 128 * 1024
MAX_CONCURRENCY = 64  # jobs one worker runs at once, at most (its cap, and each service's own)


@dataclass(frozen=True)
class UrlPolicy:
    """Which outbound destinations a worker may connect to (inputs, callbacks, redirects)."""

    schemes: frozenset[str] = frozenset({"http", "https", "s3"})
    allow_loopback: bool = False
    allow_private: bool = False


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may cost: sizes in bytes, times in seconds."""

    max_request_bytes: int = 16 * 1024
    max_offloaded_request_bytes: int = 1024 * 1024  # a body the extended client put in S3
    max_input_bytes: int = 256 * 1024 * 1024
    max_output_bytes: int = 64 * 1024
    max_callback_response_bytes: int = 64 * 1024
    fetch_timeout_s: float = 60.0
    callback_timeout_s: float = 10.0
    default_run_timeout_s: float = 900.0


@dataclass(frozen=True)
class Retry:
    """Capped exponential backoff with full jitter for callback delivery."""

    attempts: int = 5
    base_s: float = 0.5
    cap_s: float = 8.0


@dataclass(frozen=True)
class AwsTarget:
    """Where the AWS calls go: the same code talks to moto, LocalStack or AWS."""

    env: str = "local"
    region: str = "us-east-1"
    endpoint_url: str | None = None


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs to know, decided once at start-up."""

    aws: AwsTarget
    request_queue_url: str
    response_queue_url: str
    bucket: str
    log_group: str
    worker_id: str
    work_dir: Path
    dead_letter_queue_url: str | None = None
    delete_offloaded: bool = True  # delete an offloaded request body once its message is settled
    services_file: Path | None = None  # the built-ins, from another file (tests)
    services_dir: Path | None = None  # a services folder of the team's own, loaded beside them
    limits: Limits = field(default_factory=Limits)
    retry: Retry = field(default_factory=Retry)
    url_policy: UrlPolicy = field(default_factory=UrlPolicy)
    wait_time_s: int = 20
    batch_size: int = 10
    visibility_timeout_s: int = 30
    heartbeat_interval_s: float = 10.0
    hold_s: float = 1.0
    # Jobs one worker runs at once, over all services (each service's own `concurrency` is
    # its limit within it): a light job mostly waits on SQS and S3, so several overlap well.
    concurrency: int = 4
    max_receive_count: int = 5
    speed: float = 1.0
    log_flush_s: float = 1.0
    status_interval_s: float = 5.0
    code_version: str = "dev"
    # The instance's metadata, for spot notices: EC2's, or AWS_EC2_METADATA_SERVICE_ENDPOINT;
    # None off an instance (a plain lab worker, metadata disabled): no notices to watch.
    metadata_url: str | None = None
    notice_poll_s: float = 2.0
    notice_margin_s: float = 2.0  # kept free before a reclaim to deliver and settle
    rebalance_long_s: float = 120.0  # after a rebalance, jobs allowed longer are left to others


def _get(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or value == "":
        raise ConfigError(f"{name} is not set")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not a number") from exc
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean")


def metadata_url(env: Mapping[str, str]) -> str | None:
    """The instance metadata endpoint botocore would use: none when disabled; the standard
    variable's; EC2's own on AWS; none elsewhere (a plain lab worker is no instance)."""
    if env.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return None
    if env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT"):
        return env["AWS_EC2_METADATA_SERVICE_ENDPOINT"]
    return "http://169.254.169.254/" if env.get("FLEETLAB_ENV") == "aws" else None


def aws_target_from_env(env: Mapping[str, str]) -> AwsTarget:
    """Read the environment name, region and endpoint (``AWS_ENDPOINT_URL`` is honoured)."""
    name = env.get("FLEETLAB_ENV", "local")
    if name not in ENVIRONMENTS:
        raise ConfigError(f"FLEETLAB_ENV={name!r} is not one of {', '.join(ENVIRONMENTS)}")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = env.get("FLEETLAB_ENDPOINT_URL") or env.get("AWS_ENDPOINT_URL") or None
    return AwsTarget(env=name, region=region, endpoint_url=endpoint)


def load_worker_config(env: Mapping[str, str] | None = None) -> WorkerConfig:
    """Build the worker's configuration from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    aws = aws_target_from_env(env)
    lab = aws.env != "aws"
    limits = Limits(
        max_request_bytes=int(_number(env, "FLEETLAB_MAX_REQUEST_BYTES", 16 * 1024)),
        max_input_bytes=int(_number(env, "FLEETLAB_MAX_INPUT_BYTES", 256 * 1024 * 1024)),
        max_offloaded_request_bytes=int(
            _number(env, "FLEETLAB_MAX_OFFLOADED_REQUEST_BYTES", 1024 * 1024)
        ),
        max_output_bytes=int(_number(env, "FLEETLAB_MAX_OUTPUT_BYTES", 64 * 1024)),
        fetch_timeout_s=_number(env, "FLEETLAB_FETCH_TIMEOUT", 60.0),
        callback_timeout_s=_number(env, "FLEETLAB_CALLBACK_TIMEOUT", 10.0),
        default_run_timeout_s=_number(env, "FLEETLAB_RUN_TIMEOUT", 900.0),
    )
    retry = Retry(
        attempts=max(1, int(_number(env, "FLEETLAB_CALLBACK_ATTEMPTS", 5))),
        base_s=_number(env, "FLEETLAB_CALLBACK_BACKOFF", 0.5),
        cap_s=_number(env, "FLEETLAB_CALLBACK_BACKOFF_CAP", 8.0),
    )
    policy = UrlPolicy(
        allow_loopback=_flag(env, "FLEETLAB_ALLOW_LOOPBACK_URLS", lab),
        allow_private=_flag(env, "FLEETLAB_ALLOW_PRIVATE_URLS", False),
    )
    if limits.max_output_bytes > MAX_INLINE_OUTPUT:
        raise ConfigError(
            f"FLEETLAB_MAX_OUTPUT_BYTES must be at most {MAX_INLINE_OUTPUT} (128 KiB): past it a "
            "response could outgrow SQS's 1 MiB; longer outputs go to S3 whole anyway"
        )
    services = env.get("FLEETLAB_SERVICES_FILE")
    own = env.get("FLEETLAB_SERVICES_DIR")
    visibility = int(_number(env, "FLEETLAB_VISIBILITY_TIMEOUT", 30))
    if visibility < 2:
        raise ConfigError("FLEETLAB_VISIBILITY_TIMEOUT must be at least 2 seconds")
    return WorkerConfig(
        aws=aws,
        request_queue_url=_get(env, "FLEETLAB_REQUEST_QUEUE_URL"),
        response_queue_url=_get(env, "FLEETLAB_RESPONSE_QUEUE_URL"),
        dead_letter_queue_url=env.get("FLEETLAB_DEAD_LETTER_QUEUE_URL") or None,
        delete_offloaded=_flag(env, "FLEETLAB_DELETE_OFFLOADED", True),
        bucket=_get(env, "FLEETLAB_BUCKET"),
        log_group=_get(env, "FLEETLAB_LOG_GROUP"),
        worker_id=env.get("FLEETLAB_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}",
        work_dir=Path(env.get("FLEETLAB_WORK_DIR") or Path.cwd() / "work"),
        services_file=Path(services) if services else None,
        services_dir=Path(own) if own else None,
        limits=limits,
        retry=retry,
        url_policy=policy,
        wait_time_s=min(20, int(_number(env, "FLEETLAB_WAIT_TIME", 20))),
        batch_size=min(10, max(1, int(_number(env, "FLEETLAB_BATCH_SIZE", 10)))),
        visibility_timeout_s=visibility,
        heartbeat_interval_s=_number(env, "FLEETLAB_HEARTBEAT_INTERVAL", visibility / 3),
        hold_s=_number(env, "FLEETLAB_HOLD_SECONDS", 1.0),
        concurrency=_concurrency(env),
        max_receive_count=max(1, int(_number(env, "FLEETLAB_MAX_RECEIVE_COUNT", 5))),
        speed=_number(env, "FLEETLAB_SPEED", 1.0) or 1.0,
        log_flush_s=_number(env, "FLEETLAB_LOG_FLUSH", 1.0),
        status_interval_s=_number(env, "FLEETLAB_STATUS_INTERVAL", 5.0),
        code_version=env.get("FLEETLAB_CODE_VERSION") or "dev",
        metadata_url=metadata_url(env),
        notice_poll_s=_number(env, "FLEETLAB_NOTICE_POLL", 2.0) or 2.0,
        notice_margin_s=_number(env, "FLEETLAB_NOTICE_MARGIN", 2.0),
        rebalance_long_s=_number(env, "FLEETLAB_REBALANCE_LONG", 120.0),
    )


def _concurrency(env: Mapping[str, str]) -> int:
    cap = _number(env, "FLEETLAB_CONCURRENCY", 4)
    if cap != int(cap) or not 1 <= cap <= MAX_CONCURRENCY:
        raise ConfigError(f"FLEETLAB_CONCURRENCY must be an integer from 1 to {MAX_CONCURRENCY}")
    return int(cap)


@dataclass(frozen=True)
class ScalerSettings:
    """How the scaler loop runs (the policy's own settings are in ``scaler/config.json``)."""

    aws: AwsTarget
    request_queue_url: str
    bucket: str
    log_group: str
    fleet: str  # the fleet's name: its launch template and the tag on its instances
    owner: str  # who competes for the lease: the instance id, or "lab-scaler"
    work_dir: Path
    interval_s: float = 30.0
    lease_s: float = 90.0
    log_flush_s: float = 1.0


def load_scaler_settings(env: Mapping[str, str] | None = None) -> ScalerSettings:
    """Build the scaler loop's settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    aws = aws_target_from_env(env)
    interval = _number(env, "FLEETLAB_SCALER_INTERVAL", 30.0)
    lease = _number(env, "FLEETLAB_SCALER_LEASE", 3 * interval)
    if interval <= 0 or lease < 2 * interval:
        raise ConfigError(
            "FLEETLAB_SCALER_LEASE must be at least twice FLEETLAB_SCALER_INTERVAL (> 0), "
            "or the leader's lease lapses between its own ticks"
        )
    return ScalerSettings(
        aws=aws,
        request_queue_url=_get(env, "FLEETLAB_REQUEST_QUEUE_URL"),
        bucket=_get(env, "FLEETLAB_BUCKET"),
        log_group=_get(env, "FLEETLAB_LOG_GROUP"),
        fleet=env.get("FLEETLAB_FLEET") or aws.env,
        owner=env.get("FLEETLAB_WORKER_ID") or f"{socket.gethostname()}-{os.getpid()}",
        work_dir=Path(env.get("FLEETLAB_WORK_DIR") or Path.cwd() / "work"),
        interval_s=interval,
        lease_s=lease,
        log_flush_s=_number(env, "FLEETLAB_LOG_FLUSH", 1.0),
    )
