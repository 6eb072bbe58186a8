"""The notices posted for an instance — a spot interruption, a rebalance recommendation — kept in
``notices.json`` in its folder: ``lab instance interrupt|rebalance`` writes them, the hypervisor's
metadata service reads them on every request and terminates the instance when its time is up.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

from lab.ec2.metadata import Notices

FILE = "notices.json"


def load(folder: Path) -> Notices:
    """The notices posted for the instance in ``folder`` (none if the file is absent or bad)."""
    try:
        data = json.loads((folder / FILE).read_text())
        return Notices(**{k: float(v) for k, v in data.items() if v is not None})
    except (OSError, ValueError, TypeError):
        return Notices()


def post(folder: Path, *, interruption_at: float | None = None,
         rebalance_at: float | None = None) -> Notices:  # fmt: skip
    """Add a notice to what is posted (an earlier one of the same kind stands: AWS sends one)."""
    held = load(folder)
    if interruption_at is not None and held.interruption_at is None:
        held = replace(held, interruption_at=interruption_at)
    if rebalance_at is not None and held.rebalance_at is None:
        held = replace(held, rebalance_at=rebalance_at)
    tmp = folder / (FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(held)) + "\n")
    tmp.replace(folder / FILE)
    return held
