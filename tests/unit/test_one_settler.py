"""No worker module but the settle step and the heartbeat ends a message or changes its visibility.

A guard on the shape issue 11 gave the worker: processing decides an outcome, one step acts.
"""

from __future__ import annotations

import re
from pathlib import Path

import worker

ROOT = Path(worker.__file__).parent
# The queue adapter's request-message calls, and the boto3 operations behind them.
CALLS = re.compile(
    r"\.(delete|change_visibility)\(|delete_message|change_message_visibility|set_visibility"
)


def callers() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("#"):
                continue
            for match in CALLS.finditer(line):
                found.setdefault(str(path.relative_to(ROOT)), set()).add(match.group(0))
    return found


def test_only_settle_deletes_and_only_settle_and_the_heartbeat_change_visibility() -> None:
    found = callers()
    assert found.pop("consume/queue.py")  # the adapter itself defines and translates them
    assert found == {
        "consume/settle.py": {".delete(", ".change_visibility("},
        "consume/heartbeat.py": {".change_visibility("},
    }
