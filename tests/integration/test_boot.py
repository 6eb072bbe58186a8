"""The article's boot sequence for real: a bundle built from this project, published to the
emulator's S3, installed and started by the rendered user-data in a temporary instance root,
serving requests."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import descendants
from support import wait_until

from lab.client.results import from_queue
from lab.deploy import bundle
from lab.deploy.bundle import Bundle
from lab.ec2 import userdata
from lab.runtime.resources import LAB_CREDENTIALS

if TYPE_CHECKING:
    from conftest import Lab

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INSTANCE_ID = "i-test1"
# Compressed timings, as the other integration tests use: quick polls, flushes and status.
FAST = {
    "FLEETLAB_SPEED": "0.01",
    "FLEETLAB_WAIT_TIME": "1",
    "FLEETLAB_HEARTBEAT_INTERVAL": "1",
    "FLEETLAB_LOG_FLUSH": "0.2",
    "FLEETLAB_STATUS_INTERVAL": "1",
    "FLEETLAB_STOP_GRACE": "15",
}
# Credentials of the instance's own (emulators take any): distinct, so a leak would show.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDBOOTTEST", "AWS_SECRET_ACCESS_KEY": "s3cr3t/B00t+Key"}
NOOP = '<request service="noop"><output type="queue"/></request>'


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """One bundle of this project for the whole module."""
    out = tmp_path_factory.mktemp("bundles")
    began = time.monotonic()
    made = bundle.build(REPO, out)
    print(f"\nbundle {made.version}: built in {time.monotonic() - began:.1f} s, {made.size} bytes")
    return made


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@dataclass
class Instance:
    """A temporary instance "disk" and the boot processes run on it (each its own group)."""

    lab: Lab
    folder: Path
    user_data: str
    boots: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the "machine's" extra settings

    @property
    def root(self) -> Path:
        return self.folder / "root"

    def console(self) -> str:
        path = self.folder / "console.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def activity(self) -> str:
        path = self.root / "work" / "activity.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def boot(self) -> subprocess.Popen[bytes]:
        """Run the user-data with bash, as the lab's process bodies do: a session of its own."""
        script = self.folder / "user-data.sh"
        script.write_text(self.user_data)
        keep = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
        env = keep | CREDENTIALS | {
            "FLEETLAB_INSTANCE_ID": INSTANCE_ID,
            "FLEETLAB_ROOT": str(self.root),
            "FLEETLAB_PYTHON": getattr(sys, "_base_executable", sys.executable),
            "AWS_EC2_METADATA_DISABLED": "true",
        } | self.env  # fmt: skip
        with (self.folder / "console.log").open("ab") as console:
            proc = subprocess.Popen(
                ["bash", str(script)],
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.boots.append(proc)
        return proc

    def started(self, proc: subprocess.Popen[bytes], since: int, timeout_s: float) -> float:
        """Wait for the worker's n-th "started" line (n = ``since`` + 1); return the seconds."""
        began = time.monotonic()

        def check() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"boot exited with {proc.returncode}:\n{self.console()}")
            return len(re.findall(r'"started ', self.activity())) > since

        wait_until(check, timeout_s, "the worker's started line", interval_s=0.05)
        return time.monotonic() - began

    def stop(self, proc: subprocess.Popen[bytes]) -> tuple[int, list[int]]:
        """SIGTERM the boot's process group; return its exit code and the pids it had."""
        pids = [proc.pid, *descendants(proc.pid)]
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        wait_until(lambda: not any(alive(pid) for pid in pids), 10, "every process gone")
        return code, pids


@pytest.fixture
def machine(lab: Lab, tmp_path: Path) -> Iterator[Callable[[str], Instance]]:
    """Instance folders on one machine, each with user-data that boots from the lab's bundle."""
    config = {k: v for k, v in lab.env.worker_env().items() if k not in LAB_CREDENTIALS} | FAST
    made: list[Instance] = []

    def make(name: str) -> Instance:
        folder = tmp_path / name
        (folder / "root").mkdir(parents=True)
        made.append(Instance(lab, folder, userdata.render(config)))
        return made[-1]

    yield make
    for proc in (p for one in made for p in one.boots):  # what a failed test left running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


