"""The service registry: only allow-listed, well-formed parameters ever reach an argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigError, ParameterRejected, UnknownService
from worker.handle.services import load_registry

REGISTRY = load_registry()


def argv(service: str, params: list[tuple[str, str]]) -> list[str]:
    return REGISTRY.get(service).argv(
        params, python="py", input_path="/in", output_path="/out", speed=0.5
    )


def test_analyze_renders_the_articles_parameter() -> None:
    assert argv("analyze", [("R", "-100")]) == [
        "py", "-m", "fake_binary", "--speed", "0.5", "--R=-100", "/in",
    ]  # fmt: skip


def test_wait_sleeps_its_seconds_and_nothing_else() -> None:
    assert argv("wait", [("seconds", "0.5")]) == ["/bin/sleep", "0.5"]
    with pytest.raises(ParameterRejected):
        argv("wait", [("seconds", "-1")])
    with pytest.raises(ParameterRejected):
        argv("wait", [("seconds", "1; reboot")])


def test_sox_services_use_real_binaries() -> None:
    assert argv("audio-stats", [("channel", "1")]) == ["sox", "/in", "-n", "remix", "1", "stat"]
    assert argv("audio-spectrogram", [("width", "400")])[-2:] == ["-o", "/out"]


@pytest.mark.parametrize(
    ("service", "params"),
    [
        ("analyze", [("X", "1")]),
        ("analyze", [("R", "5000")]),
        ("analyze", [("R", "1e3")]),
        ("analyze", [("R", "1; rm -rf /")]),
        ("analyze", [("R", "1"), ("R", "2")]),
        ("audio-stats", [("channel", "3")]),
        ("audio-stats", [("trim", "-1")]),
        ("audio-spectrogram", [("title", "-o/etc/passwd")]),
        ("audio-spectrogram", [("title", "$(id)")]),
        ("noop", [("anything", "1")]),
    ],
)
def test_disallowed_parameters_are_rejected(service: str, params: list[tuple[str, str]]) -> None:
    with pytest.raises(ParameterRejected):
        argv(service, params)


def test_unknown_service() -> None:
    with pytest.raises(UnknownService):
        REGISTRY.get("rm")


@pytest.mark.parametrize(
    "toml",
    [
        "",
        '[services.x]\ncommand = "sh -c"\n',
        '[services.x]\ncommand = ["a", "{shell}"]\n',
        '[services.x]\ncommand = ["a"]\noutput = "file"\n',
        '[services.x]\ncommand = ["a"]\n[services.x.parameters.p]\nkind = "int"\nmin = 5\nmax = 1\narg = ["{value}"]\n',
        '[services.x]\ncommand = ["a"]\n[services.x.parameters.p]\nkind = "pattern"\npattern = "("\narg = ["{value}"]\n',
        '[services.x]\ncommand = ["a"]\n[services.x.parameters.p]\nkind = "eval"\narg = ["{value}"]\n',
    ],
)
def test_bad_services_files_are_refused(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "services.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError):
        load_registry(path)
