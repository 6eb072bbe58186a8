"""The instances' identity: an IAM role, its instance profile and its one inline policy."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from lab.cloud import policy
from lab.cloud.names import IAM_PATH, require_ours, tag_list, tag_map
from lab.cloud.plan import Settings
from lab.cloud.storage import error_code
from lab.cloud.target import FleetPart


def _document(value: Any) -> Any:
    # boto3 hands IAM's URL-encoded JSON back decoded; some servers leave it a string.
    return json.loads(value) if isinstance(value, str) else value


def _missing(exc: ClientError) -> bool:
    return error_code(exc) == "NoSuchEntity"


class Role(FleetPart):
    """The role the instances take: trusted by EC2 only."""

    resource = "iam role"

    @property
    def name(self) -> str:
        return self.target.names.role

    def found(self) -> Settings | None:
        try:
            role = self.target.clients.iam.get_role(RoleName=self.name)["Role"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        tags = tag_map(self.target.clients.iam.list_role_tags(RoleName=self.name)["Tags"])
        require_ours(self.resource, self.name, tags, self.target.names.env)
        return {"trust": _document(role.get("AssumeRolePolicyDocument"))}

    def wanted(self) -> Settings:
        return {"trust": policy.trust_policy()}

    def create(self) -> None:
        self.target.clients.iam.create_role(
            Path=IAM_PATH,
            RoleName=self.name,
            AssumeRolePolicyDocument=json.dumps(policy.trust_policy()),
            Description="fleetlab instances: the worker and the scaler",
            Tags=tag_list(self.target.names.tags),
        )

    def change(self, keys: tuple[str, ...]) -> None:
        self.target.clients.iam.update_assume_role_policy(
            RoleName=self.name, PolicyDocument=json.dumps(policy.trust_policy())
        )


class InstanceProfile(FleetPart):
    """What a launch template names to give instances the role."""

    resource = "instance profile"

    @property
    def name(self) -> str:
        return self.target.names.role

    def found(self) -> Settings | None:
        iam = self.target.clients.iam
        try:
            profile = iam.get_instance_profile(InstanceProfileName=self.name)["InstanceProfile"]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        tags = tag_map(profile.get("Tags", []))
        require_ours(self.resource, self.name, tags, self.target.names.env)
        return {"roles": sorted(r["RoleName"] for r in profile.get("Roles", []))}

    def wanted(self) -> Settings:
        return {"roles": [self.target.names.role]}

    def create(self) -> None:
        self.target.clients.iam.create_instance_profile(
            InstanceProfileName=self.name,
            Path=IAM_PATH,
            Tags=tag_list(self.target.names.tags),
        )
        self.change(("roles",))

    def change(self, keys: tuple[str, ...]) -> None:
        iam = self.target.clients.iam
        profile = iam.get_instance_profile(InstanceProfileName=self.name)["InstanceProfile"]
        for role in profile.get("Roles", []):  # a profile holds one role at most
            iam.remove_role_from_instance_profile(
                InstanceProfileName=self.name, RoleName=role["RoleName"]
            )
        iam.add_role_to_instance_profile(InstanceProfileName=self.name, RoleName=self.name)


class RolePolicy(FleetPart):
    """The role's inline policy: after the template, whose id it names."""

    resource = "iam role policy"

    @property
    def name(self) -> str:
        return self.target.names.role

    def found(self) -> Settings | None:
        try:
            reply = self.target.clients.iam.get_role_policy(
                RoleName=self.name, PolicyName=self.name
            )
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return {"document": _document(reply["PolicyDocument"])}

    def wanted(self) -> Settings:
        target = self.target
        return {
            "document": policy.instance_policy(
                target.names,
                target.template_id or "<template id>",
                target.security_group_id or "<security group id>",
                target.image_id,
                spot=target.options.spot_fraction > 0,
            )
        }

    def create(self) -> None:
        self.target.clients.iam.put_role_policy(
            RoleName=self.name,
            PolicyName=self.name,
            PolicyDocument=json.dumps(self.wanted()["document"]),
        )

    def change(self, keys: tuple[str, ...]) -> None:
        self.create()
