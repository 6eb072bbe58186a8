"""The fleet's queues, bucket and log group as provisioning parts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

from botocore.exceptions import ClientError

from lab.cloud.names import require_ours, tag_list, tag_map
from lab.cloud.plan import Part, Settings
from lab.cloud.target import FleetPart, Target
from lab.errors import NotOurs
from lab.runtime.resources import queue_attributes

ENCRYPTION = "AES256"  # SSE-S3: no KMS key to pay for or to grant the role
_PUBLIC_BLOCK = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


def error_code(exc: ClientError) -> str:
    """The AWS error code of ``exc`` (the HTTP status when there is none)."""
    error = exc.response.get("Error", {})
    return str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


class Queue(FleetPart):
    """An SQS queue with server-side encryption; ``attributes`` are the rest it must have."""

    resource = "sqs queue"

    def __init__(self, target: Target, name: str, attributes: dict[str, str]) -> None:
        self.target = target
        self._name = name
        self.attributes = {"SqsManagedSseEnabled": "true", **attributes}

    @property
    def name(self) -> str:
        return self._name

    def found(self) -> Settings | None:
        sqs = self.target.clients.sqs
        try:
            url = sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
        except ClientError as exc:
            if "NonExistentQueue" in error_code(exc) or "QueueDoesNotExist" in error_code(exc):
                return None
            raise
        require_ours(self.resource, self.name, sqs.list_queue_tags(QueueUrl=url).get("Tags", {}),
                     self.target.names.env)  # fmt: skip
        self.target.queue_urls[self.name] = url
        have: Mapping[str, str] = cast(
            Any, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        )
        return {key: _normal(key, have.get(key)) for key in self.attributes}

    def wanted(self) -> Settings:
        return {key: _normal(key, value) for key, value in self.attributes.items()}

    def create(self) -> None:
        reply = self.target.clients.sqs.create_queue(
            QueueName=self.name,
            Attributes=cast(Any, self.attributes),
            tags=self.target.names.tags,
        )
        self.target.queue_urls[self.name] = reply["QueueUrl"]

    def change(self, keys: tuple[str, ...]) -> None:
        self.target.clients.sqs.set_queue_attributes(
            QueueUrl=self.target.queue_url(self.name),
            Attributes={key: self.attributes[key] for key in keys},  # type: ignore[misc]
        )


def _normal(key: str, value: str | None) -> Any:
    # A redrive policy comes back as JSON whose count may be a number or a string.
    if key == "RedrivePolicy" and value:
        policy = json.loads(value)
        return {"deadLetterTargetArn": policy["deadLetterTargetArn"],
                "maxReceiveCount": str(policy["maxReceiveCount"])}  # fmt: skip
    return value


def queues(target: Target) -> list[Part]:
    """Dead-letter queue first: the request queue's redrive policy names it."""
    names, settings = target.names, target.settings
    wanted = queue_attributes(
        names.queue_arn(names.dead_letter_queue),
        settings.max_receive_count,
        settings.visibility_timeout_s,
    )
    retention = {"MessageRetentionPeriod": str(target.options.dead_letter_retention_s)}
    return [
        Queue(target, names.dead_letter_queue, wanted["dead_letter"] | retention),
        Queue(target, names.request_queue, wanted["request"]),
        Queue(target, names.response_queue, wanted["response"]),
    ]


class Bucket(FleetPart):
    """The code and state bucket: encrypted, versioned, no public access whatever a policy says."""

    resource = "s3 bucket"

    @property
    def name(self) -> str:
        return self.target.names.bucket

    def found(self) -> Settings | None:
        s3 = self.target.clients.s3
        try:
            s3.head_bucket(Bucket=self.name)
        except ClientError as exc:
            code = error_code(exc)
            if code in ("404", "NoSuchBucket", "NotFound"):
                return None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise NotOurs(
                    f"{self.resource} {self.name} belongs to another account (S3 names are "
                    "global): choose another with --bucket"
                ) from None
            raise
        try:
            tags = tag_map(s3.get_bucket_tagging(Bucket=self.name)["TagSet"])
        except ClientError as exc:
            if error_code(exc) != "NoSuchTagSet":
                raise
            tags = {}
        require_ours(self.resource, self.name, tags, self.target.names.env)
        return {
            "versioning": s3.get_bucket_versioning(Bucket=self.name).get("Status"),
            "encryption": self._encryption(),
            "public access": self._public_block(),
        }

    def _encryption(self) -> str | None:
        try:
            rules = self.target.clients.s3.get_bucket_encryption(Bucket=self.name)[
                "ServerSideEncryptionConfiguration"
            ]["Rules"]
        except ClientError:
            return None
        return rules[0].get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm")

    def _public_block(self) -> str:
        try:
            block = self.target.clients.s3.get_public_access_block(Bucket=self.name)[
                "PublicAccessBlockConfiguration"
            ]
        except ClientError:
            return "open"
        return "blocked" if all(block.get(k) for k in _PUBLIC_BLOCK) else "open"

    def wanted(self) -> Settings:
        return {"versioning": "Enabled", "encryption": ENCRYPTION, "public access": "blocked"}

    def create(self) -> None:
        s3, region = self.target.clients.s3, self.target.names.region
        where = {} if region == "us-east-1" else {
            "CreateBucketConfiguration": {"LocationConstraint": region}
        }  # fmt: skip
        s3.create_bucket(Bucket=self.name, **where)  # type: ignore[arg-type]
        s3.put_bucket_tagging(
            Bucket=self.name,
            Tagging={"TagSet": tag_list(self.target.names.tags)},
        )
        self.change(tuple(self.wanted()))

    def change(self, keys: tuple[str, ...]) -> None:
        s3 = self.target.clients.s3
        if "public access" in keys:
            s3.put_public_access_block(
                Bucket=self.name,
                PublicAccessBlockConfiguration=cast(Any, dict.fromkeys(_PUBLIC_BLOCK, True)),
            )
        if "encryption" in keys:
            rule: Any = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": ENCRYPTION}}
            s3.put_bucket_encryption(
                Bucket=self.name, ServerSideEncryptionConfiguration={"Rules": [rule]}
            )
        if "versioning" in keys:
            s3.put_bucket_versioning(
                Bucket=self.name, VersioningConfiguration={"Status": "Enabled"}
            )


class LogGroup(FleetPart):
    """The activity log's group, with a retention (logs kept forever cost forever)."""

    resource = "log group"

    @property
    def name(self) -> str:
        return self.target.names.log_group

    def found(self) -> Settings | None:
        logs = self.target.clients.logs
        groups = logs.describe_log_groups(logGroupNamePrefix=self.name).get("logGroups", [])
        group = next((g for g in groups if g.get("logGroupName") == self.name), None)
        if group is None:
            return None
        tags = logs.list_tags_for_resource(resourceArn=self.target.names.log_group_arn)
        require_ours(self.resource, self.name, tags.get("tags", {}), self.target.names.env)
        return {"retention days": group.get("retentionInDays")}

    def wanted(self) -> Settings:
        return {"retention days": self.target.options.log_retention_days}

    def create(self) -> None:
        self.target.clients.logs.create_log_group(
            logGroupName=self.name, tags=self.target.names.tags
        )
        self.change(("retention days",))

    def change(self, keys: tuple[str, ...]) -> None:
        self.target.clients.logs.put_retention_policy(
            logGroupName=self.name,
            retentionInDays=self.target.options.log_retention_days,
        )
