"""Instance metadata over HTTP: the lab's server as curl, botocore and the worker's reader see it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import botocore.session
import pytest

from lab.ec2 import notices
from lab.ec2.imds import MetadataServer
from lab.ec2.metadata import Identity, MetadataService
from worker.consume.notice import read
from worker.net.imds import Metadata, MetadataError

pytestmark = pytest.mark.integration

ME = Identity("i-0123456789abcdef0", "c5.large", "ami-0f1ee7ab", "eu-west-1", "eu-west-1b",
              "10.0.0.7", "fleetlab-t-instance", "#!/bin/bash\n", "spot")  # fmt: skip


@pytest.fixture
def server(tmp_path) -> Iterator[MetadataServer]:  # type: ignore[no-untyped-def]
    made = MetadataServer(MetadataService(ME, lambda: notices.load(tmp_path))).start()
    made.folder = tmp_path  # type: ignore[attr-defined]
    yield made
    made.close()


def curl(*args: str) -> tuple[int, str]:
    done = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args],
                          capture_output=True, text=True, check=True, timeout=10)  # fmt: skip
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def test_token_semantics_over_http(server: MetadataServer) -> None:
    base = f"{server.url}latest"
    assert curl(f"{base}/meta-data/instance-id")[0] == 401
    assert curl("-X", "PUT", f"{base}/api/token")[0] == 400  # no TTL
    assert curl("-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 21601",
                f"{base}/api/token")[0] == 400  # fmt: skip
    code, token = curl("-X", "PUT", "-H", "X-aws-ec2-metadata-token-ttl-seconds: 1",
                       f"{base}/api/token")  # fmt: skip
    assert code == 200 and token
    with_token = ("-H", f"X-aws-ec2-metadata-token: {token}")
    assert curl(*with_token, f"{base}/meta-data/instance-id") == (200, ME.instance_id)
    assert curl("-H", "X-aws-ec2-metadata-token: forged", f"{base}/meta-data/instance-id")[0] == 401


def test_botocore_takes_the_role_credentials_and_the_zone(
    server: MetadataServer, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_EC2_METADATA_DISABLED"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", server.url)
    session = botocore.session.Session()
    found = session.get_credentials()
    assert found is not None and found.method == "iam-role"
    frozen = found.get_frozen_credentials()
    served = server.service.credentials(0)
    assert (frozen.access_key, frozen.secret_key, frozen.token) == (
        served.access_key_id, served.secret_access_key, served.token)  # fmt: skip


def test_the_workers_reader_caches_its_token_and_sees_notices(server: MetadataServer) -> None:
    clock = [0.0]
    metadata = Metadata(server.url, clock=lambda: clock[0])
    assert metadata.get("meta-data/placement/region") == "eu-west-1"
    assert metadata.get("meta-data/nothing-here") is None
    assert read(metadata).interruption_at is None
    notices.post(server.folder, interruption_at=2_000_000_000.0, rebalance_at=1_999_999_000.0)  # type: ignore[attr-defined]
    seen = read(metadata)
    assert seen.interruption_at == 2_000_000_000.0 and seen.rebalance
    with pytest.raises(MetadataError):
        Metadata("file:///etc/passwd")
    dead = Metadata("http://127.0.0.1:9/")
    with pytest.raises(MetadataError):
        dead.get("meta-data/instance-id")