@pytest.fixture
def instance(machine: Callable[[str], Instance]) -> Instance:
    """A published bundle and an instance folder whose user-data boots from it."""
    return machine("instance")


def status(lab: Lab) -> dict[str, object]:
    with contextlib.suppress(Exception):
        return dict(json.loads(lab.get_bytes(f"status/{INSTANCE_ID}.json")))
    return {}


# ------------------------------------------------------------------------------------- bundles


def test_bundle_holds_the_wheelhouse_start_script_version_and_manifest(
    built: Bundle, tmp_path: Path
) -> None:
    with tarfile.open(built.path) as tar:
        tar.extractall(tmp_path, filter="data")
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text())
    assert manifest["version"] == built.version
    assert (tmp_path / "VERSION").read_text().strip() == built.version
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{8}", built.version)
    files = sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if p.is_file() and p.name != "MANIFEST.json"
    )
    assert sorted(manifest["files"]) == files
    for name, digest in manifest["files"].items():
        assert bundle._sha256((tmp_path / name).read_bytes()) == digest
    wheels = {p.name.split("-")[0].lower() for p in (tmp_path / "wheelhouse").glob("*.whl")}
    assert {"fleetlab", "boto3", "botocore", "lxml", "urllib3"} <= wheels
    assert not {"moto", "typer", "rich", "pytest", "mypy"} & wheels  # the lab's, not an instance's
    assert os.access(tmp_path / "start.sh", os.X_OK)


def test_second_build_reuses_the_wheel_cache_and_a_broken_bundle_fails_to_start(
    built: Bundle, tmp_path: Path
) -> None:
    began = time.monotonic()
    broken = bundle.build(REPO, built.path.parent, version="broken-1", start_fails=True)
    took = time.monotonic() - began
    print(f"\nsecond build (cached wheels): {took:.1f} s")
    assert broken.path.name == "broken-1.tar.gz"
    with tarfile.open(broken.path) as tar:
        tar.extractall(tmp_path, filter="data")
    ran = subprocess.run([str(tmp_path / "start.sh")], capture_output=True, check=False)
    assert ran.returncode == 1
    assert b"built to fail" in ran.stderr


def test_publish_moves_the_pointer_and_keeps_the_previous(lab: Lab, built: Bundle) -> None:
    s3, bucket = lab.clients.s3, lab.env.bucket
    assert bundle.current(s3, bucket) is None
    key = bundle.publish(s3, bucket, built)
    assert key == f"bundles/{built.version}.tar.gz"
    assert bundle._sha256(lab.get_bytes(key)) == built.sha256
    first = bundle.current(s3, bucket)
    assert first == {"version": built.version, "key": key, "sha256": built.sha256,
                     "size": built.size}  # fmt: skip
    later = dataclasses.replace(built, version=built.version + "-b")
    bundle.publish(s3, bucket, later)
    now = bundle.current(s3, bucket)
    assert now is not None
    assert now["version"] == later.version
    assert now["previous"] == first


# ---------------------------------------------------------------------------------------- boot


