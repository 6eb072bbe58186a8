"""LocalStack on the host: installed on demand in a virtual environment of its own.

LocalStack's dependencies clash with the lab's (boto3, cryptography), so it gets its own venv
under the tools folder, with the pins verified on these machines (DESIGN.md). 4.14 and later need
Python 3.12; 4.13.1 is the last that runs here and needs no auth token.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from lab.errors import StartFailed
from lab.runtime import fidelity

VERSION = "4.13.1"
PINS = (
    f"localstack-core[runtime]=={VERSION}",
    "cbor2<5.7",
    "cryptography>=43,<44",
    "pyopenssl==24.2.1",
    "joserfc<1.1",
    "service_identity<24.2",
)
SERVICES = ("sqs", "s3", "ec2", "logs")
INSTALL_TIMEOUT_S = 900.0


def venv(tools: Path) -> Path:
    """Where this LocalStack version lives."""
    return tools / f"localstack-{VERSION}"


def install(tools: Path) -> Path:
    """Install LocalStack unless it already is; return the Python that runs it."""
    folder = venv(tools)
    python = folder / "bin" / "python"
    done = folder / ".installed"
    if done.is_file():
        return python
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [sys.executable, "-m", "venv", str(folder)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PINS],
    )
    for argv in steps:
        try:
            subprocess.run(argv, check=True, capture_output=True, timeout=INSTALL_TIMEOUT_S)
        except subprocess.CalledProcessError as exc:
            tail = " / ".join(exc.stderr.decode(errors="replace").strip().splitlines()[-5:])
            raise StartFailed(f"installing LocalStack {VERSION} failed: {tail}") from None
        except subprocess.TimeoutExpired:
            raise StartFailed(f"installing LocalStack took over {INSTALL_TIMEOUT_S:g} s") from None
    done.write_text(" ".join(PINS) + "\n")
    return python


def argv(python: Path) -> list[str]:
    """The command that runs LocalStack in the foreground, through ``fidelity``."""
    return [str(python), fidelity.__file__, "localstack.runtime.main"]


def environment(port: int, data: Path) -> dict[str, str]:
    """LocalStack's own settings: only our services, on loopback, path-style queue URLs (no DNS
    name to resolve), its files under the lab's folder."""
    return {
        "SERVICES": ",".join(SERVICES),
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "DISABLE_EVENTS": "1",
        "SQS_ENDPOINT_STRATEGY": "path",
        "EAGER_SERVICE_LOADING": "1",
        "FILESYSTEM_ROOT": str(data),
        "TMPDIR": str(data / "tmp"),
    }


def ready(endpoint: str) -> bool:
    """True when the health endpoint reports every service we use as available or running."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=1) as reply:  # noqa: S310 (loopback)
            health = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    services = health.get("services", {}) if isinstance(health, dict) else {}
    return all(services.get(name) in ("available", "running") for name in SERVICES)
