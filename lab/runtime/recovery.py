"""After an emulator restart: notice what it forgot, and build the lab's part of the world again.

Neither moto nor LocalStack keeps state across a restart here, so queues (with every message
in them), the bucket (bundles, claims, status), the log group and EC2's instances are gone. The
lab re-creates the resources under the same names, publishes the code again, points the scalers
at the same bounds and launches the fleet's minimum; the hypervisor stops the bodies whose
instances EC2 no longer knows. What was queued or running is lost with the emulator: only the
client knows what it sent, so resubmitting is the client's part (`lab chaos` shows it).
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from lab.client import samples
from lab.ec2 import instances
from lab.errors import LabError
from lab.runtime import scaler, stack
from lab.runtime.resources import LabEnv, clients_for, ensure
from lab.runtime.settings import LabSettings
from worker.aws import Clients
from worker.state.store import S3JsonStore


def lost(clients: Clients, env: LabEnv) -> list[str]:
    """Which of the lab's resources the emulator no longer has (empty: nothing was lost)."""
    missing: list[str] = []
    try:
        clients.sqs.get_queue_attributes(QueueUrl=env.request_queue_url, AttributeNames=["All"])
    except ClientError:
        missing.append("request queue")
    try:
        clients.s3.head_bucket(Bucket=env.bucket)
    except ClientError:
        missing.append("bucket")
    return missing


def recover(settings: LabSettings, env: LabEnv) -> list[str]:
    """Re-create what the emulator forgot; return what was done. Idempotent."""
    clients = clients_for(env)
    missing = lost(clients, env)
    if not missing:
        return []
    try:
        fresh = ensure(settings, clients, env.env)
        fresh.save(settings.home)
        done = ["queues, bucket and log group re-created"]
        files = samples.make(settings.home / "receiver" / "media")
        samples.upload(clients.s3, fresh.bucket, files)
        low, high = stack.load_bounds(settings.home)
        if high:
            made = stack.deploy(settings, fresh, clients)
            scaler.write_config(
                S3JsonStore(clients.s3, fresh.bucket), {"min_instances": low, "max_instances": high}
            )
            launched = instances.launch(clients.ec2, fresh.env, low)
            done += [f"bundle {made.version} published", f"{len(launched)} instance(s) launched"]
    except (BotoCoreError, ClientError) as exc:
        raise LabError(f"recovery failed: {exc}") from None
    return done
