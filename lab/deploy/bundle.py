"""Code bundles: what instances download from S3 at boot instead of baking code into an image.

A bundle is a ``.tar.gz`` of ``wheelhouse/`` (the project's wheel and its run-time dependencies,
so an instance installs with no index), ``start.sh`` (the start-up script), ``VERSION`` and
``MANIFEST.json`` (the sha256 of every file). ``publish`` uploads it and moves the
``bundles/current.json`` pointer with a conditional write, keeping the one before as "previous".
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.errors import LabError
from worker.errors import PreconditionFailed
from worker.state.layout import BUNDLE_POINTER, bundle_key
from worker.state.store import S3JsonStore

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"  # what the wheelhouse is built for
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PUBLISH_ATTEMPTS = 5
# Wheels built from the same sources come out byte for byte the same (zip times), so the content
# hash in a default version names the code, not the moment it was built.
_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest time a zip can hold
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", ".*")

START = """\
#!/bin/bash
# Start-up script of a fleetlab code bundle: the instance's processes under the supervisor, from
# this release's own venv. The boot script (user-data) runs it with FLEETLAB_ROOT and
# FLEETLAB_INSTANCE_ID set.
set -euo pipefail
release=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
: "${FLEETLAB_ROOT:?}" "${FLEETLAB_INSTANCE_ID:?}"
export FLEETLAB_WORKER_ID="$FLEETLAB_INSTANCE_ID"
export FLEETLAB_WORK_DIR="$FLEETLAB_ROOT/work"
FLEETLAB_CODE_VERSION=$(<"$release/VERSION")
export FLEETLAB_CODE_VERSION
mkdir -p "$FLEETLAB_WORK_DIR"
# The work folder, not the release, is the cwd: `python -m` puts the cwd first on sys.path.
cd "$FLEETLAB_WORK_DIR"
exec "$release/venv/bin/python" -m worker.supervisor --child worker --child scaler \\
  --grace "${FLEETLAB_STOP_GRACE:-60}"
"""

BROKEN_START = """\
#!/bin/bash
# A deliberately broken start-up script (bundle built with start_fails=True): the bad-bundle
# scenario and its rollback need a release that installs cleanly and then fails to start.
echo "start.sh: this bundle was built to fail at start-up" >&2
exit 1
"""


@dataclass(frozen=True)
class Bundle:
    """A built bundle: its version, where the archive is, and the archive's sha256 and size."""

    version: str
    path: Path
    sha256: str
    size: int


def build(
    project_root: Path,
    out_dir: Path,
    version: str | None = None,
    start_fails: bool = False,
    wheel_cache: Path | None = None,
) -> Bundle:
    """Build ``<out_dir>/<version>.tar.gz`` from the project; dependency wheels are cached in
    ``wheel_cache`` (default ``<out_dir>/wheel-cache``) so that a second build needs no index."""
    if version is not None and not _VERSION.fullmatch(version):
        raise LabError(f"bundle version {version!r}: use letters, digits, '.', '_' and '-'")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        stage = Path(tmp) / "bundle"
        wheelhouse = stage / "wheelhouse"
        wheelhouse.mkdir(parents=True)
        _project_wheel(project_root, Path(tmp) / "src", wheelhouse)
        cache = wheel_cache or out_dir / "wheel-cache"
        _dependency_wheels(dependencies(project_root), cache, wheelhouse)
        start = stage / "start.sh"
        start.write_text(BROKEN_START if start_fails else START)
        start.chmod(0o755)
        files = _digests(stage)
        if version is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            version = f"{stamp}-{_content_hash(files)[:8]}"
        (stage / "VERSION").write_text(version + "\n")
        files["VERSION"] = _sha256((stage / "VERSION").read_bytes())
        manifest = {"version": version, "python": PYTHON, "files": dict(sorted(files.items()))}
        (stage / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
        path = out_dir / f"{version}.tar.gz"
        _archive(stage, path)
    data = path.read_bytes()
    return Bundle(version=version, path=path, sha256=_sha256(data), size=len(data))


def prune(out_dir: Path, keep: int = 1) -> list[Path]:
    """Delete the built archives in ``out_dir`` but the ``keep`` newest; return those deleted.
    A published bundle lives in S3: the local archive is only the last build's copy."""
    built = sorted(out_dir.glob("*.tar.gz"), key=lambda path: path.stat().st_mtime, reverse=True)
    for path in built[keep:]:
        path.unlink(missing_ok=True)
    return built[keep:]


def dependencies(project_root: Path) -> list[str]:
    """The run-time requirements in ``[project] dependencies`` (not the lab's or dev extras)."""
    project = _pyproject(project_root).get("project", {})
    return [str(requirement) for requirement in project.get("dependencies", [])]


def pointer_document(bundle: Bundle, key: str, old: dict[str, Any] | None) -> dict[str, Any]:
    """The new ``current.json``: this bundle, and the one it replaces as "previous" (republishing
    the same version keeps the earlier "previous", so a rollback target is never lost)."""
    doc: dict[str, Any] = {
        "version": bundle.version,
        "key": key,
        "sha256": bundle.sha256,
        "size": bundle.size,
    }
    if old is not None:
        before = old.get("previous") if old.get("version") == bundle.version else old
        if before:
            doc["previous"] = {k: v for k, v in before.items() if k != "previous"}
    return doc


def publish(s3: S3Client, bucket: str, bundle: Bundle) -> str:
    """Upload the bundle to ``bundles/<version>.tar.gz`` and point ``current.json`` at it;
    return the key. The pointer moves with a conditional write, so two deploys racing each
    other cannot lose one's "previous": the loser reads again and retries."""
    key = bundle_key(bundle.version)
    with bundle.path.open("rb") as body:
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType="application/gzip",
            Metadata={"sha256": bundle.sha256},
        )
    _move_pointer(s3, bucket, lambda old: pointer_document(bundle, key, old))
    return key


