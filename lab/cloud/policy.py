"""The instances' IAM policy: exactly the calls the worker and the scaler make, on exactly the
fleet's resources. Pure: built from names and ids, compared with what IAM holds.

The calls, read from the code: the worker receives, deletes (in batches) and extends the
visibility of request messages, sends responses, reads and conditionally writes its state in
S3 (``claims/``, ``status/``), uploads result files (``results/``), reads S3 inputs
(``inputs/``) and writes the activity log; the scaler reads the queue's depth, the fleet from
EC2 and its settings and status documents, publishes its state (``scaler/``), writes drain
requests into ``status/``, launches from the launch template and terminates the fleet's
instances; the boot script reads the code bundle (``bundles/``). The instances never publish
code, delete objects, touch the dead-letter queue (SQS moves messages there itself) or create
log groups.
"""

from __future__ import annotations

from typing import Any

from lab.cloud.names import TAG, CloudNames
from worker.state.layout import DELETED_BY_INSTANCES, READ_BY_INSTANCES, WRITTEN_BY_INSTANCES

VERSION = "2012-10-17"
Document = dict[str, Any]


def trust_policy() -> Document:
    """Who may take the role: EC2, on behalf of the fleet's instances."""
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def instance_policy(
    names: CloudNames, template_id: str, security_group_id: str, image_id: str, spot: bool = False
) -> Document:
    """The role's one inline policy for the fleet of ``names`` (``spot``: its scaler launches
    spot instances too)."""
    objects = f"{names.bucket_arn}/"
    template_arn = names.ec2_arn("launch-template", template_id)
    from_template: Document = {"ArnEquals": {"ec2:LaunchTemplate": template_arn}}
    statements: list[Document] = [
        _allow(
            "RequestQueue",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            [names.queue_arn(names.request_queue)],
        ),
        _allow("ResponseQueue", ["sqs:SendMessage"], [names.queue_arn(names.response_queue)]),
        # ListBucket only so that a missing state document reads as 404, not 403: the claim and
        # status code tell "absent" from "forbidden" by it. It lists keys, never contents.
        _allow("BucketKeys", ["s3:ListBucket"], [names.bucket_arn]),
        _allow("ReadState", ["s3:GetObject"], [objects + p + "*" for p in READ_BY_INSTANCES]),
        _allow(
            "WriteState",
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            [objects + p + "*" for p in WRITTEN_BY_INSTANCES],
        ),
        # The one delete: a request body the SQS extended client offloaded, once its request is
        # settled (worker.consume.offload). State, results and code are never deleted.
        _allow(
            "SettledRequests",
            ["s3:DeleteObject"],
            [objects + p + "*" for p in DELETED_BY_INSTANCES],
        ),
        _allow(
            "ActivityLog",
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            [names.log_group_arn, f"{names.log_group_arn}:log-stream:*"],
        ),
        # Describe* calls support no resource-level permissions: "*" is the only resource AWS
        # accepts for them. It reveals instance metadata of the account, changes nothing.
        _allow("SeeFleet", ["ec2:DescribeInstances"], ["*"]),
        # RunInstances authorises every resource it touches. The template is this one; the
        # network, security group and image only as the template names them; the instance and
        # its volume only from this template and tagged for this fleet.
        _allow("LaunchTemplate", ["ec2:RunInstances"], [template_arn]),
        _allow(
            "LaunchNetwork",
            ["ec2:RunInstances"],
            [
                names.ec2_arn("subnet"),
                names.ec2_arn("network-interface"),
                names.ec2_arn("security-group", security_group_id),
                names.image_arn(image_id),
            ],
            from_template,
        ),
        _allow(
            "LaunchTagged",
            ["ec2:RunInstances"],
            [names.ec2_arn("instance"), names.ec2_arn("volume")],
            from_template | {"StringEquals": {f"aws:RequestTag/{TAG}": names.env}},
        ),
        _allow(
            "TagAtLaunch",
            ["ec2:CreateTags"],
            [names.ec2_arn("instance"), names.ec2_arn("volume")],
            {"StringEquals": {"ec2:CreateAction": "RunInstances"}},
        ),
        _allow(
            "TerminateFleet",
            ["ec2:TerminateInstances"],
            [names.ec2_arn("instance")],
            {"StringEquals": {f"ec2:ResourceTag/{TAG}": names.env}},
        ),
        _allow(
            "PassOwnRole",
            ["iam:PassRole"],
            [names.role_arn],
            {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        ),
    ]
    if spot:
        statements += spot_statements(names, from_template)
    return {"Version": VERSION, "Statement": statements}


def spot_statements(names: CloudNames, from_template: Document) -> list[Document]:
    """What launching spot adds: RunInstances with market options also authorises the spot
    request it makes (from this template only), and the account's spot service-linked role is
    created on first use if it does not exist yet (that one role, for that one service)."""
    slr = (f"arn:aws:iam::{names.account}:role/aws-service-role/spot.amazonaws.com/"
           "AWSServiceRoleForEC2Spot")  # fmt: skip
    return [
        _allow(
            "LaunchSpot",
            ["ec2:RunInstances"],
            [names.ec2_arn("spot-instances-request")],
            from_template,
        ),
        _allow(
            "SpotServiceRole",
            ["iam:CreateServiceLinkedRole"],
            [slr],
            {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}},
        ),
    ]


def resources(document: Document) -> set[str]:
    """Every resource a policy document names."""
    found: set[str] = set()
    for statement in _as_list(document.get("Statement", [])):
        found.update(_as_list(statement.get("Resource", [])))
    return found


def _allow(
    sid: str, actions: list[str], resources: list[str], condition: Document | None = None
) -> Document:
    statement: Document = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
