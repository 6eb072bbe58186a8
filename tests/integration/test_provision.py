"""`lab provision` / `lab teardown` on the aws environment, against a real moto server over HTTP.

The lab CLI runs as a subprocess exactly as a user runs it on AWS: `lab env use aws`, the usual
AWS_* variables (AWS_ENDPOINT_URL points at moto, the keys are moto's "test"). The server is this
module's own, reset before each test, so every test starts from an empty account.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import stop_process
from support import LAB_CLI, clean_env, wait_until

from lab.cloud import policy
from lab.cloud.names import TAG
from lab.runtime.emulator import moto_ready
from lab.runtime.procs import free_port
from worker.state import layout

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"  # moto's
REGION = "us-east-1"
ENV_TAG = {"Key": TAG, "Value": "aws"}
AL2023 = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"  # moto has it
BUCKET = f"fleetlab-aws-{ACCOUNT}-{REGION}"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's own moto server (reset per test: a clean account each time)."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto-aws") / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=clean_env(),
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or moto_ready(url), 30, "moto")
        assert proc.poll() is None, log.read_text()
        yield url
    finally:
        stop_process(proc, grace_s=5)


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One lab folder for the module: its wheel cache makes every bundle after the first quick."""
    return tmp_path_factory.mktemp("lab-aws")


@pytest.fixture
def aws(moto_url: str, lab_home: Path) -> Iterator[Aws]:
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200
    (lab_home / "env.json").unlink(missing_ok=True)
    found = Aws(moto_url, lab_home)
    assert found.lab("env", "use", "aws").returncode == 0
    yield found
    found.close()


