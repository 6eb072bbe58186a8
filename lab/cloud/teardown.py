"""`lab teardown`: remove exactly what `lab provision` made, found by the fleet's tag.

Resources are looked for where provisioning puts them (the fleet's name prefixes, its IAM path,
its tag); what carries the tag ``fleetlab:fleet=<env>`` is removed, what merely looks alike is
named and left alone. Order: stop the scaler, terminate the instances and wait for them (their
network interfaces hold the security group), then the template, profile, role, security
group, queues, the bucket (every object version first) and the log group.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from botocore.exceptions import ClientError

from lab.cloud.names import IAM_PATH, TAG, is_ours, tag_map
from lab.cloud.storage import error_code
from lab.ec2 import instances
from worker.aws import Clients
from worker.state.layout import SCALER_CONFIG

ORDER = ("instance", "launch template", "instance profile", "iam role", "security group",
         "sqs queue", "s3 bucket", "log group")  # fmt: skip
_GONE_WAIT_S = 600.0  # terminating EC2 instances take a minute or two


@dataclass(frozen=True)
class Found:
    """A resource that carries the fleet's name or tag; ``ours`` when tagged for this env."""

    resource: str
    name: str
    ours: bool

    def line(self, verb: str) -> str:
        if self.ours:
            return f"{verb:13} {self.resource:17} {self.name}"
        return f"{'left alone':13} {self.resource:17} {self.name} (not tagged {TAG})"


def survey(clients: Clients, env: str, bucket_hint: str | None = None) -> list[Found]:
    """Everything of ``env``'s fleet, and its look-alikes, in the order of removal."""
    found = [
        *_instances(clients, env),
        *_templates(clients, env),
        *_iam(clients, env),
        *_security_groups(clients, env),
        *_queues(clients, env),
        *_buckets(clients, env, bucket_hint),
        *_log_groups(clients, env),
    ]
    return sorted(found, key=lambda f: ORDER.index(f.resource))


def remove(clients: Clients, env: str, found: list[Found], report: Callable[[str], None]) -> None:
    """Remove what is ours in ``found`` (in its order); report each removal."""
    ours = [f for f in found if f.ours]
    buckets = [f.name for f in ours if f.resource == "s3 bucket"]
    for bucket in buckets:  # the fleet's scalers stop acting before their fleet goes
        with contextlib.suppress(ClientError):
            clients.s3.delete_object(Bucket=bucket, Key=SCALER_CONFIG)
    doomed = [f.name for f in ours if f.resource == "instance"]
    if doomed:
        instances.terminate(clients.ec2, doomed)
        clients.ec2.get_waiter("instance_terminated").wait(
            InstanceIds=doomed, WaiterConfig={"Delay": 5, "MaxAttempts": int(_GONE_WAIT_S / 5)}
        )
    for item in ours:
        _REMOVE[item.resource](clients, item.name)
        report(item.line("removed"))


# ---------------------------------------------------------------------------------- finding


def _instances(clients: Clients, env: str) -> Iterator[Found]:
    states = (*instances.LIVE_STATES, "stopping", "stopped")
    for instance in instances.fleet(clients.ec2, env, states):
        yield Found("instance", instance.id, True)


def _templates(clients: Clients, env: str) -> Iterator[Found]:
    pages = clients.ec2.get_paginator("describe_launch_templates").paginate(
        Filters=[{"Name": f"tag:{TAG}", "Values": [env]}]
    )
    for page in pages:
        for template in page.get("LaunchTemplates", []):
            yield Found("launch template", template.get("LaunchTemplateName", ""), True)


def _iam(clients: Clients, env: str) -> Iterator[Found]:
    iam = clients.iam
    for profiles in iam.get_paginator("list_instance_profiles").paginate(PathPrefix=IAM_PATH):
        for profile in profiles["InstanceProfiles"]:
            name = profile["InstanceProfileName"]
            # get_instance_profile carries the tags (list_instance_profiles does not)
            full = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
            tags = tag_map(full.get("Tags", []))
            yield Found("instance profile", name, is_ours(tags, env))
    for roles in iam.get_paginator("list_roles").paginate(PathPrefix=IAM_PATH):
        for role in roles["Roles"]:
            tags = tag_map(iam.list_role_tags(RoleName=role["RoleName"])["Tags"])
            yield Found("iam role", role["RoleName"], is_ours(tags, env))


