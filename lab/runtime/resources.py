"""The lab's AWS resources: queues with a dead-letter queue, the bucket, the log group.

``ensure`` is idempotent: running it twice creates nothing new. It returns the environment
description that ``lab env show --json`` prints and that workers are configured from.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from lab.errors import NotRunning
from lab.runtime import environment
from lab.runtime.settings import LabSettings
from worker.aws import Clients
from worker.config import AwsTarget

LAB_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
# An emulator's workers long-poll 2 s, not AWS's 20: a drain waits out the poll in flight (cut,
# the queue would hand its next message to a client that had gone), and the lab drains, rolls
# out and comes down in compressed time as its scaler does.
LAB_WAIT_TIME = {"FLEETLAB_WAIT_TIME": "2"}


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
        """The variables a worker is configured from (the emulators' fake keys and short long
        poll included; on AWS no keys at all: the worker's boto3 takes the instance role or the
        caller's chain)."""
        endpoint = {"FLEETLAB_ENDPOINT_URL": self.endpoint_url} if self.endpoint_url else {}
        emulated = LAB_CREDENTIALS | LAB_WAIT_TIME if self.emulated else {}
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
        } | emulated


def lab_clients(region: str, endpoint_url: str | None, emulated: bool = True) -> Clients:
    """The lab's clients for one endpoint: signed with the emulators' fake keys on an emulator,
    with the usual credentials chain otherwise (boto3 resolves the endpoint itself when
    ``endpoint_url`` is None, ``AWS_ENDPOINT_URL`` included)."""
    target = AwsTarget(region=region, endpoint_url=endpoint_url)
    return Clients(target, keys=LAB_CREDENTIALS if emulated else None)


def clients_for(env: LabEnv) -> Clients:
    """Clients for a saved lab environment."""
    return lab_clients(env.region, env.endpoint_url, env.emulated)


def queue_attributes(
    dead_letter_arn: str, max_receive_count: int, visibility_timeout_s: int
) -> dict[str, dict[str, str]]:
    """What the fleet's queues must have, by role: the one definition ``lab up`` (``ensure``)
    and ``lab provision`` (which adds encryption, tags and retention) both create from."""
    redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}
    return {
        "dead_letter": {},
        "request": {
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps(redrive),
        },
        "response": {},
    }


def ensure(settings: LabSettings, clients: Clients, env_name: str = "local") -> LabEnv:
    """Create (or find) every resource and return the environment description."""
    sqs = clients.sqs
    dlq_url = sqs.create_queue(QueueName=settings.dead_letter_queue)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    wanted = queue_attributes(dlq_arn, settings.max_receive_count, settings.visibility_timeout_s)
    request_url = sqs.create_queue(
        QueueName=settings.request_queue, Attributes=cast(Any, wanted["request"])
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
