"""AWS behaviours the emulators lack, patched into the emulator's own process before it starts.

The emulator's Python runs this file by its path — ``python fidelity.py MODULE [ARG...]`` — and
it patches, then runs ``MODULE`` as ``python -m MODULE ARG...`` would. It imports nothing but the
standard library and moto: LocalStack's own virtualenv, which runs it too, has no fleetlab.

- **RunInstances with a ClientToken is idempotent**, as EC2 documents: a request repeated with
  the token of one that succeeded returns that request's reservation instead of starting more
  instances. moto, and LocalStack (whose EC2 is moto's), start new ones every time. The scaler
  launches with a token so that an SDK retry is safe; without this, a retry of a launch whose
  answer was lost (a connection the lab's own network faults reset after the emulator acted)
  started the instances twice and grew the fleet past its maximum — which AWS would not do.
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
from typing import Any

# moto fills a request without a ClientToken with this placeholder: such requests stay distinct.
MOTO_NO_TOKEN = "ABCDE"  # noqa: S105 (not a secret)


def idempotent_run_instances() -> None:
    """Make moto's RunInstances return the earlier reservation for a repeated client token."""
    from moto.ec2.models.instances import InstanceBackend  # noqa: PLC0415 (the emulator's moto)

    original = InstanceBackend.run_instances
    lock = threading.Lock()  # the server's threads: a retry must not race its original

    def run_instances(
        self: InstanceBackend,
        image_id: str,
        count: int,
        user_data: Any,
        security_group_names: list[str],
        **kwargs: Any,
    ) -> Any:
        token = kwargs.get("client_token")
        with lock:
            if token and token != MOTO_NO_TOKEN:
                for reservation in self.reservations.values():
                    if any(i.client_token == token for i in reservation.instances):
                        return reservation
            return original(self, image_id, count, user_data, security_group_names, **kwargs)

    InstanceBackend.run_instances = run_instances  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    """Patch, then run ``argv[0]`` as a module with the rest as its arguments."""
    if not argv:
        raise SystemExit("usage: fidelity.py MODULE [ARG...]")
    # Run by its path, this file's folder is first on the path, where lab/runtime/localstack.py
    # would stand in for LocalStack's package: the module is looked up as ``-m`` would.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    idempotent_run_instances()
    sys.argv = argv
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
