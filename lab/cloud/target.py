"""What provisioning works on: the account, the names, the options, and what it has found.

Built once by ``connect`` (who the caller is, which image); the parts fill in the ids they find
or make (the template's, the security group's) so that later parts can name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from lab.cloud.names import CloudNames, names_for
from lab.cloud.plan import Part
from lab.errors import ImageNotFound, LabError, NoCredentials
from lab.runtime.resources import LabEnv, lab_clients
from lab.runtime.settings import LabSettings
from worker.aws import Clients

# Debian 12: its python3 is the 3.11 the bundle's wheelhouse is built for (Amazon Linux 2023
# has 3.9), and its curl signs SigV4 as the boot script needs. Published by the Debian cloud team.
DEBIAN_12 = "/aws/service/debian/release/bookworm/latest/amd64"


@dataclass(frozen=True)
class Options:
    """What the user chose: sizes, image, retention."""

    instance_type: str = "c7i.large"
    min_instances: int = 1
    max_instances: int = 4
    image_id: str | None = None
    image_parameter: str = DEBIAN_12
    bucket: str | None = None
    log_retention_days: int = 30
    dead_letter_retention_s: int = 14 * 24 * 3600  # SQS's maximum: time to read the reasons


@dataclass
class Target:
    """One environment in one account: where the parts look and what they have learnt."""

    settings: LabSettings
    clients: Clients
    names: CloudNames
    options: Options
    image_id: str
    endpoint_url: str | None = None
    queue_urls: dict[str, str] = field(default_factory=dict)
    security_group_id: str | None = None
    template_id: str | None = None

    def queue_url(self, name: str) -> str:
        """The queue's URL: as found, or as AWS will name it."""
        return self.queue_urls.get(name) or self.names.queue_url(name)

    def lab_env(self) -> LabEnv:
        """The environment description `lab deploy`, `lab submit` and the instances use."""
        names = self.names
        return LabEnv(
            env=names.env,
            region=names.region,
            endpoint_url=self.endpoint_url,
            request_queue_url=self.queue_url(names.request_queue),
            response_queue_url=self.queue_url(names.response_queue),
            dead_letter_queue_url=self.queue_url(names.dead_letter_queue),
            bucket=names.bucket,
            log_group=names.log_group,
            receiver_url=None,
            max_receive_count=self.settings.max_receive_count,
            visibility_timeout_s=self.settings.visibility_timeout_s,
        )


class FleetPart(Part):
    """A part of the fleet in one ``Target``."""

    def __init__(self, target: Target) -> None:
        self.target = target


def connect(settings: LabSettings, options: Options) -> Target:
    """Find out who the caller is (the account names the bucket and every ARN) and which image
    the fleet boots; a clear error when there are no credentials or no such image."""
    clients = lab_clients(settings.region, settings.aws_endpoint_url, emulated=False)
    account = caller_account(clients)
    names = names_for(settings.env, account, settings.region, options.bucket)
    image = options.image_id or image_from_parameter(clients, options.image_parameter)
    return Target(settings, clients, names, options, image, settings.aws_endpoint_url)


def caller_account(clients: Clients) -> str:
    """The account the credentials belong to."""
    try:
        return clients.sts.get_caller_identity()["Account"]
    except NoCredentialsError:
        raise NoCredentials(
            "no AWS credentials found: set AWS_PROFILE (after `aws configure` or "
            "`aws sso login`) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise NoCredentials(f"AWS refused the credentials ({code})") from None
    except BotoCoreError as exc:
        raise LabError(f"cannot reach AWS STS: {exc}") from None


def image_from_parameter(clients: Clients, parameter: str) -> str:
    """The image id a public SSM parameter names (a current Debian or Amazon Linux image)."""
    try:
        return clients.ssm.get_parameter(Name=parameter)["Parameter"]["Value"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise ImageNotFound(
            f"cannot read the image parameter {parameter} in {clients.region} ({code}): "
            "pass --image-id ami-… or another --image-parameter"
        ) from None
