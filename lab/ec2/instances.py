"""The fleet as EC2 sees it: a launch template, and instances started and stopped only by the API.

The same calls reach moto, LocalStack or AWS; the lab's hypervisor gives the instances bodies.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lab.errors import LabError
from worker.scaler.ec2 import (
    FLEET_TAG,
    GONE_STATES,
    LIVE_STATES,
    Instance,
    fleet,
    launch,
    template_name,
    terminate,
)

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

__all__ = [
    "FLEET_TAG",
    "GONE_STATES",
    "LIVE_STATES",
    "Instance",
    "default_template",
    "ensure_template",
    "fleet",
    "fleet_template",
    "lab_template_data",
    "launch",
    "normal",
    "put_template",
    "scale",
    "template_name",
    "terminate",
    "user_data",
]

LAB_IMAGE_ID = "ami-0f1ee7ab"  # what the lab's instances "boot": the emulator only records it
TEMPLATE_FIELDS = frozenset({
    "ImageId", "InstanceType", "IamInstanceProfile", "SecurityGroupIds", "MetadataOptions",
    "UserData", "TagSpecifications",
})  # fmt: skip
Template = dict[str, Any]  # launch template data, as EC2's API spells it


def lab_template_data(image_id: str = LAB_IMAGE_ID, instance_type: str = "c5.large") -> Template:
    """The launch template data of a lab fleet (no role, no security group: the emulator only
    records instances, the hypervisor gives them bodies)."""
    return {"ImageId": image_id, "InstanceType": instance_type}


def fleet_template(fleet: str, data: Template, user_data: str) -> Template:
    """``data`` with the user-data and the fleet tag on every instance and volume launched."""
    tags = [{"Key": FLEET_TAG, "Value": fleet}]
    return normal(data) | {
        "UserData": base64.b64encode(user_data.encode()).decode(),
        "TagSpecifications": [
            {"ResourceType": kind, "Tags": tags} for kind in ("instance", "volume")
        ],
    }


def normal(data: Mapping[str, Any]) -> Template:
    """The parts of launch template data the fleet sets, in one shape: what a change is
    judged on (EC2 and the emulators add fields of their own to what they return)."""
    kept = {k: v for k, v in data.items() if k in TEMPLATE_FIELDS}
    if "TagSpecifications" in kept:
        kept["TagSpecifications"] = [
            t for t in kept["TagSpecifications"] if t.get("ResourceType") in ("instance", "volume")
        ]
    return kept


def default_template(ec2: EC2Client, fleet: str) -> tuple[str, Template] | None:
    """The fleet's launch template id and its default version's data, or None if there is none."""
    try:
        reply = ec2.describe_launch_template_versions(
            LaunchTemplateName=template_name(fleet), Versions=["$Default"]
        )
    except ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
            return None
        raise
    versions = reply.get("LaunchTemplateVersions", [])
    if not versions:
        return None
    found = versions[0]
    return found["LaunchTemplateId"], normal(dict(found.get("LaunchTemplateData", {})))


def put_template(ec2: EC2Client, fleet: str, data: Template) -> str:
    """Make ``data`` the fleet's launch template: create it (tagged for the fleet), or add a
    version and make it the default -- only if it differs. Return the template's id."""
    name = template_name(fleet)
    found = default_template(ec2, fleet)
    if found is None:
        made = ec2.create_launch_template(
            LaunchTemplateName=name,
            LaunchTemplateData=data,  # type: ignore[arg-type]
            TagSpecifications=[
                {"ResourceType": "launch-template", "Tags": [{"Key": FLEET_TAG, "Value": fleet}]}
            ],
        )
        return made["LaunchTemplate"]["LaunchTemplateId"]
    template_id, current = found
    if current == normal(data):
        return template_id
    version = ec2.create_launch_template_version(LaunchTemplateName=name, LaunchTemplateData=data)  # type: ignore[arg-type]
    number = str(version["LaunchTemplateVersion"]["VersionNumber"])
    # By id: LocalStack 4.13 fails ModifyLaunchTemplate given only the name (AWS takes either).
    ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=number)
    return template_id


def ensure_template(ec2: EC2Client, fleet: str, user_data: str) -> str:
    """Point the fleet's launch template at ``user_data``, keeping everything else of its
    default version (on AWS: the image, type, role and security group provisioned); a new
    template has the lab's defaults. Return its id."""
    found = default_template(ec2, fleet)
    base = found[1] if found else lab_template_data()
    return put_template(ec2, fleet, fleet_template(fleet, base, user_data))


def scale(ec2: EC2Client, name: str, wanted: int) -> tuple[list[str], list[str]]:
    """Launch or terminate (newest first) until the fleet has ``wanted`` instances."""
    if wanted < 0:
        raise LabError("the fleet size cannot be negative")
    live = fleet(ec2, name)
    if wanted > len(live):
        return launch(ec2, name, wanted - len(live)), []
    doomed = [i.id for i in live[wanted:]]
    terminate(ec2, doomed)
    return [], doomed


def user_data(ec2: EC2Client, instance_id: str) -> str:
    """The user-data an instance was launched with."""
    reply = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
    value = reply.get("UserData", {}).get("Value", "")
    return base64.b64decode(value).decode() if value else ""
