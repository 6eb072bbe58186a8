"""Instance disks and the host's venv cache: what a stopped body leaves behind, and which cached
venvs can go.

A body's disk is ``root/`` in its instance folder. While the body runs it holds the releases the
boot script installed (each a few MB once its venv lives in the cache), downloads and job
scratch. Once the body has stopped only its logs matter — the console (``console.log``, beside
``root/``) and the activity and scaler logs under ``root/work/`` — so ``clear`` removes the rest.

The venv cache (``FLEETLAB_VENV_CACHE``, see ``worker/boot/user-data.sh``) holds one venv per
distinct wheelhouse and interpreter, ``<key>/`` with its ``<key>.lock``; releases link to it by
absolute path. ``prune`` deletes the entries no release links to any more, but for the most
recently used ones, so that the next ``lab up`` of unchanged code installs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

LOG_SUFFIX = ".log"


def clear(folder: Path) -> int:
    """Remove everything on the disk of the instance in ``folder`` but its logs (``*.log``
    files); return the bytes freed. Call it only once the body has stopped."""
    root = folder / "root"
    if not root.is_dir():
        return 0
    return _clear_tree(root)


def _clear_tree(directory: Path) -> int:
    freed = 0
    for entry in list(os.scandir(directory)):
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            freed += _clear_tree(path)
            with contextlib.suppress(OSError):
                path.rmdir()  # only if nothing (no log) is left in it
        elif not (entry.is_file(follow_symlinks=False) and entry.name.endswith(LOG_SUFFIX)):
            with contextlib.suppress(OSError):
                freed += 0 if entry.is_symlink() else entry.stat(follow_symlinks=False).st_size
                path.unlink()
    return freed


def linked_venvs(home: Path, cache: Path) -> set[str]:
    """Keys of the cached venvs that some release under ``home`` links to (its ``venv``); the
    cache itself, when under ``home``, is not searched."""
    keys: set[str] = set()
    for top, dirs, _files in os.walk(home):
        dirs[:] = [name for name in dirs if Path(top, name) != cache]
        for name in dirs:  # os.walk lists a link to a folder among the folders
            path = os.path.join(top, name)
            if name == "venv" and os.path.islink(path):
                keys.add(os.path.basename(os.readlink(path).rstrip("/")))
    return keys


def prune(cache: Path, home: Path, keep: int = 1) -> list[str]:
    """Delete the venvs in ``cache`` that no release under ``home`` links to, but for the
    ``keep`` most recently used of those; return the keys deleted. An entry whose lock a boot
    holds (installing it, or linking to it) is left alone."""
    if not cache.is_dir():
        return []
    linked = linked_venvs(home, cache)
    unused = sorted(
        (p for p in cache.iterdir() if p.is_dir() and not p.is_symlink() and p.name not in linked),
        key=lambda path: _last_used(cache, path.name),
        reverse=True,
    )
    deleted = []
    for path in unused[keep:]:
        lock = cache / f"{path.name}.lock"
        with lock.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a boot is installing or linking it right now
            if path.name in linked_venvs(home, cache):
                continue  # linked between the first look and the lock
            shutil.rmtree(path, ignore_errors=True)
            lock.unlink(missing_ok=True)
        deleted.append(path.name)
    return deleted


def _last_used(cache: Path, key: str) -> float:
    # Each boot that uses an entry opens its lock for writing, which stamps the lock's mtime.
    try:
        return (cache / f"{key}.lock").stat().st_mtime
    except OSError:
        return 0.0