def _security_groups(clients: Clients, env: str) -> Iterator[Found]:
    groups = clients.ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"fleetlab-{env}*"]}]
    )["SecurityGroups"]
    for group in groups:
        ours = is_ours(tag_map(group.get("Tags", [])), env)
        yield Found("security group", f"{group['GroupId']} {group['GroupName']}", ours)


def _queues(clients: Clients, env: str) -> Iterator[Found]:
    sqs = clients.sqs
    urls = sqs.list_queues(QueueNamePrefix=f"fleetlab-{env}-").get("QueueUrls", [])
    for url in urls:
        yield Found(
            "sqs queue", url, is_ours(sqs.list_queue_tags(QueueUrl=url).get("Tags", {}), env)
        )


def _buckets(clients: Clients, env: str, hint: str | None) -> Iterator[Found]:
    s3 = clients.s3
    names = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    for name in names:
        if not (name.startswith(f"fleetlab-{env}-") or name == hint):
            continue
        try:
            tags = tag_map(s3.get_bucket_tagging(Bucket=name)["TagSet"])
        except ClientError:
            tags = {}  # untagged, or in a region these credentials cannot read: not ours
        yield Found("s3 bucket", name, is_ours(tags, env))


def _log_groups(clients: Clients, env: str) -> Iterator[Found]:
    logs = clients.logs
    pages = logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=f"/fleetlab/{env}"
    )
    for page in pages:
        for group in page.get("logGroups", []):
            arn = str(group.get("arn", "")).removesuffix(":*")
            tags = logs.list_tags_for_resource(resourceArn=arn).get("tags", {})
            yield Found("log group", group.get("logGroupName", ""), is_ours(tags, env))


# --------------------------------------------------------------------------------- removing


def _gone_instance(clients: Clients, name: str) -> None:
    """Terminated (and waited for) before anything else goes."""


def _template(clients: Clients, name: str) -> None:
    clients.ec2.delete_launch_template(LaunchTemplateName=name)


def _profile(clients: Clients, name: str) -> None:
    iam = clients.iam
    profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    for role in profile.get("Roles", []):
        iam.remove_role_from_instance_profile(InstanceProfileName=name, RoleName=role["RoleName"])
    iam.delete_instance_profile(InstanceProfileName=name)


def _role(clients: Clients, name: str) -> None:
    iam = clients.iam
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        iam.detach_role_policy(RoleName=name, PolicyArn=attached["PolicyArn"])
    iam.delete_role(RoleName=name)


def _security_group(clients: Clients, name: str) -> None:
    group_id = name.split(maxsplit=1)[0]
    deadline = time.monotonic() + 120  # a terminated instance's interface lingers a little
    while True:
        try:
            clients.ec2.delete_security_group(GroupId=group_id)
            return
        except ClientError as exc:
            if error_code(exc) != "DependencyViolation" or time.monotonic() > deadline:
                raise
            time.sleep(5)


def _queue(clients: Clients, url: str) -> None:
    clients.sqs.delete_queue(QueueUrl=url)


def _bucket(clients: Clients, name: str) -> None:
    # A versioned bucket is empty only when every version and delete marker is gone. Listing
    # afresh each round: paging on while deleting would skip entries.
    s3 = clients.s3
    while True:
        page = s3.list_object_versions(Bucket=name)
        doomed = [
            {"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
        ]
        if not doomed:
            break
        s3.delete_objects(Bucket=name, Delete={"Objects": doomed, "Quiet": True})  # type: ignore[typeddict-item]
    s3.delete_bucket(Bucket=name)


def _log_group(clients: Clients, name: str) -> None:
    clients.logs.delete_log_group(logGroupName=name)


_REMOVE: dict[str, Callable[[Clients, str], None]] = {
    "instance": _gone_instance,
    "launch template": _template,
    "instance profile": _profile,
    "iam role": _role,
    "security group": _security_group,
    "sqs queue": _queue,
    "s3 bucket": _bucket,
    "log group": _log_group,
}
