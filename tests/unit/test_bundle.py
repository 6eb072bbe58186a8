"""User-data rendering (hostile values stay literal), the bundle pointer and the boot scripts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from lab.deploy import bundle
from lab.deploy.bundle import Bundle
from lab.ec2 import userdata
from lab.errors import LabError
from worker import boot

REPO = Path(__file__).resolve().parents[2]

HOSTILE = {
    "FLEETLAB_QUOTE": "x'; rm -rf / #",
    "FLEETLAB_SUBST": "$(touch {marker}) `touch {marker}` ${{HOME}}",
    "FLEETLAB_LINES": 'one\ntwo" three\\',
    "FLEETLAB_EMPTY": "",
    "FLEETLAB_PLAIN": "http://127.0.0.1:5000",
}


def hostile(marker: Path) -> dict[str, str]:
    return {name: value.format(marker=marker) for name, value in HOSTILE.items()}


def test_render_is_valid_bash_with_the_header_before_the_script(tmp_path: Path) -> None:
    text = userdata.render(hostile(tmp_path / "pwned"))
    script = tmp_path / "user-data.sh"
    script.write_text(text)
    checked = subprocess.run(
        ["bash", "-n", str(script)], check=False, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert text.count("#!/bin/bash") == 1  # the script's own shebang is replaced, not repeated
    assert text.index("export FLEETLAB_PLAIN=") < text.index("set -euo pipefail")
    assert not any(line.strip().startswith("set -x") for line in lines)


def test_hostile_values_stay_one_literal_string(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = hostile(marker)
    header = tmp_path / "header.sh"
    header.write_text(userdata.header(config))
    for name, value in config.items():
        shown = subprocess.run(
            ["bash", "-c", f'source "$1"; printf %s "${name}"', "bash", str(header)],
            check=False,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == value
    assert not marker.exists()  # nothing in a value was ever run


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "X;rm", ""])
def test_render_refuses_names_that_are_not_shell_variables(name: str) -> None:
    with pytest.raises(LabError, match="not a shell variable"):
        userdata.render({name: "v"})


@pytest.mark.parametrize("name", sorted(userdata.SECRETS))
def test_render_refuses_credentials(name: str) -> None:
    with pytest.raises(LabError, match="credential"):
        userdata.render({name: "secret"})


def test_render_refuses_more_than_ec2_allows() -> None:
    with pytest.raises(LabError, match="EC2 allows"):
        userdata.render({"FLEETLAB_BIG": "x" * userdata.MAX_BYTES})


def test_boot_and_start_scripts_are_valid_bash(tmp_path: Path) -> None:
    for name, text in [
        ("user-data.sh", boot.script()),
        ("start.sh", bundle.START),
        ("broken.sh", bundle.BROKEN_START),
    ]:
        path = tmp_path / name
        path.write_text(text)
        checked = subprocess.run(
            ["bash", "-n", str(path)], check=False, capture_output=True, text=True
        )
        assert checked.returncode == 0, f"{name}: {checked.stderr}"


def test_broken_start_script_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "start.sh"
    path.write_text(bundle.BROKEN_START)
    assert subprocess.run(["bash", str(path)], check=False, capture_output=True).returncode == 1


def test_dependencies_are_the_run_time_ones_only() -> None:
    names = [req.split(">")[0].split("=")[0].split("[")[0] for req in bundle.dependencies(REPO)]
    assert {"boto3", "lxml", "urllib3"} <= set(names)
    assert not {"typer", "rich", "moto", "pytest", "mypy"} & set(names)


def made(version: str, sha: str = "a" * 64) -> Bundle:
    return Bundle(version=version, path=Path(f"/x/{version}.tar.gz"), sha256=sha, size=10)


def test_first_pointer_has_no_previous() -> None:
    doc = bundle.pointer_document(made("v1"), "bundles/v1.tar.gz", None)
    assert doc == {"version": "v1", "key": "bundles/v1.tar.gz", "sha256": "a" * 64, "size": 10}


def test_pointer_keeps_the_one_it_replaces_without_nesting() -> None:
    first = bundle.pointer_document(made("v1"), "bundles/v1.tar.gz", None)
    second = bundle.pointer_document(made("v2", "b" * 64), "bundles/v2.tar.gz", first)
    third = bundle.pointer_document(made("v3", "c" * 64), "bundles/v3.tar.gz", second)
    assert second["previous"] == first
    assert third["previous"]["version"] == "v2"
    assert "previous" not in third["previous"]


def test_republishing_a_version_keeps_the_earlier_previous() -> None:
    first = bundle.pointer_document(made("v1"), "bundles/v1.tar.gz", None)
    second = bundle.pointer_document(made("v2", "b" * 64), "bundles/v2.tar.gz", first)
    again = bundle.pointer_document(made("v2", "d" * 64), "bundles/v2.tar.gz", second)
    assert again["sha256"] == "d" * 64
    assert again["previous"]["version"] == "v1"


@pytest.mark.parametrize("version", ["../x", "a/b", "-rf", "", "v 1"])
def test_build_refuses_versions_that_are_not_plain_names(tmp_path: Path, version: str) -> None:
    with pytest.raises(LabError, match="bundle version"):
        bundle.build(REPO, tmp_path, version=version)


def test_prune_keeps_the_newest_archives_and_the_wheel_cache(tmp_path: Path) -> None:
    (tmp_path / "wheel-cache").mkdir()
    for age, name in enumerate(["c.tar.gz", "b.tar.gz", "a.tar.gz"]):
        path = tmp_path / name
        path.write_bytes(b"bundle")
        os.utime(path, (1_000_000 - age * 10, 1_000_000 - age * 10))
    assert [p.name for p in bundle.prune(tmp_path, keep=1)] == ["b.tar.gz", "a.tar.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tar.gz", "wheel-cache"]
    assert bundle.prune(tmp_path, keep=1) == []