class Aws:
    """The user's side: the lab CLI on env aws, and boto3 clients to look at the account."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.home = home
        self.env = clean_env() | {
            "FLEETLAB_LAB_HOME": str(home),
            "AWS_ENDPOINT_URL": url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        session = boto3.session.Session(
            region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
        )
        self.sqs = session.client("sqs", endpoint_url=url)
        self.s3 = session.client("s3", endpoint_url=url)
        self.logs = session.client("logs", endpoint_url=url)
        self.ec2 = session.client("ec2", endpoint_url=url)
        self.iam = session.client("iam", endpoint_url=url)
        self.ssm = session.client("ssm", endpoint_url=url)

    def close(self) -> None:
        for client in (self.sqs, self.s3, self.logs, self.ec2, self.iam, self.ssm):
            client.close()

    def lab(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LAB_CLI, *args], env=env or self.env, capture_output=True, text=True,
            timeout=timeout, check=False, cwd=REPO,
        )  # fmt: skip

    def provision(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = self.lab("provision", "--image-parameter", AL2023, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def inventory(self) -> dict[str, Any]:
        """Everything in the account a provision could have touched."""
        templates = self.ec2.describe_launch_templates()["LaunchTemplates"]
        return {
            "queues": sorted(self.sqs.list_queues().get("QueueUrls", [])),
            "buckets": sorted(b["Name"] for b in self.s3.list_buckets()["Buckets"]),
            "log groups": sorted(
                g["logGroupName"] for g in self.logs.describe_log_groups()["logGroups"]
            ),
            "roles": sorted(r["RoleName"] for r in self.iam.list_roles()["Roles"]),
            "profiles": sorted(
                p["InstanceProfileName"]
                for p in self.iam.list_instance_profiles()["InstanceProfiles"]
            ),
            "security groups": sorted(
                g["GroupName"] for g in self.ec2.describe_security_groups()["SecurityGroups"]
            ),
            "templates": sorted(
                (t["LaunchTemplateName"], t["LatestVersionNumber"]) for t in templates
            ),
            "instances": sorted(
                (i["InstanceId"], i["State"]["Name"])
                for r in self.ec2.describe_instances()["Reservations"]
                for i in r["Instances"]
            ),
            "role policies": sorted(
                (
                    r,
                    json.dumps(
                        self.iam.get_role_policy(RoleName=r, PolicyName=p)["PolicyDocument"]
                    ),
                )
                for r in (x["RoleName"] for x in self.iam.list_roles()["Roles"])
                for p in self.iam.list_role_policies(RoleName=r)["PolicyNames"]
            ),
            "objects": sorted(
                (b, o["Key"])
                for b in (x["Name"] for x in self.s3.list_buckets()["Buckets"])
                for o in self.s3.list_objects_v2(Bucket=b).get("Contents", [])
            ),
        }

    def queue_url(self, name: str) -> str:
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def saved_env(self) -> dict[str, Any]:
        return dict(json.loads((self.home / "env.json").read_text()))


def lines(done: subprocess.CompletedProcess[str], kind: str) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith(kind + " ")]


# ------------------------------------------------------------------------------------ provision


def test_dry_run_on_an_empty_account_plans_everything_and_changes_nothing(aws: Aws) -> None:
    before = aws.inventory()
    done = aws.lab("provision", "--dry-run", "--image-parameter", AL2023)
    assert done.returncode == 0, done.stderr
    assert len(lines(done, "create")) == 12 and not lines(done, "exists")
    assert "dry run: nothing changed" in done.stdout
    assert "c7i.large assumed $0.08925/h" in done.stdout and "lab plan" in done.stdout
    assert aws.inventory() == before
    assert not (aws.home / "env.json").exists()


def test_provision_makes_everything_tagged_with_the_settings_asked_for(aws: Aws) -> None:
    done = aws.provision("--min", "1", "--max", "3", "--log-retention-days", "14")
    assert len(lines(done, "create")) == 12, done.stdout

    request = aws.queue_url("fleetlab-aws-requests")
    attrs = aws.sqs.get_queue_attributes(QueueUrl=request, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attrs["RedrivePolicy"])
    assert (
        redrive["deadLetterTargetArn"]
        == f"arn:aws:sqs:{REGION}:{ACCOUNT}:fleetlab-aws-dead-letters"
    )
    assert int(redrive["maxReceiveCount"]) == 5 and attrs["VisibilityTimeout"] == "30"
    for name in ("requests", "responses", "dead-letters"):
        url = aws.queue_url(f"fleetlab-aws-{name}")
        assert aws.sqs.list_queue_tags(QueueUrl=url)["Tags"] == {TAG: "aws"}
        sse = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert sse["SqsManagedSseEnabled"] == "true"

    assert aws.s3.get_bucket_tagging(Bucket=BUCKET)["TagSet"] == [ENV_TAG]
    assert aws.s3.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    rule = aws.s3.get_bucket_encryption(Bucket=BUCKET)["ServerSideEncryptionConfiguration"][
        "Rules"
    ][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = aws.s3.get_public_access_block(Bucket=BUCKET)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4

    group = aws.logs.describe_log_groups(logGroupNamePrefix="/fleetlab/aws")["logGroups"][0]
    assert group["retentionInDays"] == 14

    sg = aws.ec2.describe_security_groups(Filters=[{"Name": f"tag:{TAG}", "Values": ["aws"]}])
    assert [g["GroupName"] for g in sg["SecurityGroups"]] == ["fleetlab-aws"]
    assert sg["SecurityGroups"][0]["IpPermissions"] == []

    role = aws.iam.get_role(RoleName="fleetlab-aws-instance")["Role"]
    assert role["Path"] == "/fleetlab/"
    assert {"Key": TAG, "Value": "aws"} in aws.iam.list_role_tags(RoleName=role["RoleName"])["Tags"]
    profile = aws.iam.get_instance_profile(InstanceProfileName="fleetlab-aws-instance")
    assert [r["RoleName"] for r in profile["InstanceProfile"]["Roles"]] == ["fleetlab-aws-instance"]

    version = aws.ec2.describe_launch_template_versions(
        LaunchTemplateName="fleetlab-aws", Versions=["$Default"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    image = aws.ssm.get_parameter(Name=AL2023)["Parameter"]["Value"]
    assert version["ImageId"] == image and version["InstanceType"] == "c7i.large"
    assert version["IamInstanceProfile"] == {"Name": "fleetlab-aws-instance"}
    assert version["SecurityGroupIds"] == [sg["SecurityGroups"][0]["GroupId"]]
    assert version["MetadataOptions"]["HttpTokens"] == "required"

    live = aws.ec2.describe_instances(Filters=[{"Name": f"tag:{TAG}", "Values": ["aws"]}])
    assert len([i for r in live["Reservations"] for i in r["Instances"]]) == 1
    config = json.loads(aws.s3.get_object(Bucket=BUCKET, Key="scaler/config.json")["Body"].read())
    assert (config["min_instances"], config["max_instances"]) == (1, 3)
    assert config["job_s"] > 60  # the real-time defaults, not the lab's compressed ones
    assert aws.s3.get_object(Bucket=BUCKET, Key="bundles/current.json")["ContentLength"] > 0

    saved = aws.saved_env()
    assert saved["env"] == "aws" and saved["bucket"] == BUCKET and saved["receiver_url"] is None
    assert saved["request_queue_url"] == request


def test_user_data_carries_the_configuration_and_never_a_key(aws: Aws) -> None:
    aws.provision()
    data = aws.ec2.describe_launch_template_versions(
        LaunchTemplateName="fleetlab-aws", Versions=["$Default"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    text = base64.b64decode(data["UserData"]).decode()
    assert "export FLEETLAB_ENV=aws" in text and f"export FLEETLAB_BUCKET={BUCKET}" in text
    assert (
        "export FLEETLAB_SPEED=1\n" in text
        and "FLEETLAB_BOOT_PACKAGES='python3-venv sox imagemagick age'" in text
    )
    assert "FLEETLAB_SCALER_INTERVAL=30" in text
    header = text.split("# fleetlab instance boot")[
        0
    ]  # the configuration lab/ec2/userdata.py wrote
    assert "export FLEETLAB_REQUEST_QUEUE_URL=" in header
    assert "AWS_ACCESS_KEY_ID" not in header and "AWS_SECRET_ACCESS_KEY" not in header
    assert "test" not in header  # moto's keys, which the lab itself used


def test_a_second_provision_changes_nothing(aws: Aws) -> None:
    aws.provision()
    before = aws.inventory()
    done = aws.provision()
    assert len(lines(done, "exists")) == 12, done.stdout
    assert "0 to create, 0 to change, 12 exist" in done.stdout
    assert aws.inventory() == before
    dry = aws.lab("provision", "--dry-run", "--image-parameter", AL2023)
    assert len(lines(dry, "exists")) == 12, dry.stdout


def test_drift_is_planned_as_a_change_and_put_right(aws: Aws) -> None:
    aws.provision()
    request = aws.queue_url("fleetlab-aws-requests")
    aws.sqs.set_queue_attributes(QueueUrl=request, Attributes={"VisibilityTimeout": "7"})
    aws.logs.put_retention_policy(logGroupName="/fleetlab/aws", retentionInDays=1)
    aws.s3.delete_public_access_block(Bucket=BUCKET)
    aws.iam.put_role_policy(
        RoleName="fleetlab-aws-instance", PolicyName="fleetlab-aws-instance",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}),
    )  # fmt: skip
    group = aws.ec2.describe_security_groups(GroupNames=["fleetlab-aws"])["SecurityGroups"][0]
    aws.ec2.authorize_security_group_ingress(
        GroupId=group["GroupId"], IpProtocol="tcp", FromPort=22, ToPort=22, CidrIp="0.0.0.0/0"
    )
    dry = aws.lab("provision", "--dry-run", "--image-parameter", AL2023)
    changes = lines(dry, "change")
    assert len(changes) == 5, dry.stdout
    assert any("VisibilityTimeout" in c for c in changes)
    assert any("public access" in c for c in changes)
    aws.provision()
    assert (
        len(lines(aws.lab("provision", "--dry-run", "--image-parameter", AL2023), "exists")) == 12
    )
    assert (
        aws.ec2.describe_security_groups(GroupIds=[group["GroupId"]])["SecurityGroups"][0][
            "IpPermissions"
        ]
        == []
    )


def test_a_new_instance_type_changes_the_template_only(aws: Aws) -> None:
    aws.provision()
    done = aws.provision("--instance-type", "t3.small")
    changed = lines(done, "change")
    assert [c.split()[1:3] for c in changed] == [["launch", "template"]], done.stdout
    data = aws.ec2.describe_launch_template_versions(
        LaunchTemplateName="fleetlab-aws", Versions=["$Default"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    assert data["InstanceType"] == "t3.small"


def test_the_policy_names_only_the_provisioned_resources(aws: Aws) -> None:
    aws.provision()
    document = aws.iam.get_role_policy(
        RoleName="fleetlab-aws-instance", PolicyName="fleetlab-aws-instance"
    )["PolicyDocument"]
    template = aws.ec2.describe_launch_templates(LaunchTemplateNames=["fleetlab-aws"])[
        "LaunchTemplates"
    ][0]["LaunchTemplateId"]
    group = aws.ec2.describe_security_groups(GroupNames=["fleetlab-aws"])["SecurityGroups"][0]
    image = aws.ssm.get_parameter(Name=AL2023)["Parameter"]["Value"]
    ec2 = f"arn:aws:ec2:{REGION}:{ACCOUNT}"
    log_group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/fleetlab/aws"
    ours = {
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:fleetlab-aws-requests",
        f"arn:aws:sqs:{REGION}:{ACCOUNT}:fleetlab-aws-responses",
        f"arn:aws:s3:::{BUCKET}",
        *(f"arn:aws:s3:::{BUCKET}/{p}*" for p in layout.READ_BY_INSTANCES + layout.WRITTEN_BY_INSTANCES),
        log_group, f"{log_group}:log-stream:*",
        f"{ec2}:launch-template/{template}",
        f"{ec2}:security-group/{group['GroupId']}",
        f"arn:aws:ec2:{REGION}::image/{image}",
        f"arn:aws:iam::{ACCOUNT}:role/fleetlab/fleetlab-aws-instance",
    }  # fmt: skip
    # Wildcards of a resource type are allowed only where a condition pins them to the fleet
    # (its template or its tag); "*" only for Describe calls, which take no resource.
    pinned = {
        f"{ec2}:instance/*",
        f"{ec2}:volume/*",
        f"{ec2}:subnet/*",
        f"{ec2}:network-interface/*",
    }
    for statement in document["Statement"]:
        named = set(statement["Resource"])
        if named == {"*"}:
            assert all(a.startswith("ec2:Describe") for a in statement["Action"]), statement
            continue
        assert named <= ours | pinned, statement
        if named & pinned:
            assert statement.get("Condition"), statement
        assert not any(a.endswith("*") for a in statement["Action"]), statement
    assert ours <= policy.resources(document) | {"*"}
    assert "fleetlab-aws-dead-letters" not in json.dumps(document)  # SQS moves messages itself


# --------------------------------------------------------------------------- refusals, failures


def test_a_lookalike_that_is_not_ours_is_never_adopted(aws: Aws) -> None:
    aws.sqs.create_queue(QueueName="fleetlab-aws-requests")  # by hand, untagged
    before = aws.inventory()
    for args in (("--dry-run",), ()):
        done = aws.lab("provision", "--image-parameter", AL2023, *args)
        assert done.returncode == 1
        assert "fleetlab-aws-requests exists but is not tagged fleetlab:fleet=aws" in done.stderr
    created = set(aws.inventory()["queues"]) - set(before["queues"])
    assert created <= {aws.queue_url("fleetlab-aws-dead-letters")}  # made before the refusal


def test_no_credentials_is_a_clear_error(aws: Aws, tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in aws.env.items()
        if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")
    }
    env |= {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    for command in (("provision", "--dry-run"), ("teardown", "--yes")):
        done = aws.lab(*command, env=env)
        assert done.returncode == 1
        assert "no AWS credentials found" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_missing_image_parameter_is_a_clear_error(aws: Aws) -> None:
    before = aws.inventory()
    done = aws.lab("provision")  # the default: Debian 12's parameter, which moto lacks
    assert done.returncode == 1
    assert "/aws/service/debian/release/bookworm/latest/amd64" in done.stderr
    assert "--image-id" in done.stderr
    assert aws.inventory() == before
    given = aws.lab("provision", "--dry-run", "--image-id", "ami-12c6146b")
    assert given.returncode == 0 and "image ami-12c6146b" in given.stdout


def test_provision_and_teardown_refuse_an_emulated_environment(aws: Aws) -> None:
    assert aws.lab("env", "use", "local").returncode == 0
    for command in (("provision", "--dry-run"), ("teardown", "--yes")):
        done = aws.lab(*command)
        assert done.returncode == 1 and "lab env use aws" in done.stderr


# ------------------------------------------------------------------------------ end to end


def test_provision_deploy_submit_then_teardown_leaves_nothing(aws: Aws, tmp_path: Path) -> None:
    empty = aws.inventory()
    lookalike = aws.sqs.create_queue(QueueName="fleetlab-aws-requests-by-hand")["QueueUrl"]
    aws.provision("--min", "1")
    deployed = aws.lab("deploy")
    assert deployed.returncode == 0, deployed.stderr
    assert "--rollout" in aws.lab("deploy", "--rollout").stderr  # no bodies on AWS

    message_id = aws.lab("submit", "--service", "noop", "--request-id", "aws-1")
    assert message_id.returncode == 0, message_id.stderr
    # No hypervisor on AWS: run one worker here with the instances' own configuration.
    worker = run_worker(aws, tmp_path)
    try:
        found = wait_until(lambda: json.loads(aws.lab("results", "--json", "--wait", "1").stdout),
                           60, "a response")  # fmt: skip
        assert [(r["message_id"], r["status"]) for r in found] == [
            (message_id.stdout.strip(), "success")
        ], (tmp_path / "worker.out").read_text()
    finally:
        stop_process(worker, grace_s=10)
    status = aws.lab("status", "--json")
    assert status.returncode == 0, status.stderr

    refused = aws.lab("teardown")
    assert refused.returncode == 1 and "would remove" in refused.stdout
    assert "nothing removed" in refused.stdout
    assert aws.inventory()["queues"]  # nothing changed

    done = aws.lab("teardown", "--yes", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "removed       s3 bucket" in done.stdout and "left alone" in done.stdout
    after = aws.inventory()
    assert after["queues"] == [lookalike]
    terminated = {i for i, state in after["instances"] if state == "terminated"}
    assert {i for i, _ in after["instances"]} == terminated
    assert {k: v for k, v in after.items() if k not in ("queues", "instances")} == {
        k: v for k, v in empty.items() if k not in ("queues", "instances")
    }
    assert not (aws.home / "env.json").exists()
    again = aws.lab("teardown", "--yes")
    assert again.returncode == 0 and "nothing of the fleet's was found" in again.stdout


def instance_env(aws: Aws, work: Path, owner: str) -> dict[str, str]:
    """Exactly the user-data's configuration, for a process run here as on an instance (moto's
    keys stand in for the instance role; FLEETLAB_ENDPOINT_URL is in the user-data only because
    AWS_ENDPOINT_URL is)."""
    data = aws.ec2.describe_launch_template_versions(
        LaunchTemplateName="fleetlab-aws", Versions=["$Default"]
    )["LaunchTemplateVersions"][0]["LaunchTemplateData"]
    header = base64.b64decode(data["UserData"]).decode().split("# fleetlab instance boot")[0]
    config = {}
    for line in header.splitlines():
        if line.startswith("export FLEETLAB_") or line.startswith("export AWS_"):
            name, _, value = line.removeprefix("export ").partition("=")
            config[name] = value.strip("'")
    assert config["FLEETLAB_ENV"] == "aws"
    return clean_env() | config | {
        "FLEETLAB_WORKER_ID": owner, "FLEETLAB_WORK_DIR": str(work),
        "FLEETLAB_WAIT_TIME": "1", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": REGION,  # on an instance the boot script exports it from its metadata
    }  # fmt: skip


def run_worker(aws: Aws, tmp_path: Path) -> subprocess.Popen[bytes]:
    """One worker with exactly the user-data's configuration."""
    env = instance_env(aws, tmp_path / "worker", "here-1")
    with (tmp_path / "worker.out").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip


