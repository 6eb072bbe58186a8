"""The pure parts of `lab provision`: names, the policy document, plan judging, prices."""

from __future__ import annotations

import json

import pytest

from lab.cloud import policy, prices
from lab.cloud.names import TAG, names_for, require_ours
from lab.cloud.plan import Part, Settings, Step, apply, changed, judge, plan, summary
from lab.errors import LabError, NotOurs
from worker.state import layout

NAMES = names_for("aws", "111122223333", "eu-west-1")


def test_names_derive_from_env_account_and_region() -> None:
    assert NAMES.bucket == "fleetlab-aws-111122223333-eu-west-1"
    assert (
        NAMES.queue_arn(NAMES.request_queue)
        == "arn:aws:sqs:eu-west-1:111122223333:fleetlab-aws-requests"
    )
    assert NAMES.role_arn == "arn:aws:iam::111122223333:role/fleetlab/fleetlab-aws-instance"
    assert names_for("aws", "1", "r", bucket="mine").bucket == "mine"
    with pytest.raises(LabError, match="not a valid S3 bucket name"):
        names_for("aws", "1", "r", bucket="Not_Valid")


def test_only_the_tag_for_this_env_makes_a_resource_ours() -> None:
    require_ours("queue", "q", {TAG: "aws"}, "aws")
    for tags in ({}, {TAG: "local"}, {"fleetlab:env": "aws"}):
        with pytest.raises(NotOurs, match="not adopting"):
            require_ours("queue", "q", tags, "aws")


def document() -> policy.Document:
    return policy.instance_policy(NAMES, "lt-0abc", "sg-0def", "ami-0123")


def test_the_policy_names_only_the_fleets_resources() -> None:
    named = policy.resources(document())
    ec2 = "arn:aws:ec2:eu-west-1:111122223333"
    assert named == {
        "arn:aws:sqs:eu-west-1:111122223333:fleetlab-aws-requests",
        "arn:aws:sqs:eu-west-1:111122223333:fleetlab-aws-responses",
        f"arn:aws:s3:::{NAMES.bucket}",
        *(f"arn:aws:s3:::{NAMES.bucket}/{p}*" for p in layout.READ_BY_INSTANCES),
        *(f"arn:aws:s3:::{NAMES.bucket}/{p}*" for p in layout.WRITTEN_BY_INSTANCES),
        NAMES.log_group_arn, f"{NAMES.log_group_arn}:log-stream:*",
        "*",
        f"{ec2}:launch-template/lt-0abc", f"{ec2}:security-group/sg-0def",
        "arn:aws:ec2:eu-west-1::image/ami-0123",
        f"{ec2}:subnet/*", f"{ec2}:network-interface/*", f"{ec2}:instance/*", f"{ec2}:volume/*",
        NAMES.role_arn,
    }  # fmt: skip


def test_every_wildcard_is_pinned_by_a_condition() -> None:
    for statement in document()["Statement"]:
        wild = [r for r in statement["Resource"] if r.endswith("/*") and ":ec2:" in r]
        if statement["Resource"] == ["*"]:
            assert statement["Action"] == ["ec2:DescribeInstances"]
        elif wild:
            assert statement["Condition"], statement["Sid"]


def test_the_policy_grants_exactly_the_calls_the_code_makes() -> None:
    actions = {a for s in document()["Statement"] for a in s["Action"]}
    assert actions == {
        "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes", "sqs:SendMessage",
        "s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "logs:CreateLogStream", "logs:PutLogEvents",
        "ec2:DescribeInstances", "ec2:RunInstances", "ec2:CreateTags", "ec2:TerminateInstances",
        "iam:PassRole",
    }  # fmt: skip
    text = json.dumps(document())
    assert "bundles/" in text and "dead-letters" not in text
    # The only delete is of offloaded request bodies: never state, results or code.
    deletes = [s for s in document()["Statement"] if "s3:DeleteObject" in s["Action"]]
    assert [(s["Action"], s["Resource"]) for s in deletes] == [
        (["s3:DeleteObject"], [f"arn:aws:s3:::{NAMES.bucket}/requests/*"])
    ]
    terminate = next(s for s in document()["Statement"] if s["Sid"] == "TerminateFleet")
    assert terminate["Condition"] == {"StringEquals": {f"ec2:ResourceTag/{TAG}": "aws"}}
    trust = policy.trust_policy()["Statement"][0]
    assert trust["Principal"] == {"Service": "ec2.amazonaws.com"}


