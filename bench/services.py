"""Services-folder benchmark: bundle size and an instance's first boot, with and without a
services folder of one's own (issue 15).

It builds two bundles of this project — one plain, one carrying the folder `lab service new`
makes — publishes each in turn to its own moto server, and boots a fresh instance root from it
with the real user-data (as a process body does), timing the boot script from its first line to
"running its start.sh" (download, checksums, venv, install; the services folder's copy and its
packages check), reps interleaved. One JSON line per figure, medians of ``--reps``; the ratio is
with-folder over plain, measured in the same run.

    .venv/bin/python bench/services.py --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lab.deploy import bundle  # noqa: E402
from lab.deploy.scaffold import scaffold  # noqa: E402
from lab.ec2 import userdata  # noqa: E402
from lab.runtime.procs import free_port  # noqa: E402
from lab.runtime.resources import LAB_CREDENTIALS, lab_clients  # noqa: E402

BUCKET = "fleetlab-bench"
_STAMP = re.compile(r"^(\S+) boot: (.*)$")


def stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def boot_seconds(console: str) -> float:
    """Seconds from the boot script's first line to its hand-over to start.sh."""
    lines = [m.groups() for m in map(_STAMP.match, console.splitlines()) if m]
    first = stamp(lines[0][0])
    last = next(stamp(t) for t, what in lines if what.startswith("code -> "))
    return last - first


def boot(endpoint: str, made: bundle.Bundle, work: Path) -> float:
    """Publish ``made`` and boot a fresh instance root from it; return the boot's seconds."""
    clients = lab_clients("us-east-1", endpoint)
    bundle.publish(clients.s3, BUCKET, made)
    config = {"FLEETLAB_BUCKET": BUCKET, "FLEETLAB_ENDPOINT_URL": endpoint}
    script = work / "user-data.sh"
    script.write_text(userdata.render(config))
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env |= LAB_CREDENTIALS | {
        "FLEETLAB_INSTANCE_ID": "i-bench",
        "FLEETLAB_ROOT": str(work / "root"),
        "FLEETLAB_PYTHON": getattr(sys, "_base_executable", sys.executable),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    console = work / "console.log"
    with console.open("wb") as out:
        proc = subprocess.Popen(["bash", str(script)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while "running its start.sh" not in console.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"boot failed:\n{console.read_text(errors='replace')}")
            time.sleep(0.1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the started worker and all: its own group
        proc.wait(timeout=30)
    return boot_seconds(console.read_text(errors="replace"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetlab-bench-services-") as tmp:
        work = Path(tmp)
        folder = scaffold("wordcount", work)
        plain = bundle.build(REPO, work / "bundles", version="bench-plain")
        own = bundle.build(REPO, work / "bundles", version="bench-own", services=folder)
        port = free_port()
        moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                 str(port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        endpoint = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            lab_clients("us-east-1", endpoint).s3.create_bucket(Bucket=BUCKET)
            times: dict[str, list[float]] = {"plain": [], "own": []}
            for rep in range(args.reps):
                for name, made in (("plain", plain), ("own", own)):
                    run = work / f"{name}-{rep}"
                    run.mkdir()
                    times[name].append(boot(endpoint, made, run))
                    print(f"rep {rep} {name}: {times[name][-1]:.2f} s", file=sys.stderr)
        finally:
            moto.send_signal(signal.SIGTERM)
            moto.wait(timeout=30)
    figures = [
        {"figure": "bundle_bytes", "plain": plain.size, "with_services": own.size,
         "ratio": round(own.size / plain.size, 4), "unit": "bytes"},
        {"figure": "first_boot_s", "plain": round(statistics.median(times["plain"]), 2),
         "with_services": round(statistics.median(times["own"]), 2),
         "ratio": round(statistics.median(times["own"]) / statistics.median(times["plain"]), 3),
         "unit": "s", "median_of": args.reps, "runs": times},
    ]  # fmt: skip
    for figure in figures:
        print(json.dumps(figure))


if __name__ == "__main__":
    main()
