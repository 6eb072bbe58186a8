"""Instance metadata (IMDSv2) semantics, on the service object and a virtual clock."""

from __future__ import annotations

import json

import pytest

from lab.ec2.metadata import Identity, MetadataService, Notices

ME = Identity(
    instance_id="i-0123456789abcdef0",
    instance_type="c5.large",
    image_id="ami-0f1ee7ab",
    region="eu-west-1",
    zone="eu-west-1a",
    local_ipv4="10.0.0.7",
    role="fleetlab-local-instance",
    user_data="#!/bin/bash\necho hi\n",
)
T0 = 1_800_000_000.0


def token(service: MetadataService, ttl: str = "60", now: float = T0) -> str:
    reply = service.answer(
        "PUT", "/latest/api/token", {"x-aws-ec2-metadata-token-ttl-seconds": ttl}, now
    )
    assert reply.status == 200
    return reply.body


def get(service: MetadataService, path: str, tok: str, now: float = T0) -> tuple[int, str]:
    reply = service.answer("GET", path, {"x-aws-ec2-metadata-token": tok}, now)
    return reply.status, reply.body


@pytest.mark.parametrize("ttl", ["0", "21601", "-5", "abc", "", "1.5"])
def test_a_ttl_out_of_range_or_not_a_number_is_400(ttl: str) -> None:
    service = MetadataService(ME)
    headers = {"x-aws-ec2-metadata-token-ttl-seconds": ttl} if ttl else {}
    assert service.answer("PUT", "/latest/api/token", headers, T0).status == 400


@pytest.mark.parametrize("ttl", ["1", "21600"])
def test_the_ttl_bounds_are_allowed(ttl: str) -> None:
    assert token(MetadataService(ME), ttl)


def test_a_get_without_a_token_or_with_a_wrong_one_is_401() -> None:
    service = MetadataService(ME)
    assert service.answer("GET", "/latest/meta-data/instance-id", {}, T0).status == 401
    assert get(service, "/latest/meta-data/instance-id", "forged")[0] == 401
    other = token(MetadataService(ME))  # another instance's token is no token here
    assert get(service, "/latest/meta-data/instance-id", other)[0] == 401


def test_a_token_expires_after_its_ttl() -> None:
    service = MetadataService(ME)
    tok = token(service, "10")
    assert get(service, "/latest/meta-data/instance-id", tok, T0 + 9.9) == (200, ME.instance_id)
    assert get(service, "/latest/meta-data/instance-id", tok, T0 + 10)[0] == 401


def test_a_token_through_a_proxy_is_refused_and_get_on_the_token_path_is_405() -> None:
    service = MetadataService(ME)
    headers = {"x-aws-ec2-metadata-token-ttl-seconds": "60", "x-forwarded-for": "10.0.0.1"}
    assert service.answer("PUT", "/latest/api/token", headers, T0).status == 403
    assert service.answer("GET", "/latest/api/token", {}, T0).status == 405
    assert service.answer("POST", "/latest/meta-data/", {}, T0).status == 405


def test_identity_paths() -> None:
    service = MetadataService(ME)
    tok = token(service)
    for path, want in [
        ("meta-data/instance-id", ME.instance_id),
        ("meta-data/instance-type", "c5.large"),
        ("meta-data/ami-id", "ami-0f1ee7ab"),
        ("meta-data/placement/region", "eu-west-1"),
        ("meta-data/placement/availability-zone", "eu-west-1a"),
        ("meta-data/placement/availability-zone/", "eu-west-1a"),  # botocore's spelling
        ("meta-data/local-ipv4", "10.0.0.7"),
        ("meta-data/instance-life-cycle", "on-demand"),
        ("user-data", ME.user_data),
        ("meta-data/iam/security-credentials/", ME.role),
    ]:
        assert get(service, f"/latest/{path}", tok) == (200, want), path
    status, listing = get(service, "/latest/meta-data/", tok)
    assert status == 200
    assert {"instance-id", "placement/", "iam/"} <= set(listing.split("\n"))
    assert get(service, "/latest/meta-data/no-such-thing", tok)[0] == 404


def test_role_credentials_are_stable_then_renewed_before_they_expire() -> None:
    service = MetadataService(ME)
    path = f"/latest/meta-data/iam/security-credentials/{ME.role}"
    first = json.loads(get(service, path, token(service))[1])
    assert first["Code"] == "Success"
    assert first["AccessKeyId"].startswith("ASIA") and len(first["AccessKeyId"]) == 20
    assert first["SecretAccessKey"] and first["Token"]
    assert first["Expiration"] == "2027-01-15T14:00:00Z"  # six hours on
    later = T0 + 3600
    assert json.loads(get(service, path, token(service, now=later), later)[1]) == first
    late = T0 + 5.5 * 3600
    renewed = json.loads(get(service, path, token(service, now=late), late)[1])
    assert renewed["AccessKeyId"] != first["AccessKeyId"]
    assert (
        get(service, "/latest/meta-data/iam/security-credentials/other", token(service))[0] == 404
    )


def test_spot_and_rebalance_paths_are_404_until_a_notice() -> None:
    posted = Notices()
    service = MetadataService(ME, lambda: posted)
    tok = token(service)
    assert get(service, "/latest/meta-data/spot/instance-action", tok)[0] == 404
    assert get(service, "/latest/meta-data/events/recommendations/rebalance", tok)[0] == 404
    posted = Notices(interruption_at=T0 + 120, rebalance_at=T0 - 30)
    status, body = get(service, "/latest/meta-data/spot/instance-action", tok)
    assert status == 200
    assert json.loads(body) == {"action": "terminate", "time": "2027-01-15T08:02:00Z"}
    status, body = get(service, "/latest/meta-data/events/recommendations/rebalance", tok)
    assert (status, json.loads(body)) == (200, {"noticeTime": "2027-01-15T07:59:30Z"})
