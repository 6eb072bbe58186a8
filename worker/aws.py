"""The one boto3 client factory: the same calls reach moto, LocalStack or AWS.

Workers and the scaler take their credentials from the usual chain (the instance's role on AWS,
the fake keys their environment carries on an emulator); the lab passes the emulators' keys
explicitly, or none on AWS. Clients a process rarely needs are made on first use.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import IncompleteReadError

from worker.config import AwsTarget

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient


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


def refuse_cut_short(operation_model: Any, response_dict: Mapping[str, Any], **_: Any) -> None:
    """Raise ``IncompleteReadError`` (a ``BotoCoreError``) for an answer shorter than its
    Content-Length, before it is parsed (botocore's ``before-parse`` event).

    botocore reads answers without holding them to their declared length, so a connection cut
    mid-answer reaches the parser truncated: a ``ResponseParserError``, outside botocore's
    exception tree, so past every caller's handling (through the lab's proxy resetting a fifth
    of its chunks, 9 % of DescribeInstances calls ended so), or an empty JSON answer taken for a
    real one. As an ``IncompleteReadError`` it is what it is, a call that failed, and each
    caller's handling of those applies (the scaler's next tick, the worker's next receive).
    """
    body = response_dict.get("body")
    if not isinstance(body, bytes) or operation_model.http.get("method") == "HEAD":
        return  # a stream is checked as it is read; a HEAD's length is the object's
    declared = str(response_dict.get("headers", {}).get("content-length", ""))
    if declared.isdigit() and len(body) < int(declared):
        raise IncompleteReadError(actual_bytes=len(body), expected_bytes=int(declared))


class Clients:
    """The SQS, S3 and CloudWatch Logs clients of one process; EC2, and for provisioning IAM,
    SSM and STS, on first use. ``keys`` (an access key id and secret) sign every call when
    given; otherwise boto3's credentials chain does."""

    def __init__(
        self,
        target: AwsTarget,
        read_timeout_s: float = 30.0,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        self._session = boto3.session.Session(
            region_name=target.region,
            aws_access_key_id=(keys or {}).get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=(keys or {}).get("AWS_SECRET_ACCESS_KEY"),
        )
        self._config = Config(
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=5,
            read_timeout=read_timeout_s,
            max_pool_connections=16,
        )
        self._endpoint = target.endpoint_url
        self.counter = CallCounter()
        self.sqs: SQSClient = self._client("sqs")
        self.s3: S3Client = self._client("s3")
        self.logs: CloudWatchLogsClient = self._client("logs")

    def _client(self, service: str) -> Any:
        client = self._session.client(service, endpoint_url=self._endpoint, config=self._config)  # type: ignore[call-overload]
        client.meta.events.register("before-call", self.counter)
        client.meta.events.register("before-parse", refuse_cut_short)
        return client

    @cached_property
    def ec2(self) -> EC2Client:
        """EC2: the scaler and the lab need it, the worker never; its model is large to load."""
        client: EC2Client = self._client("ec2")
        return client

    @cached_property
    def iam(self) -> IAMClient:
        """IAM (provisioning: the instances' role and profile)."""
        client: IAMClient = self._client("iam")
        return client

    @cached_property
    def ssm(self) -> SSMClient:
        """SSM (provisioning: the public parameters that name current images)."""
        client: SSMClient = self._client("ssm")
        return client

    @cached_property
    def sts(self) -> STSClient:
        """STS (provisioning: who the caller is, the account in every ARN)."""
        client: STSClient = self._client("sts")
        return client

    @property
    def region(self) -> str:
        """The region these clients call."""
        return str(self._session.region_name)
