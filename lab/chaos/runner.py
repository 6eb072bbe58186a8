"""Run scenarios one after another, each in its own clean lab, and report on each."""

from __future__ import annotations

import time
from collections.abc import Callable

from botocore.exceptions import BotoCoreError, ClientError

from lab.chaos.harness import ChaosLab
from lab.chaos.report import ScenarioReport
from lab.chaos.scenarios import Scenario
from lab.runtime.settings import LabSettings
from worker.errors import FleetlabError


def run(
    base: LabSettings, scenario: Scenario, seed: int, say: Callable[[str], None] = lambda _: None
) -> ScenarioReport:
    """Bring a clean lab up, play ``scenario`` on it, take it down; never raises for what the
    scenario meets: a scenario that cannot finish is a failed report with the reason."""
    lab = ChaosLab(base, scenario.name, seed, scenario.setup)
    started = time.monotonic()
    checks = []
    error: str | None = None
    try:
        lab.up()
        checks = scenario.run(lab)
        lab.mark("settled; evidence gathered")
    except (FleetlabError, BotoCoreError, ClientError, OSError, KeyError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        lab.mark(f"stopped: {error}")
    figures: dict[str, float] = {}
    try:
        if error is not None and lab.sent:
            lab.gather()
        figures = lab.figures | scenario.figures(lab)
    except (FleetlabError, BotoCoreError, ClientError, OSError, ValueError) as exc:
        error = error or f"gathering evidence failed: {exc}"
    finally:
        try:
            lab.down()
            lab.mark("lab down")
        except (FleetlabError, OSError) as exc:
            error = error or f"lab down failed: {exc}"
    report = ScenarioReport(
        name=scenario.name,
        tally=lab.evidence.tally(list(lab.sent)),
        checks=checks,
        timeline=lab.timeline,
        seconds=time.monotonic() - started,
        figures=figures,
        error=error,
    )
    say(f"{scenario.name}: {'pass' if report.passed else 'FAIL'} ({report.seconds:.0f} s)")
    return report
