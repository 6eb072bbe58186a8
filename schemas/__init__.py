"""The request and response schemas and their examples, shipped with the code."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Return the filesystem path of a shipped schema file, e.g. ``path("request.xsd")``."""
    return Path(str(resources.files(__name__).joinpath(name)))


def examples() -> list[Path]:
    """Return the example requests (not the example responses), sorted by name."""
    return sorted(p for p in path("examples").glob("*.xml") if not p.name.startswith("response-"))
