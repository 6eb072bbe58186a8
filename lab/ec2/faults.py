"""Faults that act on bodies, as the chaos scenarios will: crash, freeze, thaw.

``crash`` kills the body while EC2 still says "running" (a dead process on a live VM); ``freeze``
stops it with SIGSTOP (a zombie: holds its messages and claims but does nothing) until ``thaw``.
Terminating is not a fault on the body: it goes through EC2 (``instances.terminate``).
"""

from __future__ import annotations

import signal
from pathlib import Path

from lab.ec2.bodies import Body, backend_for, liveness
from lab.errors import LabError

_ACTIONS = {"crash": signal.SIGKILL, "freeze": signal.SIGSTOP, "thaw": signal.SIGCONT}


def body_of(home: Path, instance_id: str) -> Body:
    """The body record of ``instance_id``; raise ``LabError`` if it never had one."""
    body = Body.load(home / "instances" / instance_id)
    if body is None:
        raise LabError(f"instance {instance_id} has no body (unknown here, or not booted yet)")
    return body


def act(home: Path, instance_id: str, action: str) -> Body:
    """Apply ``action`` (crash, freeze, thaw) to the instance's body."""
    if action not in _ACTIONS:
        raise LabError(f"unknown fault {action!r}: choose {', '.join(_ACTIONS)}")
    body = body_of(home, instance_id)
    if liveness(body) == "dead" or not backend_for(body).signal(body, _ACTIONS[action]):
        raise LabError(f"the body of {instance_id} is not running")
    return body
