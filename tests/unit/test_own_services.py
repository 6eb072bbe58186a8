"""A services folder of one's own: loaded beside the built-ins, checked with file and line,
scaffolded, and run here through the worker's own filter and executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.client.local_run import run_here
from lab.deploy import services as own_services
from lab.deploy.scaffold import scaffold
from lab.errors import LabError
from lab.runtime import environment
from worker.errors import ConfigError, ParameterRejected
from worker.handle.ending import Failed, Succeeded
from worker.handle.service_file import load_registry

GOOD = """\
[services.shout]
description = "upper-cases its input"
command = ["{service_dir}/shout.sh", "{params}", "{input}"]
timeout_seconds = 10
env = { SHOUT_HOME = "{service_dir}/data" }

[services.shout.parameters.times]
kind = "int"
min = 1
max = 3
default = "1"
arg = ["{value}"]
"""
SHOUT = '#!/bin/sh\ni=0\nwhile [ "$i" -lt "$1" ]; do tr a-z A-Z <"$2"; i=$((i+1)); done\n'


def folder(tmp_path: Path, toml: str = GOOD, script: str | None = SHOUT) -> Path:
    path = tmp_path / "mine"
    path.mkdir()
    (path / "services.toml").write_text(toml)
    if script is not None:
        (path / "shout.sh").write_text(script)
        (path / "shout.sh").chmod(0o755)
    return path


def test_own_services_load_beside_the_built_ins(tmp_path: Path) -> None:
    own = folder(tmp_path)
    registry = load_registry(own=own)
    assert {"analyze", "encrypt", "image-thumbnail", "shout"} <= set(registry.services)
    shout = registry.get("shout")
    argv = shout.argv([], python="py", input_path="/in", output_path="/out", speed=1)
    assert argv == [f"{own.resolve()}/shout.sh", "1", "/in"]  # {service_dir}, the default
    assert shout.environment() == {"SHOUT_HOME": f"{own.resolve()}/data"}
    assert shout.origin == str(own / "services.toml")


@pytest.mark.parametrize(
    ("toml", "line", "words"),
    [
        ('[services.analyze]\ncommand = ["/bin/true"]\n', 1, "clashes with a built-in"),
        (GOOD.replace("min = 1\nmax = 3", "min = 5\nmax = 3"), 9, "min <= max"),
        (GOOD.replace('kind = "int"', 'kind = "eval"'), 8, "kind must be"),
        (GOOD + '[services.x]\ncommand = ["a", "{shell}"]\n', 14, "unknown placeholder"),
        (GOOD.replace('default = "1"', 'default = "9"'), 11, "breaks its own rule"),
        (GOOD.replace('SHOUT_HOME = "', 'PATH = "'), 5, "env"),
        ('[services.x]\ncommand = "oops\n', 2, ""),
    ],
)
def test_a_bad_folder_is_refused_with_file_and_line(
    tmp_path: Path, toml: str, line: int, words: str
) -> None:
    own = folder(tmp_path, toml)
    with pytest.raises(ConfigError) as caught:
        load_registry(own=own)
    assert str(caught.value).startswith(f"{own / 'services.toml'}:{line}: "), caught.value
    assert words in str(caught.value)
    with pytest.raises(LabError, match=f"services.toml:{line}: "):
        own_services.check(own)


def test_check_finds_a_missing_or_non_executable_program(tmp_path: Path) -> None:
    own = folder(tmp_path, script=None)
    with pytest.raises(LabError, match=r"services.toml:3: shout: .*shout.sh is not a file"):
        own_services.check(own)
    (own / "shout.sh").write_text(SHOUT)
    with pytest.raises(LabError, match=r"services.toml:3: .*not executable"):
        own_services.check(own)
    (own / "services.toml").write_text(GOOD.replace("{service_dir}/shout.sh", "no-such-tool"))
    with pytest.raises(LabError, match=r"services.toml:3: .*'no-such-tool' not found"):
        own_services.check(own)
    # A program a package brings cannot be seen here: a note, not an error.
    (own / "packages.txt").write_text("# what the instance installs\nno-such-package\n")
    assert own_services.check(own).notes == (
        "shout: no-such-tool is not on this machine; packages.txt may bring it",
    )
    (own / "packages.txt").write_text("good-one\nBad_Name\n")
    with pytest.raises(LabError, match=r"packages.txt:2: 'Bad_Name' is not a Debian package"):
        own_services.check(own)


def test_a_service_runs_here_through_the_same_filter(tmp_path: Path) -> None:
    own = folder(tmp_path)
    registry = own_services.check(own).registry
    data = tmp_path / "in.txt"
    data.write_text("quiet\n")
    done = run_here(registry, "shout", data, [("times", "2")], tmp_path / "out")
    assert isinstance(done.verdict, Succeeded)
    assert done.stdout == b"QUIET\nQUIET\n"
    with pytest.raises(ParameterRejected):
        run_here(registry, "shout", data, [("times", "4; rm -rf /")], tmp_path / "out")


def test_scaffold_makes_a_folder_that_checks_and_runs(tmp_path: Path) -> None:
    made = scaffold("wordcount", tmp_path)
    checked = own_services.check(made)
    assert [s.name for s in checked.own] == ["wordcount"] and checked.packages == ()
    assert (made / "request.xml").read_text().count('service="wordcount"') == 1
    done = run_here(
        checked.registry, "wordcount", made / "example-input.txt", [("mode", "words")], tmp_path
    )
    assert isinstance(done.verdict, Succeeded) and done.stdout.strip() == b"5"
    with pytest.raises(LabError, match="exists already"):
        scaffold("wordcount", tmp_path)
    with pytest.raises(LabError, match="service name"):
        scaffold("../evil", tmp_path)


def test_a_failing_own_service_is_a_clear_error(tmp_path: Path) -> None:
    own = folder(tmp_path, script="#!/bin/sh\necho 'no good' >&2\nexit 4\n")
    data = tmp_path / "in.txt"
    data.write_text("x")
    done = run_here(own_services.check(own).registry, "shout", data, [], tmp_path)
    assert done.verdict == Failed("BINARY_FAILED", "binary exited with status 4: no good")


def test_the_services_folder_is_remembered_beside_the_environment(tmp_path: Path) -> None:
    environment.use(tmp_path, "localstack")
    environment.remember(tmp_path, "services", '/srv/my "services"')
    assert environment.chosen(tmp_path) == "localstack"
    assert environment.services_dir(tmp_path, {}) == Path('/srv/my "services"')
    override = {environment.SERVICES_OVERRIDE: "/elsewhere"}
    assert environment.services_dir(tmp_path, override) == Path("/elsewhere")
    environment.use(tmp_path, "local")
    assert environment.services_dir(tmp_path, {}) == Path('/srv/my "services"')
