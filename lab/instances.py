"""The fleet as EC2 sees it: a launch template, and instances started and stopped only by the API.

The same calls reach moto, LocalStack or AWS; the lab's hypervisor gives the instances bodies.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from lab.errors import LabError
from worker.ec2 import (
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
    "ensure_template",
    "fleet",
    "launch",
    "scale",
    "template_name",
    "terminate",
    "user_data",
]

LAB_IMAGE_ID = "ami-0f1ee7ab"  # what the lab's instances "boot": the emulator only records it


def ensure_template(ec2: EC2Client, fleet: str, user_data: str, instance_type: str = "c5.large",
                    image_id: str = LAB_IMAGE_ID) -> str:  # fmt: skip
    """Create the fleet's launch template, or add a version with this user-data; return its id."""
    data = {
        "ImageId": image_id,
        "InstanceType": instance_type,
        "UserData": base64.b64encode(user_data.encode()).decode(),
        "TagSpecifications": [
            {"ResourceType": "instance", "Tags": [{"Key": FLEET_TAG, "Value": fleet}]}
        ],
    }
    name = template_name(fleet)
    try:
        made = ec2.create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)  # type: ignore[arg-type]
        return made["LaunchTemplate"]["LaunchTemplateId"]
    except ClientError as exc:
        if "AlreadyExists" not in str(exc.response.get("Error", {}).get("Code", "")):
            raise
    version = ec2.create_launch_template_version(
        LaunchTemplateName=name,
        LaunchTemplateData=data,  # type: ignore[arg-type]
    )["LaunchTemplateVersion"]
    # By id, not name: LocalStack 4.13.1 answers ModifyLaunchTemplate by name with an
    # InternalError (it reads only LaunchTemplateId); moto and AWS take either.
    template_id = version["LaunchTemplateId"]
    ec2.modify_launch_template(
        LaunchTemplateId=template_id, DefaultVersion=str(version["VersionNumber"])
    )
    return template_id


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
