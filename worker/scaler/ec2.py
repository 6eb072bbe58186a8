"""The fleet as EC2 sees it: instances found by tag, started from the launch template, terminated.

The scaler and the lab make exactly these calls; they reach moto, LocalStack or AWS alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client

FLEET_TAG = "fleetlab:fleet"
LIVE_STATES = ("pending", "running")
GONE_STATES = ("shutting-down", "terminated", "stopping", "stopped")


@dataclass(frozen=True)
class Instance:
    """One fleet instance as EC2 reports it."""

    id: str
    state: str
    launched: str
    image_id: str
    launched_at: float = 0.0  # epoch seconds


def template_name(fleet: str) -> str:
    """The launch template of a fleet."""
    return f"fleetlab-{fleet}"


def fleet(ec2: EC2Client, name: str, states: tuple[str, ...] = LIVE_STATES) -> list[Instance]:
    """The fleet's instances in ``states``, oldest first."""
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[
            {"Name": f"tag:{FLEET_TAG}", "Values": [name]},
            {"Name": "instance-state-name", "Values": list(states)},
        ]
    )
    found = [
        Instance(
            i["InstanceId"],
            i["State"]["Name"],
            str(i["LaunchTime"]),
            i.get("ImageId", ""),
            i["LaunchTime"].timestamp(),
        )
        for page in pages
        for reservation in page.get("Reservations", [])
        for i in reservation.get("Instances", [])
    ]
    return sorted(found, key=lambda i: (i.launched_at, i.id))


def launch(ec2: EC2Client, name: str, count: int, client_token: str | None = None) -> list[str]:
    """Start ``count`` instances from the fleet's launch template.

    ``client_token`` makes the call idempotent on AWS: a retried launch (a timeout after EC2
    acted, say) returns the same instances instead of starting more.
    """
    if count <= 0:
        return []
    token = {"ClientToken": client_token} if client_token else {}
    reply = ec2.run_instances(
        LaunchTemplate={"LaunchTemplateName": template_name(name), "Version": "$Default"},
        MinCount=count,
        MaxCount=count,
        **token,  # type: ignore[arg-type]
    )
    return [i["InstanceId"] for i in reply["Instances"]]


def terminate(ec2: EC2Client, ids: list[str]) -> None:
    """Terminate instances through EC2 (in the lab, the hypervisor then stops their bodies)."""
    if ids:
        ec2.terminate_instances(InstanceIds=ids)
