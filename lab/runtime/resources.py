"""The lab's AWS resources: queues with a dead-letter queue, the bucket, the log group.

``ensure`` is idempotent: running it twice creates nothing new. It returns the environment
description that ``lab env show --json`` prints and that workers are configured from.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from lab.errors import NotRunning
from lab.runtime import environment
from lab.runtime.settings import LabSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_sts import STSClient

LAB_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@dataclass(frozen=True)
class LabEnv:
    """Everything an AWS client needs to talk to the lab (or, for ``aws``, to the fleet)."""

    env: str
    region: str
    endpoint_url: str | None  # None on AWS: boto3's own resolution (AWS_ENDPOINT_URL included)
    request_queue_url: str
    response_queue_url: str
    dead_letter_queue_url: str
    bucket: str
    log_group: str
    receiver_url: str | None  # the lab's callback receiver; AWS has none
    max_receive_count: int
    visibility_timeout_s: int

    def save(self, home: Path) -> None:
        """Write ``env.json`` in the lab folder."""
        home.mkdir(parents=True, exist_ok=True)
        (home / "env.json").write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, home: Path) -> LabEnv:
        """Read ``env.json``; raise ``NotRunning`` if the lab was never brought up."""
        try:
            return cls(**json.loads((home / "env.json").read_text()))
        except (OSError, ValueError, TypeError):
            raise NotRunning("no lab environment here; run `lab up` first") from None

    @property
    def emulated(self) -> bool:
        """True on an emulator, where any key is accepted; False on AWS (the credentials chain)."""
        return self.env in environment.EMULATED

    def worker_env(self) -> dict[str, str]:
        """The variables a worker is configured from (the emulators' fake keys included; on
        AWS no keys at all: the worker's boto3 takes the instance role or the caller's chain)."""
        endpoint = {"FLEETLAB_ENDPOINT_URL": self.endpoint_url} if self.endpoint_url else {}
        keys = LAB_CREDENTIALS if self.emulated else {}
        return {
            "FLEETLAB_ENV": self.env,
            "AWS_REGION": self.region,
            **endpoint,
            "FLEETLAB_REQUEST_QUEUE_URL": self.request_queue_url,
            "FLEETLAB_RESPONSE_QUEUE_URL": self.response_queue_url,
            "FLEETLAB_DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "FLEETLAB_BUCKET": self.bucket,
            "FLEETLAB_LOG_GROUP": self.log_group,
            "FLEETLAB_MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "FLEETLAB_VISIBILITY_TIMEOUT": str(self.visibility_timeout_s),
        } | keys


class AwsClients:
    """The clients the lab uses, pointed at one endpoint.

    On an emulator (``emulated``) they sign with the emulators' fake keys; otherwise they take
    the usual credentials chain (profile, environment, SSO, instance role) and boto3 resolves
    the endpoint itself when ``endpoint_url`` is None, ``AWS_ENDPOINT_URL`` included.
    """

    def __init__(self, region: str, endpoint_url: str | None, emulated: bool = True) -> None:
        keys = LAB_CREDENTIALS if emulated else {}
        self._session = session = boto3.session.Session(
            region_name=region,
            aws_access_key_id=keys.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=keys.get("AWS_SECRET_ACCESS_KEY"),
        )
        self._endpoint = endpoint_url
        self.sqs: SQSClient = session.client("sqs", endpoint_url=endpoint_url)
        self.s3: S3Client = session.client("s3", endpoint_url=endpoint_url)
        self.logs: CloudWatchLogsClient = session.client("logs", endpoint_url=endpoint_url)
        self.ec2: EC2Client = session.client("ec2", endpoint_url=endpoint_url)

    @classmethod
    def for_env(cls, env: LabEnv) -> AwsClients:
        """Clients for a saved lab environment."""
        return cls(env.region, env.endpoint_url, env.emulated)

    # Provisioning alone needs these three: made on first use.
    @cached_property
    def iam(self) -> IAMClient:
        """IAM (the instances' role and profile)."""
        client: IAMClient = self._session.client("iam", endpoint_url=self._endpoint)
        return client

    @cached_property
    def ssm(self) -> SSMClient:
        """SSM (the public parameters that name current images)."""
        client: SSMClient = self._session.client("ssm", endpoint_url=self._endpoint)
        return client

    @cached_property
    def sts(self) -> STSClient:
        """STS (who the caller is: the account in every ARN)."""
        client: STSClient = self._session.client("sts", endpoint_url=self._endpoint)
        return client

    @property
    def region(self) -> str:
        """The region these clients call."""
        return str(self._session.region_name)


def ensure(settings: LabSettings, clients: AwsClients, env_name: str = "local") -> LabEnv:
    """Create (or find) every resource and return the environment description."""
    sqs = clients.sqs
    dlq_url = sqs.create_queue(QueueName=settings.dead_letter_queue)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receive_count}
    request_url = sqs.create_queue(
        QueueName=settings.request_queue,
        Attributes={
            "VisibilityTimeout": str(settings.visibility_timeout_s),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    response_url = sqs.create_queue(QueueName=settings.response_queue)["QueueUrl"]
    with contextlib.suppress(clients.s3.exceptions.BucketAlreadyOwnedByYou):
        clients.s3.create_bucket(Bucket=settings.bucket)
    with contextlib.suppress(clients.logs.exceptions.ResourceAlreadyExistsException):
        clients.logs.create_log_group(logGroupName=settings.log_group)
    return LabEnv(
        env=env_name,
        region=settings.region,
        endpoint_url=settings.endpoint_url,
        request_queue_url=request_url,
        response_queue_url=response_url,
        dead_letter_queue_url=dlq_url,
        bucket=settings.bucket,
        log_group=settings.log_group,
        receiver_url=settings.receiver_url,
        max_receive_count=settings.max_receive_count,
        visibility_timeout_s=settings.visibility_timeout_s,
    )
