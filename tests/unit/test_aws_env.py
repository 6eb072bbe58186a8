"""Env aws at the edges: settings on real time, no fake keys for workers or clients."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.runtime import environment
from lab.runtime.resources import LAB_CREDENTIALS, LabEnv, lab_clients
from lab.runtime.settings import AWS_BOOT_PACKAGES, load_settings
from lab.runtime.stack import instance_config


def lab_env(env: str, endpoint: str | None) -> LabEnv:
    return LabEnv(env, "eu-west-1", endpoint, "rq", "sq", "dq", "b", "/g", None, 5, 30)


def test_aws_settings_run_in_real_time(tmp_path: Path) -> None:
    env = {"FLEETLAB_LAB_HOME": str(tmp_path), "AWS_REGION": "eu-west-1",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:1"}  # fmt: skip
    real = load_settings(env, "aws")
    assert (real.job_speed, real.scaler_interval_s, real.boot_packages) == (
        1.0,
        30.0,
        AWS_BOOT_PACKAGES,
    )
    assert real.aws_endpoint_url == "http://127.0.0.1:1" and real.region == "eu-west-1"
    lab = load_settings(env, "local")
    assert lab.job_speed == 0.01 and lab.aws_endpoint_url is None and not lab.boot_packages


def test_aws_workers_and_instances_get_no_keys_and_no_endpoint(tmp_path: Path) -> None:
    aws = lab_env("aws", None)
    assert not aws.emulated
    assert not set(LAB_CREDENTIALS) & set(aws.worker_env())
    assert "FLEETLAB_ENDPOINT_URL" not in aws.worker_env()
    assert "FLEETLAB_WAIT_TIME" not in aws.worker_env()  # AWS's 20 s long poll
    config = instance_config(load_settings({"FLEETLAB_LAB_HOME": str(tmp_path)}, "aws"), aws)
    assert (
        config["FLEETLAB_SPEED"] == "1"
        and config["FLEETLAB_BOOT_PACKAGES"] == "python3-venv sox imagemagick age"
    )
    emulated = lab_env("local", "http://127.0.0.1:5000").worker_env()
    assert emulated["AWS_ACCESS_KEY_ID"] == "test" and emulated["FLEETLAB_WAIT_TIME"] == "2"


def test_only_a_lab_on_an_emulator_routes_its_instances_through_the_latency_proxy(
    tmp_path: Path,
) -> None:
    environment.remember(tmp_path, "latency", "aws")
    home = {"FLEETLAB_LAB_HOME": str(tmp_path)}
    local = instance_config(load_settings(home, "local"), lab_env("local", "http://127.0.0.1:5000"))
    assert local["FLEETLAB_ENDPOINT_URL"] == "http://127.0.0.1:5001"
    aws = instance_config(load_settings(home, "aws"), lab_env("aws", None))
    assert "FLEETLAB_ENDPOINT_URL" not in aws


def test_aws_clients_take_the_credentials_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-chain")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-of-the-chain")
    chain = lab_clients("eu-west-1", "http://127.0.0.1:1", emulated=False)
    lab = lab_clients("eu-west-1", "http://127.0.0.1:1")
    assert chain._session.get_credentials().access_key == "from-the-chain"  # type: ignore[union-attr]
    assert lab._session.get_credentials().access_key == "test"  # type: ignore[union-attr]
