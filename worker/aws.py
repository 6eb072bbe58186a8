"""boto3 clients for one ``AwsTarget``: the same calls reach moto, LocalStack or AWS."""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from worker.config import AwsTarget

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


class CallCounter:
    """Counts AWS API calls (round trips) by operation, for the benchmark's per-job figure."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: dict[str, int] = {}

    def __call__(self, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "unknown")
        with self._lock:
            self.by_operation[name] = self.by_operation.get(name, 0) + 1

    def snapshot(self) -> dict[str, int]:
        """Calls so far by operation name."""
        with self._lock:
            return dict(self.by_operation)

    @property
    def total(self) -> int:
        """All calls counted so far."""
        with self._lock:
            return sum(self.by_operation.values())


class Clients:
    """The SQS, S3, CloudWatch Logs (and, for the scaler, EC2) clients of one process."""

    def __init__(self, target: AwsTarget, read_timeout_s: float = 30.0) -> None:
        self._session = session = boto3.session.Session(region_name=target.region)
        self._config = config = Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=5,
            read_timeout=read_timeout_s,
            max_pool_connections=16,
        )
        self.counter = CallCounter()

        self._endpoint = endpoint = target.endpoint_url
        self.sqs: SQSClient = session.client("sqs", endpoint_url=endpoint, config=config)
        self.s3: S3Client = session.client("s3", endpoint_url=endpoint, config=config)
        self.logs: CloudWatchLogsClient = session.client(
            "logs", endpoint_url=endpoint, config=config
        )
        for client in (self.sqs, self.s3, self.logs):
            client.meta.events.register("before-call", self.counter)

    @cached_property
    def ec2(self) -> EC2Client:
        """EC2, made on first use: only the scaler needs it, and its model is large to load."""
        client: EC2Client = self._session.client(
            "ec2", endpoint_url=self._endpoint, config=self._config
        )
        client.meta.events.register("before-call", self.counter)
        return client
