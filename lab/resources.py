"""The lab's AWS resources: queues with a dead-letter queue, the bucket, the log group.

``ensure`` is idempotent: running it twice creates nothing new. It returns the environment
description that ``lab env show --json`` prints and that workers are configured from.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from lab.errors import NotRunning
from lab.settings import LabSettings

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

LAB_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


@dataclass(frozen=True)
class LabEnv:
    """Everything an AWS client needs to talk to the lab."""

    env: str
    region: str
    endpoint_url: str
    request_queue_url: str
    response_queue_url: str
    dead_letter_queue_url: str
    bucket: str
    log_group: str
    receiver_url: str
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

    def worker_env(self) -> dict[str, str]:
        """The variables a worker is configured from."""
        return {
            "FLEETLAB_ENV": self.env,
            "AWS_REGION": self.region,
            "FLEETLAB_ENDPOINT_URL": self.endpoint_url,
            "FLEETLAB_REQUEST_QUEUE_URL": self.request_queue_url,
            "FLEETLAB_RESPONSE_QUEUE_URL": self.response_queue_url,
            "FLEETLAB_DEAD_LETTER_QUEUE_URL": self.dead_letter_queue_url,
            "FLEETLAB_BUCKET": self.bucket,
            "FLEETLAB_LOG_GROUP": self.log_group,
            "FLEETLAB_MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "FLEETLAB_VISIBILITY_TIMEOUT": str(self.visibility_timeout_s),
        } | LAB_CREDENTIALS


class AwsClients:
    """The clients the lab uses, pointed at one endpoint."""

    def __init__(self, region: str, endpoint_url: str | None) -> None:
        keys = _credentials(endpoint_url)
        session = boto3.session.Session(
            region_name=region,
            aws_access_key_id=keys.get("aws_access_key_id"),
            aws_secret_access_key=keys.get("aws_secret_access_key"),
        )
        self.sqs: SQSClient = session.client("sqs", endpoint_url=endpoint_url)
        self.s3: S3Client = session.client("s3", endpoint_url=endpoint_url)
        self.logs: CloudWatchLogsClient = session.client("logs", endpoint_url=endpoint_url)
        self.ec2: EC2Client = session.client("ec2", endpoint_url=endpoint_url)

    @classmethod
    def for_env(cls, env: LabEnv) -> AwsClients:
        """Clients for a saved lab environment."""
        return cls(env.region, env.endpoint_url)


def _credentials(endpoint_url: str | None) -> dict[str, str]:
    # Emulators accept any key; AWS takes the usual credentials chain instead.
    if endpoint_url is None:
        return {}
    return {
        "aws_access_key_id": LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


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
