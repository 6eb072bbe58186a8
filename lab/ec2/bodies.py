"""Bodies: what gives an emulated EC2 instance a life — a process group or a Docker container
running the instance's own user-data.

A body's record (``body.json`` in the instance's folder) is what survives a hypervisor restart:
the pid and its start time (so a recycled pid is never mistaken for the body), the backend, and
whether the body was stopped on purpose. The instance's folder is its "disk": ``root/`` is where
the user-data installs code and the worker keeps its work, ``console.log`` its console. Bodies of
one machine share its venv cache (``FLEETLAB_VENV_CACHE``): a release's venv is installed once per
machine, not once per instance (``lab/ec2/disks.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lab.ec2 import docker_api
from lab.runtime import procs
from lab.runtime.resources import LAB_CREDENTIALS

Liveness = Literal["alive", "frozen", "dead"]


def body_env(venv_cache: str = "") -> dict[str, str]:
    """A clean environment for a body: PATH and locale, the lab's credentials, the Python to use
    and the machine's venv cache (none: the boot script keeps one on the instance's disk)."""
    keep = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")
    base = {k: os.environ[k] for k in keep if k in os.environ}
    cache = {"FLEETLAB_VENV_CACHE": venv_cache} if venv_cache else {}
    python = {"FLEETLAB_PYTHON": getattr(sys, "_base_executable", sys.executable)}
    return base | LAB_CREDENTIALS | python | cache


@dataclass(frozen=True)
class Body:
    """The record of one instance's body."""

    instance_id: str
    backend: str
    pid: int
    started_at: float
    proc_start: str
    stopped: bool = False
    container: str = ""
    venv_cache: str = ""  # the machine's venv cache the body was started with

    @classmethod
    def load(cls, folder: Path) -> Body | None:
        """Read ``body.json`` from an instance folder, if there is one."""
        try:
            return cls(**json.loads((folder / "body.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, folder: Path) -> None:
        """Write ``body.json`` atomically."""
        tmp = folder / "body.json.tmp"
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(folder / "body.json")


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def proc_start(pid: int) -> str:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), '' if gone."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else ""


def liveness(body: Body) -> Liveness:
    """Alive, frozen or dead: a container by Docker's word, a process by its pid and start time."""
    if body.backend == DockerBackend.name:
        return DockerBackend.liveness(body)
    fields = _proc_stat(body.pid)
    if fields is None or fields[0] == "Z" or proc_start(body.pid) != body.proc_start:
        return "dead"
    return "frozen" if fields[0] in ("T", "t") else "alive"


class ProcessBackend:
    """Bodies as process groups: ``bash user-data.sh`` in the instance's folder, no root needed."""

    name = "process"

    def start(self, instance_id: str, folder: Path, user_data: str, env: Mapping[str, str]) -> Body:
        """Start the body and return its record (saved in ``folder``)."""
        root = folder / "root"
        root.mkdir(parents=True, exist_ok=True)
        script = folder / "user-data.sh"
        script.write_text(user_data)
        script.chmod(0o700)
        with (folder / "console.log").open("ab") as console:
            child = subprocess.Popen(
                ["/bin/bash", str(script)],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=dict(env) | {"FLEETLAB_INSTANCE_ID": instance_id, "FLEETLAB_ROOT": str(root)},
                start_new_session=True,  # its own process group: the whole "machine" is one group
            )
        cache = env.get("FLEETLAB_VENV_CACHE", "")
        body = Body(instance_id, self.name, child.pid, time.time(), proc_start(child.pid),
                    venv_cache=cache)  # fmt: skip
        body.save(folder)
        return body

    def redeploy(self, body: Body, folder: Path, grace_s: float) -> Body:
        """The article's re-deploy: stop what runs (the worker drains), run the user-data again
        on the same disk; it renames the code folder and installs the current bundle."""
        self.stop(body, grace_s)
        script = (folder / "user-data.sh").read_text()
        return self.start(body.instance_id, folder, script, body_env(body.venv_cache))

    def signal(self, body: Body, sig: signal.Signals) -> bool:
        """Send ``sig`` to the body's process group; False if it is gone. A fault (anything but
        SIGTERM) reaches every process of the body, as it would every process of a machine,
        the binaries in their own sessions too; SIGTERM is a shutdown, which the worker drains."""
        if liveness(body) == "dead":
            return False
        others = [] if sig == signal.SIGTERM else procs.descendants(body.pid)
        try:
            os.killpg(body.pid, sig)
        except ProcessLookupError:
            return False
        for pid in others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return True

    def stop(self, body: Body, grace_s: float) -> None:
        """SIGTERM the group (the worker drains), SIGKILL what is left after ``grace_s``."""
        with contextlib.suppress(ProcessLookupError):
            if liveness(body) == "frozen":
                os.killpg(body.pid, signal.SIGCONT)  # a frozen body cannot act on SIGTERM
        self.signal(body, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _group_alive(body.pid):
            reap(body.pid)
            time.sleep(0.1)
        self.signal(body, signal.SIGKILL)  # with the binaries, if the body still runs
        with contextlib.suppress(ProcessLookupError):
            os.killpg(body.pid, signal.SIGKILL)  # and whatever is left of its group


def reap(pid: int = -1) -> None:
    """Collect exited children (the hypervisor is the parent of the bodies it started)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG)[0] > 0 and pid == -1:
            pass


def _group_alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` runs. A zombie does not count: a body that a
    rollout restarted is not the hypervisor's child, so the hypervisor cannot reap it."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


class DockerBackend:
    """Bodies as containers of the lab's instance image, on the host network (to reach the
    emulator on 127.0.0.1); the instance folder is mounted at /instance, its disk at
    /instance/root, and the machine's venv cache at its own path (a venv's scripts name it). An
    init process as PID 1 forwards signals. All through the Docker SDK."""

    name = "docker"

    def __init__(self, image: str = "", lab_label: str = "") -> None:
        self.image = image
        self.lab_label = lab_label

    def start(self, instance_id: str, folder: Path, user_data: str, env: Mapping[str, str]) -> Body:
        """Run the container detached and return its record (saved in ``folder``)."""
        (folder / "root").mkdir(parents=True, exist_ok=True)
        (folder / "user-data.sh").write_text(user_data)
        inside = dict(env) | {
            "FLEETLAB_INSTANCE_ID": instance_id,
            "FLEETLAB_ROOT": "/instance/root",
            "FLEETLAB_PYTHON": "python3",
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        cache = inside.get("FLEETLAB_VENV_CACHE", "")
        if cache:
            Path(cache).mkdir(parents=True, exist_ok=True)
        container = docker_api.run(
            self.image,
            [
                "/bin/bash",
                "-c",
                "exec /bin/bash /instance/user-data.sh >>/instance/console.log 2>&1",
            ],
            name=f"fleetlab-{instance_id}",
            env=inside,
            labels={"fleetlab.instance": instance_id, "fleetlab.lab": self.lab_label},
            volumes={str(folder): "/instance"} | ({cache: cache} if cache else {}),
        )
        pid = docker_api.state(container)[1]
        body = Body(instance_id, self.name, pid, time.time(), proc_start(pid),
                    container=container, venv_cache=cache)  # fmt: skip
        body.save(folder)
        return body

    @staticmethod
    def liveness(body: Body) -> Liveness:
        """Docker's view: running, paused, or anything else (exited, removed)."""
        states: dict[str, Liveness] = {"running": "alive", "paused": "frozen"}
        return states.get(docker_api.state(body.container)[0], "dead")

    def signal(self, body: Body, sig: signal.Signals) -> bool:
        """Deliver a fault: SIGSTOP/SIGCONT pause and unpause the container, others are sent."""
        if self.liveness(body) == "dead":
            return False
        if sig == signal.SIGSTOP:
            return docker_api.pause(body.container)
        if sig == signal.SIGCONT:
            return docker_api.unpause(body.container)
        return docker_api.kill(body.container, sig.name)

    def redeploy(self, body: Body, folder: Path, grace_s: float) -> Body:
        """Restart the container: it drains, then its command (the user-data) runs again."""
        docker_api.restart(body.container, grace_s)
        pid = docker_api.state(body.container)[1]
        again = Body(body.instance_id, self.name, pid, time.time(), proc_start(pid),
                     container=body.container, venv_cache=body.venv_cache)  # fmt: skip
        again.save(folder)
        return again

    def stop(self, body: Body, grace_s: float) -> None:
        """Stop (SIGTERM, SIGKILL after the grace), then remove the container."""
        if self.liveness(body) == "frozen":
            docker_api.unpause(body.container)  # a frozen container cannot act on SIGTERM
        docker_api.stop_and_remove(body.container, grace_s)


Backend = ProcessBackend | DockerBackend


def backend_for(body: Body) -> Backend:
    """The backend that can act on an existing body (faults, stopping)."""
    return DockerBackend() if body.backend == DockerBackend.name else ProcessBackend()
