"""An instance's disk cleared but for its logs; the venv cache pruned of what no release links to."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from lab.ec2 import disks


def _disk(folder: Path) -> Path:
    root = folder / "root"
    (root / "releases" / "v1").mkdir(parents=True)
    (root / "releases" / "v1" / "start.sh").write_text("x" * 1000)
    (root / "work" / "jobs" / "a1").mkdir(parents=True)
    (root / "work" / "jobs" / "a1" / "input").write_bytes(b"\0" * 5000)
    (root / "work" / "activity.log").write_text("started\n")
    (root / "work" / "scaler.log").write_text("tick\n")
    (root / "code").symlink_to("releases/v1")
    (folder / "console.log").write_text("boot: booting\n")
    return root


def test_clear_keeps_the_logs_and_the_console_and_frees_the_rest(tmp_path: Path) -> None:
    root = _disk(tmp_path)
    freed = disks.clear(tmp_path)
    assert freed == 6000
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == [
        "console.log",
        "root",
        "root/work",
        "root/work/activity.log",
        "root/work/scaler.log",
    ]
    assert (root / "work" / "activity.log").read_text() == "started\n"
    assert disks.clear(tmp_path) == 0  # twice is harmless
    assert disks.clear(tmp_path / "no-such-instance") == 0


def test_clear_never_follows_a_link_out_of_the_disk(tmp_path: Path) -> None:
    outside = tmp_path / "cache" / "venv-key"
    outside.mkdir(parents=True)
    (outside / "bin").write_text("python")
    folder = tmp_path / "instance"
    root = _disk(folder)
    (root / "releases" / "v1" / "venv").symlink_to(outside)
    disks.clear(folder)
    assert (outside / "bin").read_text() == "python"


def _entry(cache: Path, key: str, used_at: float) -> Path:
    path = cache / key
    (path / "bin").mkdir(parents=True)
    lock = cache / f"{key}.lock"
    lock.touch()
    os.utime(lock, (used_at, used_at))
    return path


def test_prune_keeps_linked_venvs_and_the_last_used_one(tmp_path: Path) -> None:
    cache = tmp_path / "venvs"
    now = time.time()
    linked = _entry(cache, "linked", now - 300)
    newest = _entry(cache, "newest", now - 10)
    old = _entry(cache, "old", now - 100)
    release = tmp_path / "instances" / "i-1" / "root" / "releases" / "v1"
    release.mkdir(parents=True)
    (release / "venv").symlink_to(linked)

    assert disks.prune(cache, tmp_path, keep=1) == ["old"]
    assert linked.is_dir() and newest.is_dir() and not old.exists()
    assert not (cache / "old.lock").exists()
    (release / "venv").unlink()
    assert disks.prune(cache, tmp_path, keep=0) == ["newest", "linked"]
    assert list(cache.iterdir()) == []


def test_prune_leaves_an_entry_whose_lock_a_boot_holds(tmp_path: Path) -> None:
    cache = tmp_path / "venvs"
    busy = _entry(cache, "busy", time.time() - 100)
    with (cache / "busy.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the boot script does while it installs and links
        assert disks.prune(cache, tmp_path, keep=0) == []
    assert busy.is_dir()
    assert disks.prune(cache, tmp_path, keep=0) == ["busy"]
    assert disks.prune(tmp_path / "no-cache", tmp_path) == []
