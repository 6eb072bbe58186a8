"""Faults that make the system wrong on purpose, for the tests that show the explorer notices:
never drawn, registered only when asked (``enable``; `lab chaos explore` does it when
``FLEETLAB_EXPLORE_SABOTAGE=1``). They act from outside the worker; what they break is judged
by the real checker on real evidence.

- ``sabotage-delete`` deletes requests from the request queue behind the fleet's back, for as
  long as it lasts: those requests must come out as lost.
- ``sabotage-skip-claim`` deploys a bundle whose worker skips its claim (it overwrites the
  claim document instead of creating it only if absent) and rolls it out: a request delivered
  again after its answer runs again, which must come out as a duplicate effect.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from lab.chaos.explore.arena import Arena
from lab.chaos.explore.nemesis import Kind, Memo, background, plan, register
from lab.chaos.explore.schedule import FaultPlan
from lab.deploy import bundle, rollout
from lab.errors import LabError
from lab.runtime import stack

# Claims.acquire is the one writer of claims that creates: create-if-absent becomes overwrite.
CLAIM_CREATE = "self._store.create("
CLAIM_OVERWRITE = "self._store.put("
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


def skip_claim_bundle(out_dir: Path) -> bundle.Bundle:
    """A bundle of this source tree whose worker overwrites claims instead of taking them."""
    with tempfile.TemporaryDirectory(prefix="sabotage-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(stack.project_root(), copy, ignore=_SKIP)
        [claims] = list((copy / "worker").rglob("claims.py"))
        source = claims.read_text()
        if source.count(CLAIM_CREATE) != 1:
            raise LabError(f"cannot make the skip-claim variant: {claims.name} changed")
        claims.write_text(source.replace(CLAIM_CREATE, CLAIM_OVERWRITE))
        return bundle.build(copy, out_dir)


def _skip_claim(arena: Arena, fault: FaultPlan, rng: random.Random, memo: Memo) -> str:
    def work() -> str:
        made = skip_claim_bundle(arena.settings.home / "bundles")
        bundle.publish(arena.clients.s3, arena.env.bucket, made)

        def say(what: str) -> None:
            arena.mark("sabotage-skip-claim", "-", what)

        steps = rollout.Rollout(arena.settings.home, arena.env, arena.clients, 60, 10, say).run()
        return f"{made.version} (claims skipped) on {len(steps)} instance(s)"

    return background(arena, "sabotage-skip-claim", int(memo.get("index", -1)), work)


def enable() -> None:
    """Register the sabotage kinds (never drawn unless named in --faults)."""
    delete = "TEST ONLY: delete requests behind the fleet's back"
    skip = "TEST ONLY: roll out a worker that skips its claim"
    register(Kind("sabotage-delete", delete, lambda r: plan("sabotage-delete", 3.0), _delete,
                  _stop_delete, default=False))  # fmt: skip
    register(Kind("sabotage-skip-claim", skip, lambda r: plan("sabotage-skip-claim"),
                  _skip_claim, default=False))  # fmt: skip
