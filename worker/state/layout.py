"""The fleet bucket's layout: every S3 prefix and key that code, state and results live under.

One home, imported by the worker, the scaler, the boot script's writer (``lab.deploy.bundle``),
the lab's readers, the chaos evidence and the instances' IAM policy, so that a key is never
spelled twice and the policy grants exactly the prefixes the code uses. The boot script
(``worker/boot/user-data.sh``) is shell and reads ``bundles/current.json`` by its literal name; a
unit test holds it to ``BUNDLE_POINTER``.
"""

from __future__ import annotations

BUNDLES = "bundles/"  # code bundles and the pointer at the current one (the lab writes)
CLAIMS = "claims/"  # one claim per request, and the scaler's leader lease
STATUS = "status/"  # one status document per worker
SCALER = "scaler/"  # the scaler's settings (the lab writes) and its published state
RESULTS = "results/"  # result files of services whose output is a file
INPUTS = "inputs/"  # where S3 inputs must live for the instances' role to read them
REQUESTS = "requests/"  # request bodies offloaded to S3 (SQS extended client), by `lab submit`

BUNDLE_POINTER = BUNDLES + "current.json"
SCALER_CONFIG = SCALER + "config.json"
SCALER_STATE = SCALER + "state.json"
SCALER_INTERRUPTIONS = SCALER + "interruptions.json"  # spot interruptions, for the fallback
SCALER_LEADER = "scaler-leader"  # the lease's claim key: claims/scaler-leader.json

# What the instances' role may read and write (lab.cloud.policy grants exactly these).
READ_BY_INSTANCES = (BUNDLES, CLAIMS, STATUS, SCALER, INPUTS, REQUESTS)
WRITTEN_BY_INSTANCES = (CLAIMS, STATUS, SCALER, RESULTS)
DELETED_BY_INSTANCES = (REQUESTS,)  # an offloaded body, once its request is settled


def bundle_key(version: str) -> str:
    """The bundle of one code version."""
    return f"{BUNDLES}{version}.tar.gz"


def claim_path(key: str) -> str:
    """The claim document of one claim key (a request's, or the scaler's lease)."""
    return f"{CLAIMS}{key}.json"


def status_key(worker_id: str) -> str:
    """The status document of one worker (an instance id, or a plain worker's name)."""
    return f"{STATUS}{worker_id}.json"


def worker_of(status_path: str) -> str:
    """The worker id a status document's key names (the inverse of ``status_key``)."""
    return status_path.removeprefix(STATUS).removesuffix(".json")


def offloaded_key(name: str) -> str:
    """Where ``lab submit`` stores a request body too large for the queue."""
    return f"{REQUESTS}{name}"


def result_key(claim_key: str, filename: str, run: str | None = None) -> str:
    """Where a job's result file is stored, under its request's claim key; ``run``: under a
    folder of that run's own (result mode, where two runs of one request may overlap)."""
    folder = f"{claim_key}/{run}" if run else claim_key
    return f"{RESULTS}{folder}/{filename}"