def revert(s3: S3Client, bucket: str) -> dict[str, Any]:
    """Point ``current.json`` back at its "previous" bundle (a rollback); return the new pointer."""

    def back(old: dict[str, Any] | None) -> dict[str, Any]:
        if old is None or not old.get("previous"):
            raise LabError("no previous bundle to roll back to")
        now = {k: v for k, v in old.items() if k != "previous"}
        return dict(old["previous"]) | {"previous": now}

    return _move_pointer(s3, bucket, back)


def _move_pointer(
    s3: S3Client, bucket: str, change: Callable[[dict[str, Any] | None], dict[str, Any]]
) -> dict[str, Any]:
    """Read the pointer, compute its next value, write it conditionally; retry on a race."""
    store = S3JsonStore(s3, bucket)
    for _ in range(_PUBLISH_ATTEMPTS):
        found = store.read(BUNDLE_POINTER)
        doc = change(found.doc if found else None)
        try:
            if found is None:
                store.create(BUNDLE_POINTER, doc)
            else:
                store.replace(BUNDLE_POINTER, doc, found.etag)
        except PreconditionFailed:
            continue
        return doc
    raise LabError(f"{BUNDLE_POINTER} kept changing under this deploy; try again")


def current(s3: S3Client, bucket: str) -> dict[str, Any] | None:
    """The ``bundles/current.json`` pointer, or None if nothing was published yet."""
    found = S3JsonStore(s3, bucket).read(BUNDLE_POINTER)
    return found.doc if found else None


# ----------------------------------------------------------------------------------- building


def _pyproject(project_root: Path) -> dict[str, Any]:
    try:
        return tomllib.loads((project_root / "pyproject.toml").read_text("utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LabError(f"cannot read {project_root / 'pyproject.toml'}: {exc}") from None


def _copy_sources(project_root: Path, dest: Path) -> None:
    # A clean copy of what the wheel is made of: building in the working tree would leave
    # build/ and *.egg-info behind there, and would pick up stray files.
    pyproject = _pyproject(project_root)
    dest.mkdir(parents=True)
    shutil.copy2(project_root / "pyproject.toml", dest)
    readme = pyproject.get("project", {}).get("readme")
    if isinstance(readme, str) and (project_root / readme).is_file():
        shutil.copy2(project_root / readme, dest)
    find = pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    patterns = [str(p).split(".")[0] for p in find.get("include", ["*"])]
    for entry in sorted(project_root.iterdir()):
        wanted = any(fnmatch.fnmatch(entry.name, pattern) for pattern in patterns)
        if wanted and (entry / "__init__.py").is_file():
            shutil.copytree(entry, dest / entry.name, ignore=_SKIP)


def _project_wheel(project_root: Path, src: Path, wheelhouse: Path) -> None:
    _copy_sources(project_root, src)
    _pip(["wheel", "--no-deps", "-w", str(wheelhouse), str(src)], "the project's wheel")


def _dependency_wheels(requirements: list[str], cache: Path, wheelhouse: Path) -> None:
    if not requirements:
        return
    cache.mkdir(parents=True, exist_ok=True)
    offline = ["wheel", "--no-index", "--find-links", str(cache), "-w", str(wheelhouse)]
    try:
        _pip([*offline, *requirements], "dependency wheels from the cache")
    except LabError:
        # First build, or the requirements changed: fill the cache from the index once.
        _pip(["wheel", "--find-links", str(cache), "-w", str(cache), *requirements], "wheels")
        _pip([*offline, *requirements], "dependency wheels from the cache")


def _pip(args: list[str], what: str) -> None:
    env = dict(os.environ) | {"SOURCE_DATE_EPOCH": _SOURCE_DATE_EPOCH}
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise LabError(f"pip could not build {what}: {' | '.join(tail)}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _digests(stage: Path) -> dict[str, str]:
    return {
        path.relative_to(stage).as_posix(): _sha256(path.read_bytes())
        for path in sorted(stage.rglob("*"))
        if path.is_file()
    }


def _content_hash(files: dict[str, str]) -> str:
    return _sha256(
        "".join(f"{path}\0{digest}\n" for path, digest in sorted(files.items())).encode()
    )


def _archive(stage: Path, path: Path) -> None:
    # Sorted members, fixed owners and modes: the archive depends on the files only.
    def normal(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        executable = info.isdir() or info.name == "start.sh"
        info.mode = 0o755 if executable else 0o644
        info.mtime = int(_SOURCE_DATE_EPOCH)
        return info

    tmp = path.with_name(path.name + ".tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in sorted(stage.rglob("*")):
            tar.add(member, arcname=member.relative_to(stage).as_posix(), recursive=False,
                    filter=normal)  # fmt: skip
    tmp.replace(path)
