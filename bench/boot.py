#!/usr/bin/env python3
"""Boot benchmark: an instance's boot with the machine's venv cache empty (cold) and filled
(warm), and what its disk holds while it runs and after it stopped.

Run: ``.venv/bin/python bench/boot.py [--reps 3]``

It starts its own moto server on a free 127.0.0.1 port (stopped by pid at the end), builds one
bundle of this tree and publishes it, then per rep boots a process body (the lab's own
``ProcessBackend``, the rendered user-data) on a fresh disk with an empty venv cache (cold), and
another on a fresh disk with the cache the cold one filled (warm). A boot ends when the worker's
activity log says "started". Each body is then stopped and its disk cleared as the hypervisor
does. Cold and warm alternate, so the machine's load hits both alike; the ratio is the figure.
The venv cache's size is what every instance's disk held before the cache (its own venv).

One JSON line per figure on stdout: ``{"figure", "value", "unit", "median_of", "runs"}``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lab.deploy import bundle
from lab.ec2 import disks, userdata
from lab.ec2.bodies import ProcessBackend, body_env
from lab.runtime import emulator, procs
from lab.runtime.resources import ensure, lab_clients
from lab.runtime.settings import LabSettings
from lab.runtime.stack import base_env, build, instance_config

ROOT = Path(__file__).resolve().parents[1]


def disk_bytes(path: Path) -> int:
    """Bytes of the files under ``path``, not following links (a release's venv is one)."""
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def boot(folder: Path, script: str, cache: Path, timeout_s: float = 300) -> dict[str, float]:
    """Boot one body on a fresh disk; return seconds to "started" and its disk in bytes while
    running and after it stopped and was cleared."""
    folder.mkdir(parents=True)
    backend = ProcessBackend()
    began = time.monotonic()
    body = backend.start(folder.name, folder, script, body_env(str(cache)))
    activity = folder / "root" / "work" / "activity.log"
    while '"started ' not in (activity.read_text() if activity.exists() else ""):
        if time.monotonic() - began > timeout_s:
            backend.stop(body, 5)
            sys.exit(f"{folder.name} did not start in {timeout_s:g} s; see its console.log")
        time.sleep(0.05)
    took = time.monotonic() - began
    running = disk_bytes(folder)
    backend.stop(body, 15)
    disks.clear(folder)
    return {"seconds": took, "disk_running": running, "disk_stopped": disk_bytes(folder)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fleetlab-bench-boot-"))
    settings = replace(LabSettings(home=work), emulator_port=procs.free_port())
    env = base_env()
    emulator.start(settings, env)
    try:
        clients = lab_clients(settings.region, settings.endpoint_url)
        lab_env = ensure(settings, clients)
        made = build(settings)
        bundle.publish(clients.s3, lab_env.bucket, made)
        script = userdata.render(instance_config(settings, lab_env))
        runs: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
        for rep in range(args.reps):
            cache = work / f"venvs-{rep}"
            for kind in ("cold", "warm"):  # warm uses the cache the cold boot just filled
                runs[kind].append(boot(work / f"i-{kind}-{rep}", script, cache))
                runs[kind][-1]["cache"] = disk_bytes(cache)
                print(f"rep {rep} {kind}: {runs[kind][-1]}", file=sys.stderr)
            shutil.rmtree(cache)
    finally:
        procs.stop(emulator.NAME, settings.pids)

    def figure(name: str, unit: str, pick: Callable[[dict[str, float]], float], kind: str) -> None:
        values = [pick(run) for run in runs[kind]]
        line = {"figure": name, "value": round(statistics.median(values), 3), "unit": unit,
                "median_of": len(values), "runs": [round(v, 3) for v in values]}  # fmt: skip
        print(json.dumps(line))

    figure("boot_cold_s", "s", lambda r: r["seconds"], "cold")
    figure("boot_warm_s", "s", lambda r: r["seconds"], "warm")
    ratios = [w["seconds"] / c["seconds"] for c, w in zip(runs["cold"], runs["warm"], strict=True)]
    print(json.dumps({"figure": "boot_warm_to_cold", "value": round(statistics.median(ratios), 3),
                      "unit": "ratio", "median_of": len(ratios),
                      "runs": [round(r, 3) for r in ratios]}))  # fmt: skip
    figure("disk_running_cold_bytes", "bytes", lambda r: r["disk_running"], "cold")
    figure("disk_running_warm_bytes", "bytes", lambda r: r["disk_running"], "warm")
    figure("disk_stopped_bytes", "bytes", lambda r: r["disk_stopped"], "warm")
    figure("venv_cache_bytes", "bytes", lambda r: r["cache"], "warm")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
