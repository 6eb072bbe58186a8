"""The lab's environment choice: one value in a small file, overridable for one command."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app, observe, tables
from lab.errors import LabError
from lab.runtime import environment, stack
from lab.runtime.settings import LabSettings, load_settings


def test_local_until_another_is_chosen(tmp_path: Path) -> None:
    assert environment.chosen(tmp_path) == "local"
    environment.use(tmp_path, "aws")
    assert environment.chosen(tmp_path) == "aws"
    assert (tmp_path / "config.toml").read_text().endswith('env = "aws"\n')


def test_unknown_environment_is_refused_and_nothing_written(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="unknown environment 'prod'"):
        environment.use(tmp_path, "prod")
    assert not (tmp_path / "config.toml").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [('env = "mars"\n', "unknown environment"), ("env = 3\n", "must be a string"),
     ("env = \n", "cannot read")],
)  # fmt: skip
def test_a_broken_config_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(text)
    with pytest.raises(LabError, match=message):
        environment.chosen(tmp_path)


def test_the_override_wins_for_one_command(tmp_path: Path) -> None:
    environment.use(tmp_path, "aws")
    assert environment.selected(tmp_path, {"FLEETLAB_LAB_ENV": "localstack"}) == "localstack"
    assert environment.selected(tmp_path, {}) == "aws"


def test_settings_follow_the_environment(tmp_path: Path) -> None:
    home = {"FLEETLAB_LAB_HOME": str(tmp_path)}
    assert load_settings(home).emulator_port == 5000
    localstack = load_settings(home | {"FLEETLAB_LAB_ENV": "localstack"})
    assert (localstack.env, localstack.emulator_port) == ("localstack", 4566)
    moved = load_settings(
        home | {"FLEETLAB_LAB_ENV": "localstack", "FLEETLAB_EMULATOR_PORT": "4600"}
    )
    assert moved.endpoint_url == "http://127.0.0.1:4600"


def test_lab_up_never_starts_an_emulator_for_aws(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="lab provision"):
        stack.up(LabSettings(home=tmp_path, env="aws"))
    assert not (tmp_path / "pids").exists()


def test_the_network_is_direct_until_a_latency_is_remembered(tmp_path: Path) -> None:
    home = {"FLEETLAB_LAB_HOME": str(tmp_path)}
    plain = load_settings(home)
    assert (plain.latency, plain.proxy_port) == ("none", 5001)
    assert stack.routed(plain) == {}
    environment.remember(tmp_path, "latency", "aws")
    routed = load_settings(home | {"FLEETLAB_EMULATOR_PORT": "6000"})
    assert (routed.latency, routed.proxy_url) == ("aws", "http://127.0.0.1:6001")
    assert stack.routed(routed) == {"FLEETLAB_ENDPOINT_URL": "http://127.0.0.1:6001"}
    moved = load_settings(home | {"FLEETLAB_PROXY_PORT": "7000"})
    assert moved.proxy_url == "http://127.0.0.1:7000"


def test_a_bad_latency_is_refused_before_anything_starts(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('latency = "gcp"\n')
    with pytest.raises(LabError, match="latency must be one of none, aws"):
        load_settings({"FLEETLAB_LAB_HOME": str(tmp_path)})
    (tmp_path / "config.toml").unlink()
    result = CliRunner().invoke(
        app, ["up", "--latency", "gcp"], env={"FLEETLAB_LAB_HOME": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert "unknown latency mode 'gcp'" in result.output
    assert not (tmp_path / "config.toml").exists()
    assert not (tmp_path / "pids").exists()


def test_status_names_the_network_and_a_proxy_that_is_not_running(tmp_path: Path) -> None:
    plain = LabSettings(home=tmp_path)
    assert tables.network_line(observe.network(plain)) == (
        "network: direct to the emulator (latency none)"
    )
    routed = observe.network(LabSettings(home=tmp_path, latency="aws"))
    assert routed == {"latency": "aws", "proxy": None, "calls": {}}
    assert "its proxy is not running" in tables.network_line(routed)
    carried = {"latency": "aws", "proxy": "http://127.0.0.1:5001", "calls": {"s3.PutObject": 2}}
    assert tables.network_line(carried) == (
        "network: latency aws via the proxy http://127.0.0.1:5001, 2 AWS calls carried"
    )
