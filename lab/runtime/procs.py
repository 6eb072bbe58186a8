"""Processes the lab starts: detached, logged, remembered by pid file, stopped only by that pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from lab.errors import StartFailed


def start(
    name: str, argv: Sequence[str], pids: Path, logs: Path, env: Mapping[str, str], cwd: Path
) -> int:
    """Start ``argv`` in its own session, output to ``logs/NAME.log``; record ``pids/NAME.pid``."""
    pids.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    if alive(read_pid(pids / f"{name}.pid")):
        raise StartFailed(f"{name} is already running")
    with (logs / f"{name}.log").open("ab") as log:
        child = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    (pids / f"{name}.pid").write_text(f"{child.pid}\n")
    return child.pid


def read_pid(path: Path) -> int | None:
    """The pid in ``path``, or None."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    """True if ``pid`` runs (and is not a zombie)."""
    if pid is None:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def running(pids: Path) -> dict[str, int]:
    """Names and pids of the lab's live processes."""
    found: dict[str, int] = {}
    for path in sorted(pids.glob("*.pid")) if pids.is_dir() else []:
        pid = read_pid(path)
        if alive(pid):
            assert pid is not None
            found[path.stem] = pid
    return found


def stop(name: str, pids: Path, grace_s: float = 30.0) -> bool:
    """SIGTERM the recorded pid, SIGKILL after ``grace_s``; remove the pid file. True if it ran."""
    path = pids / f"{name}.pid"
    pid = read_pid(path)
    was_alive = alive(pid)
    if pid is not None and was_alive:
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            _signal(pid, signal.SIGKILL)
        _reap(pid)
    path.unlink(missing_ok=True)
    return was_alive


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def descendants(pid: int) -> list[int]:
    """Pids of every live descendant of ``pid`` (through the parent pids in /proc), including
    those that started sessions of their own, as the worker's binaries do."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        kids = children.get(queue.pop(), [])
        found.extend(kids)
        queue.extend(kids)
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _reap(pid: int) -> None:
    # Our own children (started in this process) must be waited for, or they linger as zombies.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