def test_a_spot_fleet_is_planned_and_provisioned_with_what_spot_needs(aws: Aws) -> None:
    planned = aws.lab(
        "provision", "--dry-run", "--image-parameter", AL2023, "--spot-fraction", "0.5"
    )
    assert planned.returncode == 0, planned.stderr
    assert "spot: the scaler launches 50 % of the fleet as spot" in planned.stdout
    assert "create  capacity          1..4 of c7i.large, 50 % spot" in planned.stdout
    refused = aws.lab("provision", "--dry-run", "--spot-fraction", "1.5")
    assert refused.returncode != 0
    aws.provision("--spot-fraction", "0.5")
    # The share is the scaler's setting, beside min and max, where a deploy leaves it.
    assert scaler_config(aws)["spot_fraction"] == 0.5
    again = aws.lab("provision", "--dry-run", "--image-parameter", AL2023, "--spot-fraction", "0.5")
    assert "exists  capacity" in again.stdout, again.stdout
    changed = aws.lab("provision", "--dry-run", "--image-parameter", AL2023)
    assert "change  capacity          1..4 of c7i.large (spot)" in changed.stdout, changed.stdout
    document = aws.iam.get_role_policy(
        RoleName="fleetlab-aws-instance", PolicyName="fleetlab-aws-instance"
    )["PolicyDocument"]
    sids = [s["Sid"] for s in document["Statement"]]
    assert sids[-2:] == ["LaunchSpot", "SpotServiceRole"]


