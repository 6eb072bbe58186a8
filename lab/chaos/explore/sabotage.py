"""Faults that make the system wrong on purpose, for the tests that show the explorer notices:
never drawn, registered only when asked (``enable``; `lab chaos explore` does it when
``FLEETLAB_EXPLORE_SABOTAGE=1``). They act from outside the worker; what they break is judged
by the real checker on real evidence.

- ``sabotage-delete`` deletes requests from the request queue behind the fleet's back, for as
  long as it lasts: those requests must come out as lost.
- ``sabotage-skip-claim`` deploys, beside the fleet, a worker of this tree whose claim is
  skipped (it overwrites the claim document instead of creating it only if absent): a request
  delivered again after its answer runs again, which must come out as a duplicate effect.
"""

from __future__ import annotations

import random
import shutil
import sys
import threading
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from lab.chaos.explore.arena import Arena
from lab.chaos.explore.nemesis import Kind, Memo, plan, register
from lab.chaos.explore.schedule import FaultPlan
from lab.errors import LabError
from lab.runtime import procs, stack

# Claims.acquire's create (lease mode's claim before the run) becomes an overwrite; result
# mode's publish, the other create in claims.py, is left as it is.
CLAIM_CREATE = "self._store.create(claim_path(key), fresh.doc())"
CLAIM_OVERWRITE = "self._store.put(claim_path(key), fresh.doc())"
ROGUE = "rogue-skip-claim"
_SKIP = shutil.ignore_patterns(
    ".venv", ".lab", ".git", "tests", "bench", "__pycache__", ".*_cache", "*.egg-info", "build"
)


def _delete(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    stop = threading.Event()
    memo["stop"] = stop
    memo["deleted"] = deleted = []

    def loop() -> None:
        sqs, url = arena.clients.sqs, arena.env.request_queue_url
        while not stop.is_set():
            try:
                got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
                for message in got.get("Messages", []):
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    deleted.append(message["MessageId"])
            except (BotoCoreError, ClientError):
                pass
            time.sleep(0.02)

    threading.Thread(target=loop, name="sabotage-delete", daemon=True).start()
    return "deleting requests behind the fleet's back"


def _stop_delete(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    stop = memo.get("stop")
    if isinstance(stop, threading.Event):
        stop.set()
    return f"deleted {len(memo.get('deleted', []))} request(s)"


def skip_claim_tree(dest: Path) -> Path:
    """A copy of this source tree whose worker overwrites claims instead of taking them."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(stack.project_root(), dest, ignore=_SKIP)
    [claims] = list((dest / "worker").rglob("claims.py"))
    source = claims.read_text()
    if source.count(CLAIM_CREATE) != 1:
        raise LabError(f"cannot make the skip-claim variant: {claims.name} changed")
    claims.write_text(source.replace(CLAIM_CREATE, CLAIM_OVERWRITE))
    return dest


def _skip_claim(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    """Deploy the variant beside the fleet: a worker run from the patched tree (its folder is
    the working directory, so ``python -m worker`` imports the variant), on the same queue. A
    plain worker starts in a second; a bundle re-boot takes minutes on a loaded machine."""
    settings, env = arena.settings, arena.env
    tree = skip_claim_tree(settings.home / "sabotage" / "src")
    worker_env = stack.base_env(env.env) | env.worker_env() | {
        "FLEETLAB_WORKER_ID": ROGUE,
        "FLEETLAB_WORK_DIR": str(settings.home / "workers" / ROGUE),
        "FLEETLAB_SPEED": f"{settings.job_speed:g}",
    } | dict(settings.instance_env)  # fmt: skip
    worker_env.pop("FLEETLAB_ENDPOINT_URL", None)  # the proxy's: the emulator directly
    worker_env |= {"FLEETLAB_ENDPOINT_URL": env.endpoint_url or settings.endpoint_url}
    pid = procs.start(ROGUE, [sys.executable, "-m", "worker"], settings.pids, settings.logs,
                      worker_env, tree)  # fmt: skip
    return f"{ROGUE} (claims skipped) started, pid {pid}"


def enable() -> None:
    """Register the sabotage kinds (never drawn unless named in --faults)."""
    delete = "TEST ONLY: delete requests behind the fleet's back"
    skip = "TEST ONLY: deploy a worker that skips its claim beside the fleet"
    register(Kind("sabotage-delete", delete, lambda r: plan("sabotage-delete", 3.0), _delete,
                  _stop_delete, default=False))  # fmt: skip
    register(Kind("sabotage-skip-claim", skip, lambda r: plan("sabotage-skip-claim"),
                  _skip_claim, default=False))  # fmt: skip