def test_boot_installs_serves_stops_and_reboots_quickly(
    lab: Lab, built: Bundle, instance: Instance
) -> None:
    bundle.publish(lab.clients.s3, lab.env.bucket, built)
    root = instance.root

    first = instance.boot()
    took = instance.started(first, since=0, timeout_s=60)
    print(f"\nfirst boot to worker started: {took:.1f} s")
    assert os.readlink(root / "code") == f"releases/{built.version}"
    assert not (root / "code.previous").exists()
    console = instance.console()
    for step in ("reading s3://", "sha256 verified", "installing fleetlab", "running its start"):
        assert step in console
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in console + instance.activity()

    # The worker runs the bundle's code from the release's venv, not this checkout.
    supervisor = first.pid  # bash exec'd start.sh, which exec'd the supervisor
    assert "worker.supervisor" in cmdline(supervisor)
    workers = [p for p in descendants(supervisor) if "worker" in cmdline(p)]
    assert len(workers) == 1
    assert cmdline(workers[0])[0].startswith(str(root / "releases" / built.version / "venv"))
    wait_until(lambda: status(lab).get("code_version") == built.version, 10, "status version")

    message_id = lab.send(NOOP)
    results = from_queue(lab.clients.sqs, lab.env.response_queue_url, wait_s=20, expect=1)
    assert [(r.message_id, r.status) for r in results] == [(message_id, "success")]

    code, pids = instance.stop(first)
    assert code == 0  # the supervisor's own exit: it forwarded SIGTERM and the worker drained
    assert f"worker (pid {workers[0]}) stopped: exit 0" in instance.console()
    assert not group_alive(first.pid)
    assert not any(alive(pid) for pid in pids)

    # Boot again on the same disk: a re-deploy of the same version sets the code aside and
    # skips download and install.
    second = instance.boot()
    took = instance.started(second, since=1, timeout_s=30)
    print(f"re-boot of the same version to worker started: {took:.1f} s")
    assert os.readlink(root / "code.previous") == f"releases/{built.version}"
    assert os.readlink(root / "code") == f"releases/{built.version}"
    assert "already installed" in instance.console()
    code, pids = instance.stop(second)
    assert code == 0
    assert not group_alive(second.pid)
    assert not any(alive(pid) for pid in pids)


def test_corrupted_bundle_is_refused_and_nothing_starts(
    lab: Lab, built: Bundle, instance: Instance
) -> None:
    key = bundle.publish(lab.clients.s3, lab.env.bucket, built)
    lab.put_bytes(key, b"not the bundle that was published\n" * 100)

    proc = instance.boot()
    code = proc.wait(timeout=30)
    console = instance.console()
    assert code != 0
    assert f"checksum mismatch for {key}" in console
    assert "not installing it" in console
    assert not (instance.root / "code").exists()
    assert not (instance.root / "releases" / built.version).exists()
    assert instance.activity() == ""
    assert not group_alive(proc.pid)


def test_boot_without_a_published_bundle_fails_clearly(instance: Instance) -> None:
    proc = instance.boot()
    assert proc.wait(timeout=30) != 0
    assert "cannot download bundles/current.json" in instance.console()


def test_instances_of_one_machine_install_a_venv_once_and_share_it(
    lab: Lab, built: Bundle, machine: Callable[[str], Instance], tmp_path: Path
) -> None:
    bundle.publish(lab.clients.s3, lab.env.bucket, built)
    cache = tmp_path / "venvs"
    first, second = machine("first"), machine("second")
    first.env = second.env = {"FLEETLAB_VENV_CACHE": str(cache)}

    booted = first.boot()
    took = first.started(booted, since=0, timeout_s=60)
    print(f"\nfirst instance, empty cache, to worker started: {took:.1f} s")
    assert "installing fleetlab" in first.console()
    assert first.stop(booted)[0] == 0

    booted = second.boot()
    took = second.started(booted, since=0, timeout_s=30)
    print(f"second instance, same wheels, to worker started: {took:.1f} s")
    assert "is in the cache" in second.console()
    assert "installing fleetlab" not in second.console()
    release = second.root / "releases" / built.version
    [entry] = [p for p in cache.iterdir() if p.is_dir()]
    assert os.readlink(release / "venv") == str(entry)
    assert os.readlink(first.root / "releases" / built.version / "venv") == str(entry)
    assert not (release / "wheelhouse").exists()  # the wheels live on in the venv alone
    # The worker still runs from the release's own path, the venv behind it.
    supervisor = booted.pid
    workers = [p for p in descendants(supervisor) if "worker" in cmdline(p)]
    assert cmdline(workers[0])[0].startswith(str(release / "venv"))
    assert second.stop(booted)[0] == 0
