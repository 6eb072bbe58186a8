"""`lab provision`: everything the fleet needs on AWS, created idempotently, in order.

Order matters twice: what a resource names must exist first (the dead-letter queue before the
request queue's redrive, the profile and security group before the template, the template
before the policy that names its id), and the code must be in S3 before an instance boots.
"""

from __future__ import annotations

from collections.abc import Callable

from lab.cloud import compute, identity, storage
from lab.cloud.plan import Part, Step, apply, plan
from lab.cloud.target import Target


def parts(target: Target) -> list[Part]:
    """The fleet's resources, in the order they are made."""
    return [
        *storage.queues(target),
        storage.Bucket(target),
        storage.LogGroup(target),
        identity.Role(target),
        identity.InstanceProfile(target),
        compute.SecurityGroup(target),
        compute.LaunchTemplate(target),
        identity.RolePolicy(target),
        compute.CodeBundle(target),
        compute.Capacity(target),
    ]


def dry_run(target: Target) -> list[Step]:
    """What provisioning would do; changes nothing."""
    return plan(parts(target))


def provision(target: Target, report: Callable[[Step], None]) -> list[Step]:
    """Make it so; save the environment description that deploy, submit and status read."""
    done = apply(parts(target), report)
    target.lab_env().save(target.settings.home)
    return done
