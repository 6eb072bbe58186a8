"""Run scenarios one after another, each in its own clean lab, and report on each. The labs of
one run share a bundle built once and an emulator started once (each lab makes fresh resources
on it), and their bodies one venv cache, installed once."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from botocore.exceptions import BotoCoreError, ClientError

from lab.chaos.harness import ChaosLab, Shared, lab_home
from lab.chaos.report import ScenarioReport
from lab.chaos.scenarios import Scenario
from lab.runtime import emulator, procs, stack
from lab.runtime.settings import LabSettings
from worker.errors import FleetlabError


def run_all(
    base: LabSettings,
    scenarios: Sequence[Scenario],
    seed: int,
    say: Callable[[str], None] = lambda _: None,
) -> list[ScenarioReport]:
    """Run ``scenarios`` in order, each in a clean lab of its own, sharing what they can."""
    with shared_for(base, scenarios) as shared:
        return [run(base, scenario, seed, say, shared) for scenario in scenarios]


@contextlib.contextmanager
def shared_for(base: LabSettings, scenarios: Sequence[Scenario]) -> Iterator[Shared]:
    """A bundle built once for ``scenarios`` and, unless each needs an emulator of its own, an
    emulator started once (the two at the same time); both go when the run ends."""
    home = lab_home(base, "shared")
    settings = replace(base, home=home, shared=base.shared or base.home)
    shutil.rmtree(home, ignore_errors=True)
    port: int | None = None
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            building = pool.submit(stack.build, settings)
            if not all(s.setup.own_emulator for s in scenarios):
                port = procs.free_port()
                emulator.start(replace(settings, emulator_port=port), stack.base_env(base.env))
            built = building.result()
        yield Shared(built, port)
    finally:
        procs.stop(emulator.NAME, settings.pids)
        for folder in ("bundles", "localstack"):  # its logs stay
            shutil.rmtree(home / folder, ignore_errors=True)


def run(
    base: LabSettings,
    scenario: Scenario,
    seed: int,
    say: Callable[[str], None] = lambda _: None,
    shared: Shared | None = None,
) -> ScenarioReport:
    """Bring a clean lab up, play ``scenario`` on it, take it down; never raises for what the
    scenario meets: a scenario that cannot finish is a failed report with the reason."""
    lab = ChaosLab(base, scenario.name, seed, scenario.setup, shared)
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
