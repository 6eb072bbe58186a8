"""`lab chaos explore` / `replay`: what a user gets wrong is a one-line error and exit 1, before
any lab is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lab.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def lab_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLAB_LAB_HOME", str(tmp_path / ".lab"))


def test_an_unknown_fault_kind_is_named_with_the_known_ones() -> None:
    done = runner.invoke(app, ["chaos", "explore", "--faults", "crash,nope", "--clean"])
    assert done.exit_code == 1
    assert "unknown fault kind nope" in done.output and "net-partition" in done.output


def test_sabotage_kinds_are_not_there_for_a_user() -> None:
    done = runner.invoke(app, ["chaos", "explore", "--faults", "sabotage-delete"])
    assert done.exit_code == 1 and "unknown fault kind sabotage-delete" in done.output


@pytest.mark.parametrize(
    ("text", "says"),
    [(None, "cannot read"), ("{", "cannot read"), ('{"format": 1}', "not a schedule")],
)
def test_a_bad_schedule_file_is_refused(tmp_path: Path, text: str | None, says: str) -> None:
    path = tmp_path / "s.json"
    if text is not None:
        path.write_text(text)
    done = runner.invoke(app, ["chaos", "replay", str(path)])
    assert done.exit_code == 1 and says in done.output


def test_explore_on_no_running_lab_says_so(tmp_path: Path) -> None:
    done = runner.invoke(app, ["chaos", "explore", "--jobs", "5", "--faults", "crash"])
    assert done.exit_code == 1
    assert "lab up" in done.output
