"""What the fleet's AWS resources are called, and their ARNs: derived from the environment's
name, the account and the region, so that provisioning, the policy and teardown agree."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lab.errors import LabError, NotOurs
from worker.scaler.ec2 import FLEET_TAG, template_name

# One tag marks everything the fleet owns (instances have carried it from the start): teardown
# removes what carries it with this environment's name, and nothing else.
TAG = FLEET_TAG
IAM_PATH = "/fleetlab/"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class CloudNames:
    """The names and ARNs of one environment's resources in one account and region."""

    env: str
    account: str
    region: str
    bucket: str

    @property
    def request_queue(self) -> str:
        return f"fleetlab-{self.env}-requests"

    @property
    def response_queue(self) -> str:
        return f"fleetlab-{self.env}-responses"

    @property
    def dead_letter_queue(self) -> str:
        return f"fleetlab-{self.env}-dead-letters"

    @property
    def log_group(self) -> str:
        return f"/fleetlab/{self.env}"

    @property
    def role(self) -> str:
        """The instances' IAM role; its instance profile has the same name."""
        return f"fleetlab-{self.env}-instance"

    @property
    def security_group(self) -> str:
        return f"fleetlab-{self.env}"

    @property
    def template(self) -> str:
        return template_name(self.env)

    @property
    def tags(self) -> dict[str, str]:
        """The fleet's tag, as a mapping."""
        return {TAG: self.env}

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{name}"

    def queue_url(self, name: str) -> str:
        """The URL AWS gives the queue (before it exists: to plan with)."""
        return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:aws:s3:::{self.bucket}"

    @property
    def log_group_arn(self) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{self.log_group}"

    @property
    def role_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:role{IAM_PATH}{self.role}"

    @property
    def profile_arn(self) -> str:
        return f"arn:aws:iam::{self.account}:instance-profile{IAM_PATH}{self.role}"

    def ec2_arn(self, kind: str, ident: str = "*") -> str:
        """An EC2 resource of this account (``instance``, ``launch-template``, …)."""
        return f"arn:aws:ec2:{self.region}:{self.account}:{kind}/{ident}"

    def image_arn(self, image_id: str) -> str:
        """An image: public images belong to no account of ours, so the ARN names none."""
        return f"arn:aws:ec2:{self.region}::image/{image_id}"


def names_for(env: str, account: str, region: str, bucket: str | None = None) -> CloudNames:
    """The names of ``env``'s resources; the bucket, which must be unique across all of S3,
    defaults to ``fleetlab-<env>-<account>-<region>``."""
    chosen = bucket or f"fleetlab-{env}-{account}-{region}"
    if not _BUCKET.fullmatch(chosen) or ".." in chosen:
        raise LabError(f"{chosen!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -)")
    return CloudNames(env=env, account=account, region=region, bucket=chosen)


def is_ours(tags: Mapping[str, str], env: str) -> bool:
    """True when ``tags`` mark a resource as the fleet's of ``env``."""
    return tags.get(TAG) == env


def require_ours(resource: str, name: str, tags: Mapping[str, str], env: str) -> None:
    """Refuse to adopt a resource that has the fleet's name but not its tag."""
    if not is_ours(tags, env):
        raise NotOurs(
            f"{resource} {name} exists but is not tagged {TAG}={env}: not adopting it "
            "(remove or rename it, or give the fleet other names)"
        )


def tag_map(tags: Iterable[Mapping[str, object]]) -> dict[str, str]:
    """``[{"Key": k, "Value": v}, …]`` as ``{k: v}``."""
    return {str(t["Key"]): str(t["Value"]) for t in tags}


def tag_list(tags: Mapping[str, str]) -> list[Any]:  # Any: each API has its own tag TypedDict
    """``{k: v}`` as ``[{"Key": k, "Value": v}, …]``."""
    return [{"Key": k, "Value": v} for k, v in tags.items()]
