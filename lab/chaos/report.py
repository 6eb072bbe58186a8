"""A scenario's report: the tallies every scenario shares, its checks, its fault timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Tally:
    """What the evidence says happened to the requests a scenario sent, by request id."""

    sent: int
    answered: int  # at least one response (callback or response queue)
    duplicate_effects: int  # more than one completed run, or differing responses
    dead_lettered: int  # in the dead-letter queue
    lost: int  # neither answered nor dead-lettered


@dataclass(frozen=True)
class Check:
    """One rule checked on the evidence."""

    rule: str
    ok: bool
    detail: str = ""


@dataclass
class ScenarioReport:
    """One scenario's outcome."""

    name: str
    tally: Tally
    checks: list[Check]
    timeline: list[tuple[float, str]]
    seconds: float
    figures: dict[str, float] = field(default_factory=dict)
    error: str | None = None  # the scenario could not run to its end

    @property
    def passed(self) -> bool:
        """Every rule held and the scenario ran to its end."""
        return self.error is None and all(c.ok for c in self.checks)

    @property
    def notes(self) -> list[str]:
        """Broken rules first, then the figures and what held."""
        broken = [f"BROKEN {c.rule}: {c.detail}" for c in self.checks if not c.ok]
        held = [f"ok {c.rule}" + (f": {c.detail}" if c.detail else "") for c in self.checks if c.ok]
        figures = [f"{k} = {v:g}" for k, v in self.figures.items()]
        return ([f"ERROR {self.error}"] if self.error else []) + broken + figures + held

    def as_dict(self) -> dict[str, Any]:
        """The JSON form the issue names (plus the timeline and checks)."""
        return {
            "name": self.name,
            "passed": self.passed,
            "sent": self.tally.sent,
            "answered": self.tally.answered,
            "duplicate_effects": self.tally.duplicate_effects,
            "dead_lettered": self.tally.dead_lettered,
            "lost": self.tally.lost,
            "seconds": round(self.seconds, 1),
            "notes": self.notes,
            "figures": self.figures,
            "timeline": [{"at": round(at, 2), "event": what} for at, what in self.timeline],
        }


COLUMNS = ("scenario", "result", "sent", "answered", "dup. effects", "dead-lettered", "lost", "s")


def rows(reports: list[ScenarioReport]) -> list[tuple[str, ...]]:
    """The summary table's cells, one row per scenario (``COLUMNS`` heads them)."""
    return [
        (
            r.name,
            "pass" if r.passed else "FAIL",
            str(r.tally.sent),
            str(r.tally.answered),
            str(r.tally.duplicate_effects),
            str(r.tally.dead_lettered),
            str(r.tally.lost),
            f"{r.seconds:.0f}",
        )
        for r in reports
    ]


def table(reports: list[ScenarioReport]) -> str:
    """The summary table, one row per scenario."""
    rows_ = [COLUMNS, *rows(reports)]
    widths = [max(len(row[i]) for row in rows_) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows_
    )


def details(report: ScenarioReport) -> str:
    """One scenario's timeline of injected faults and its notes."""
    lines = [f"{report.name}: {'pass' if report.passed else 'FAIL'} in {report.seconds:.1f} s"]
    lines += [f"  {at:7.2f} s  {what}" for at, what in report.timeline]
    lines += [f"  - {note}" for note in report.notes]
    return "\n".join(lines)
