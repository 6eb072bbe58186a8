"""A provisioning plan: one step per resource, each ``exists``, ``create`` or ``change``.

Pure: a step is judged from what a resource looks like (``found``, None if absent) against what
the fleet wants, both as small mappings of the settings that matter. The I/O lives in the
``Part`` subclasses, one per kind of resource; ``plan`` only looks, ``apply`` acts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["exists", "create", "change"]
Settings = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """What provisioning does (or would do) to one resource."""

    kind: Kind
    resource: str
    name: str
    changes: tuple[str, ...] = ()

    def line(self) -> str:
        """One line of the printed plan."""
        detail = f" ({', '.join(self.changes)})" if self.changes else ""
        return f"{self.kind:7} {self.resource:17} {self.name}{detail}"


def changed(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> tuple[str, ...]:
    """The settings of ``wanted`` that ``found`` does not have (or has otherwise)."""
    return tuple(key for key, value in wanted.items() if found.get(key) != value)


def judge(
    resource: str, name: str, wanted: Mapping[str, Any], found: Mapping[str, Any] | None
) -> Step:
    """The step that takes ``found`` to ``wanted``."""
    if found is None:
        return Step("create", resource, name)
    diff = changed(wanted, found)
    return Step("change" if diff else "exists", resource, name, diff)


def summary(steps: Iterable[Step]) -> str:
    """``2 to create, 1 to change, 9 exist``."""
    counts = {"create": 0, "change": 0, "exists": 0}
    for step in steps:
        counts[step.kind] += 1
    return f"{counts['create']} to create, {counts['change']} to change, {counts['exists']} exist"


class Part(ABC):
    """One resource of the fleet: how to find it, what it should be, how to make it so."""

    resource: str = ""

    @property
    @abstractmethod
    def name(self) -> str:
        """The resource's name."""

    @abstractmethod
    def found(self) -> Settings | None:
        """Its settings as they are, or None when it does not exist. Raises ``NotOurs`` when
        one by this name exists without the fleet's tag."""

    @abstractmethod
    def wanted(self) -> Settings:
        """Its settings as the fleet needs them."""

    @abstractmethod
    def create(self) -> None:
        """Make it, tagged for the fleet."""

    def change(self, keys: tuple[str, ...]) -> None:
        """Set the settings named in ``keys`` (by default: nothing a part can change)."""
        raise NotImplementedError(f"{self.resource} {self.name}: cannot change {keys}")

    def step(self) -> Step:
        """What applying would do now. Looks first: what a part finds (an id) may be what a
        later part wants."""
        found = self.found()
        return judge(self.resource, self.name, self.wanted(), found)


def plan(parts: Iterable[Part]) -> list[Step]:
    """Look at every part; change nothing."""
    return [part.step() for part in parts]


def apply(parts: Iterable[Part], report: Callable[[Step], None]) -> list[Step]:
    """Bring every part, in order, to what the fleet wants; report each step as it is done.
    Later parts see what earlier ones made (a queue's ARN, the template's id)."""
    done = []
    for part in parts:
        step = part.step()
        if step.kind == "create":
            part.create()
        elif step.kind == "change":
            part.change(step.changes)
        report(step)
        done.append(step)
    return done
