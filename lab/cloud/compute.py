"""The fleet's compute: security group, launch template, code bundle and initial capacity."""

from __future__ import annotations

import time

from botocore.exceptions import ClientError

from lab.cloud.names import require_ours, tag_list, tag_map
from lab.cloud.plan import Settings
from lab.cloud.target import FleetPart
from lab.deploy import bundle
from lab.ec2 import instances, userdata
from lab.errors import LabError
from lab.runtime import scaler, stack
from worker.errors import StoreError
from worker.scaler.capacity import ScalerConfig
from worker.state.layout import BUNDLE_POINTER
from worker.state.store import S3JsonStore

# IMDSv2 only: the boot script asks for a session token, and a stolen request cannot.
METADATA = {"HttpTokens": "required", "HttpEndpoint": "enabled"}
_PROFILE_WAIT_S = 60.0  # IAM is eventually consistent: a new profile takes seconds to be usable


class SecurityGroup(FleetPart):
    """The instances' security group in the default VPC: no inbound rule at all (the workers
    only call out: SQS, S3, logs, inputs and callbacks)."""

    resource = "security group"
    permissions: tuple[dict[str, object], ...] = ()  # inbound rules found: what change revokes

    @property
    def name(self) -> str:
        return self.target.names.security_group

    def _vpc(self) -> str:
        vpcs = self.target.clients.ec2.describe_vpcs(
            Filters=[{"Name": "is-default", "Values": ["true"]}]
        ).get("Vpcs", [])
        if not vpcs:
            raise LabError(
                f"no default VPC in {self.target.names.region}: create one "
                "(`aws ec2 create-default-vpc`) and provision again"
            )
        return vpcs[0]["VpcId"]

    def found(self) -> Settings | None:
        groups = self.target.clients.ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [self.name]},
                {"Name": "vpc-id", "Values": [self._vpc()]},
            ]
        ).get("SecurityGroups", [])
        if not groups:
            return None
        group = groups[0]
        require_ours(self.resource, self.name, tag_map(group.get("Tags", [])),
                     self.target.names.env)  # fmt: skip
        self.target.security_group_id = group["GroupId"]
        self.permissions = tuple(group.get("IpPermissions", []))  # type: ignore[arg-type]
        return {"inbound rules": len(self.permissions)}

    def wanted(self) -> Settings:
        return {"inbound rules": 0}

    def create(self) -> None:
        made = self.target.clients.ec2.create_security_group(
            GroupName=self.name,
            Description="fleetlab instances: outbound only",
            VpcId=self._vpc(),
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": tag_list(self.target.names.tags)}
            ],
        )
        self.target.security_group_id = made["GroupId"]

    def change(self, keys: tuple[str, ...]) -> None:
        self.target.clients.ec2.revoke_security_group_ingress(
            GroupId=str(self.target.security_group_id),
            IpPermissions=list(self.permissions),  # type: ignore[arg-type]
        )


class LaunchTemplate(FleetPart):
    """The template every instance starts from: image, type, role, security group, IMDSv2 and
    the user-data (configuration, never credentials)."""

    resource = "launch template"

    @property
    def name(self) -> str:
        return self.target.names.template

    def found(self) -> Settings | None:
        ec2, env = self.target.clients.ec2, self.target.names.env
        current = instances.default_template(ec2, env)
        if current is None:
            return None
        listed = ec2.describe_launch_templates(LaunchTemplateNames=[self.name])["LaunchTemplates"]
        require_ours(self.resource, self.name, tag_map(listed[0].get("Tags", [])), env)
        self.target.template_id = current[0]
        return current[1]

    def wanted(self) -> Settings:
        target = self.target
        base = {
            "ImageId": target.image_id,
            "InstanceType": target.options.instance_type,
            "IamInstanceProfile": {"Name": target.names.role},
            "SecurityGroupIds": [target.security_group_id or "<security group id>"],
            "MetadataOptions": METADATA,
        }
        text = userdata.render(stack.instance_config(target.settings, target.lab_env()))
        return instances.fleet_template(target.names.env, base, text)

    def create(self) -> None:
        self.target.template_id = instances.put_template(
            self.target.clients.ec2, self.target.names.env, self.wanted()
        )

    def change(self, keys: tuple[str, ...]) -> None:
        self.create()


class CodeBundle(FleetPart):
    """A published code bundle: instances download it at boot, so none may start before."""

    resource = "code bundle"

    @property
    def name(self) -> str:
        return f"s3://{self.target.names.bucket}/{BUNDLE_POINTER}"

    def found(self) -> Settings | None:
        try:
            current = bundle.current(self.target.clients.s3, self.target.names.bucket)
        except StoreError:  # no bucket yet
            return None
        return None if current is None else {}

    def wanted(self) -> Settings:
        return {}

    def create(self) -> None:
        target = self.target
        stack.deploy(target.settings, target.lab_env(), target.clients)


class Capacity(FleetPart):
    """The scaler's bounds and spot share (``scaler/config.json``, where a deploy leaves them)
    and at least ``min`` live instances."""

    resource = "capacity"
    live = 0  # the fleet's live instances when last looked at

    @property
    def name(self) -> str:
        options = self.target.options
        spot = f", {100 * options.spot_fraction:g} % spot" if options.spot_fraction else ""
        return f"{options.min_instances}..{options.max_instances} of {options.instance_type}{spot}"

    def _store(self) -> S3JsonStore:
        return S3JsonStore(self.target.clients.s3, self.target.names.bucket)

    def found(self) -> Settings | None:
        try:
            config = scaler.read_config(self._store())
        except StoreError:  # no bucket yet
            return None
        if config is None:
            return None
        self.live = len(instances.fleet(self.target.clients.ec2, self.target.names.env))
        return {
            "min": config.min_instances,
            "max": config.max_instances,
            "spot": config.spot_fraction,
            "running": min(self.live, self.target.options.min_instances),
        }

    def wanted(self) -> Settings:
        options = self.target.options
        return {
            "min": options.min_instances,
            "max": options.max_instances,
            "spot": options.spot_fraction,
            "running": options.min_instances,
        }

    def create(self) -> None:
        options = self.target.options
        chosen = {
            "min_instances": options.min_instances,
            "max_instances": options.max_instances,
            "spot_fraction": options.spot_fraction,
        }
        # Real-time defaults, not the lab's compressed ones; the bounds and share are the user's.
        scaler.write_config(self._store(), chosen, defaults=ScalerConfig())
        self._launch(options.min_instances - self.live)

    def change(self, keys: tuple[str, ...]) -> None:
        self.create()

    def _launch(self, count: int) -> None:
        deadline = time.monotonic() + _PROFILE_WAIT_S
        while count > 0:
            try:
                instances.launch(self.target.clients.ec2, self.target.names.env, count)
                return
            except ClientError as exc:
                young = "instance profile" in str(exc).lower()
                if not young or time.monotonic() > deadline:
                    raise
                time.sleep(5)