def scaler_config(aws: Aws) -> dict[str, Any]:
    body = aws.s3.get_object(Bucket=BUCKET, Key=layout.SCALER_CONFIG)["Body"]
    try:
        return dict(json.loads(body.read()))
    finally:
        body.close()


def test_a_deploy_keeps_the_spot_share_the_scaler_launches_by(aws: Aws, tmp_path: Path) -> None:
    aws.provision("--min", "0", "--max", "4", "--spot-fraction", "0.5")
    deployed = aws.lab("deploy")  # renders the template's user-data again
    assert deployed.returncode == 0, deployed.stderr
    assert scaler_config(aws)["spot_fraction"] == 0.5
    queue = aws.queue_url("fleetlab-aws-requests")
    for k in range(7):  # a backlog the scaler launches 3 for (180 s jobs, 900 s target)
        aws.sqs.send_message(QueueUrl=queue, MessageBody=f"<backlog {k}/>")
    # One tick of the scaler as an instance runs it: exactly the deployed user-data's settings.
    env = instance_env(aws, tmp_path / "scaler", "here-scaler")
    done = subprocess.run([sys.executable, "-m", "worker.scaler", "--once"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    decision = json.loads(done.stdout.strip().splitlines()[-1])["decision"]
    assert decision["launch"] == 3, decision
    launched = [
        i.get("InstanceLifecycle", "on-demand")
        for r in aws.ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    ]
    assert sorted(launched) == ["on-demand", "on-demand", "spot"]  # 3 x 0.5, rounded down
