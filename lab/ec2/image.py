"""The instance image for Docker bodies: what an AMI is to EC2.

Where no container registry is reachable (these machines), the image is made offline: a
``debootstrap --variant=minbase`` Debian root file system, from the mirror apt on this machine
already uses, turned into an image with ``docker import``. Where a registry is reachable,
``compose/Dockerfile`` builds the same image. Both through the Docker SDK (``docker_api``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import IO

from lab.ec2 import docker_api
from lab.errors import DockerError, LabError

IMAGE = "fleetlab/instance:bookworm"
SUITE = "bookworm"
# What the boot script needs on a bare machine: Python 3.11 with venv, curl (S3 with SigV4), CAs.
PACKAGES = ("python3", "python3-venv", "ca-certificates", "curl")
_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))


def mirror(sources: tuple[Path, ...] = _SOURCES) -> str:
    """The Debian mirror apt already uses (read from its sources, never written down here)."""
    for path in sources:
        try:
            text = path.read_text()
        except OSError:
            continue
        for block in text.split("\n\n"):  # deb822 stanzas
            uris = re.search(r"^URIs:\s*(\S+)", block, re.MULTILINE)
            if uris and re.search(rf"^Suites:.*\b{SUITE}\b", block, re.MULTILINE):
                return uris.group(1)
        line = re.search(rf"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+{SUITE}\s", text, re.MULTILINE)
        if line:
            return line.group(1)
    raise LabError("cannot find the Debian mirror in apt's sources")


def exists(image: str = IMAGE) -> bool:
    """True if Docker already has ``image``."""
    return docker_api.image_exists(image)


DOCKERFILE = Path(__file__).resolve().parents[2] / "compose" / "Dockerfile"


def build(work: Path, image: str = IMAGE, force: bool = False, source: str = "auto") -> str:
    """Make ``image`` unless it exists: from compose/Dockerfile where a registry answers
    (``source`` auto or dockerfile), else offline (debootstrap); return how it was made."""
    if exists(image) and not force:
        return "already there"
    if source in ("auto", "dockerfile") and DOCKERFILE.is_file():
        try:
            docker_api.build(image, DOCKERFILE.name, str(DOCKERFILE.parent))
            return "docker build of compose/Dockerfile"
        except DockerError:
            if source == "dockerfile":
                raise
    _debootstrap(work, image)
    return "debootstrap + docker import (no registry reachable)"


def _debootstrap(work: Path, image: str) -> None:
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed; run `make deps-docker`")
    root = work / "rootfs"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
          SUITE, str(root), mirror()], "debootstrap")  # fmt: skip
    with subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE) as tar:
        assert tar.stdout is not None
        docker_api.import_tar(tar.stdout, image, ['CMD ["/bin/bash"]'])
    if tar.returncode != 0:
        raise LabError(f"tar of {root} failed with exit code {tar.returncode}")
    shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], what: str, stdin: IO[bytes] | None = None) -> None:
    done = subprocess.run(argv, stdin=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise LabError(f"{what} failed: {_tail(done.stderr)}")


def _tail(stderr: bytes) -> str:
    return " | ".join(stderr.decode(errors="replace").strip().splitlines()[-3:])