def test_a_plan_judges_each_resource() -> None:
    assert judge("queue", "q", {"a": 1}, None) == Step("create", "queue", "q")
    assert judge("queue", "q", {"a": 1}, {"a": 1, "extra": 2}).kind == "exists"
    assert judge("queue", "q", {"a": 1, "b": 2}, {"a": 0, "b": 2}) == Step(
        "change", "queue", "q", ("a",)
    )
    assert changed({"a": [1, 2]}, {"a": [2, 1]}) == ("a",)
    steps = [Step("create", "x", "1"), Step("exists", "x", "2"), Step("exists", "x", "3")]
    assert summary(steps) == "1 to create, 0 to change, 2 exist"
    assert Step("change", "bucket", "b", ("versioning",)).line().endswith("b (versioning)")


class Remembered(Part):
    """A part over a dict: what the plan/apply logic sees, without any AWS."""

    resource = "thing"

    def __init__(self, name: str, world: dict[str, Settings], want: Settings) -> None:
        self._name, self.world, self.want = name, world, want

    @property
    def name(self) -> str:
        return self._name

    def found(self) -> Settings | None:
        return self.world.get(self.name)

    def wanted(self) -> Settings:
        return self.want

    def create(self) -> None:
        self.world[self.name] = dict(self.want)

    def change(self, keys: tuple[str, ...]) -> None:
        self.world[self.name] |= {k: self.want[k] for k in keys}


def test_plan_changes_nothing_and_apply_twice_is_a_no_op() -> None:
    world: dict[str, Settings] = {"b": {"size": 1}}
    parts = [Remembered("a", world, {"size": 2}), Remembered("b", world, {"size": 3})]
    assert [s.kind for s in plan(parts)] == ["create", "change"]
    assert world == {"b": {"size": 1}}
    reported: list[Step] = []
    apply(parts, reported.append)
    assert [s.kind for s in reported] == ["create", "change"]
    assert world == {"a": {"size": 2}, "b": {"size": 3}}
    assert [s.kind for s in apply(parts, lambda _: None)] == ["exists", "exists"]


def test_prices_are_an_assumption_with_a_date() -> None:
    found = prices.price("c7i.large")
    assert found is not None and found.usd_per_hour == pytest.approx(0.08925)
    assert found.monthly(2) == pytest.approx(2 * (0.08925 * 730 + 8 * 0.08))
    assert prices.price("x9.huge") is None
    text = prices.statement("c7i.large", 1)
    assert "$0.08925/h" in text and prices.AS_OF in text and "us-east-1" in text
    assert "lab plan" in text
    assert "no price assumption for x9.huge" in prices.statement("x9.huge", 1)


def test_a_spot_fleet_adds_only_the_spot_request_and_its_service_role() -> None:
    plain = document()["Statement"]
    spot = policy.instance_policy(NAMES, "lt-0abc", "sg-0def", "ami-0123", spot=True)["Statement"]
    added = spot[len(plain) :]
    assert spot[: len(plain)] == plain
    assert [s["Sid"] for s in added] == ["LaunchSpot", "SpotServiceRole"]
    ec2 = "arn:aws:ec2:eu-west-1:111122223333"
    assert added[0]["Resource"] == [f"{ec2}:spot-instances-request/*"]
    assert added[0]["Condition"]["ArnEquals"]["ec2:LaunchTemplate"].endswith("lt-0abc")
    assert added[1]["Action"] == ["iam:CreateServiceLinkedRole"]
    assert added[1]["Condition"] == {"StringEquals": {"iam:AWSServiceName": "spot.amazonaws.com"}}
    assert added[1]["Resource"][0].endswith("spot.amazonaws.com/AWSServiceRoleForEC2Spot")
