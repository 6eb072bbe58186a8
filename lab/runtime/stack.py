"""The lab's long-running processes: emulator, receiver, workers; up and down by pid file."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from lab.client import samples
from lab.deploy import bundle
from lab.deploy.bundle import Bundle
from lab.ec2 import disks, image, instances, userdata
from lab.ec2.bodies import Body, backend_for, liveness
from lab.errors import LabError, NotRunning, StartFailed
from lab.runtime import emulator, environment, procs, scaler
from lab.runtime.resources import LAB_CREDENTIALS, LabEnv, clients_for, ensure, lab_clients
from lab.runtime.settings import LabSettings
from worker.aws import Clients
from worker.state.layout import SCALER_CONFIG
from worker.state.store import S3JsonStore

RECEIVER = "receiver"
HYPERVISOR = "hypervisor"
PROXY = "proxy"
CALLBACK_AUTH = "dirk:tellnoone"  # the article's example credentials, as in schemas/examples
MEDIA_AUTH = "dirk:mylilsecret"


def base_env(env_name: str = environment.DEFAULT) -> dict[str, str]:
    """The parent environment for a lab process. On an emulator: without AWS settings that
    would point elsewhere, with the fake keys. On AWS: the caller's own credentials chain
    (profile, keys, SSO), only the lab's ``FLEETLAB_*`` dropped."""
    if env_name not in environment.EMULATED:
        return {k: v for k, v in os.environ.items() if not k.startswith("FLEETLAB_")}
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLEETLAB_"))}
    return keep | LAB_CREDENTIALS | {"AWS_EC2_METADATA_DISABLED": "true"}


def up(
    settings: LabSettings,
    workers: int = 0,
    instances_n: int = 0,
    backend: str = "process",
    bounds: tuple[int, int] | None = None,
    say: Callable[[str], None] = lambda _: None,
    built: Bundle | None = None,
    own_emulator: bool = True,
    spot: bool = False,
) -> LabEnv:
    """Start the emulator (unless ``own_emulator`` is False: one already runs on the settings'
    port, shared with other labs), resources and receiver; then ``instances_n`` EC2 instances
    (code from a deployed bundle — ``built``, or one built now —, bodies from the hypervisor,
    each running a scaler that keeps the fleet within ``bounds``: min, max, by default both
    ``instances_n``; spot instances if ``spot``) and ``workers`` plain workers. ``say`` hears
    each step as it starts (for progress)."""
    if settings.env not in environment.EMULATED:
        raise LabError(
            f"`lab up` runs the lab on an emulator; the {settings.env!r} environment is "
            "brought up with `lab provision` (see `lab env show`)"
        )
    env = base_env(settings.env)
    if own_emulator:
        say(f"starting the {settings.env} emulator")
        emulator.start(settings, env)
    if settings.latency != "none":
        say(f"starting the lab's proxy with {settings.latency} latencies")
        start_proxy(settings, env)
    say("creating queues, bucket and log group")
    lab_env = ensure(settings, lab_clients(settings.region, settings.endpoint_url), settings.env)
    lab_env.save(settings.home)
    clients = clients_for(lab_env)
    say("uploading sample inputs; starting the receiver")
    files = samples.make(settings.home / "receiver" / "media")
    samples.upload(clients.s3, lab_env.bucket, files)
    start_receiver(settings, env)
    if instances_n:
        if backend == "docker":
            say("building the instance image (if missing)")
            image.build(settings.home / "image")
        say("deploying the code bundle")
        deploy(settings, lab_env, clients, built=built)
        low, high = bounds or (instances_n, instances_n)
        save_bounds(settings.home, low, high)
        store = S3JsonStore(clients.s3, lab_env.bucket)
        scaler.write_config(store, {"min_instances": low, "max_instances": high})
        say(f"starting the hypervisor; launching {instances_n} instance(s)")
        start_hypervisor(settings, env, backend)
        instances.launch(clients.ec2, lab_env.env, instances_n, spot=spot)
    for index in range(1, workers + 1):
        say(f"starting worker-{index}")
        start_worker(settings, lab_env, f"worker-{index}")
    return lab_env


BOUNDS = "fleet.json"


def save_bounds(home: Path, low: int, high: int) -> None:
    """Remember the fleet's bounds, so that a recovery can restore them."""
    (home / BOUNDS).write_text(json.dumps({"min": low, "max": high}) + "\n")


def load_bounds(home: Path) -> tuple[int, int]:
    """The bounds ``lab up`` gave the fleet ((0, 0) when it launched none)."""
    try:
        data = json.loads((home / BOUNDS).read_text())
        return int(data["min"]), int(data["max"])
    except FileNotFoundError:
        return 0, 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabError(f"cannot read {home / BOUNDS}: {exc}") from None


def instance_config(settings: LabSettings, lab_env: LabEnv) -> dict[str, str]:
    """What an instance's user-data carries: the worker's and the scaler's settings, never
    credentials, nor an id or a region: each instance learns those from its instance metadata."""
    config = scaler.loop_env(settings, lab_env, "") | {"FLEETLAB_SPEED": f"{settings.job_speed:g}"}
    if settings.boot_packages:
        config["FLEETLAB_BOOT_PACKAGES"] = " ".join(settings.boot_packages)
    config |= routed(settings)
    config |= settings.instance_env
    drop = {*LAB_CREDENTIALS, "AWS_REGION", "FLEETLAB_WORKER_ID", "FLEETLAB_WORK_DIR"}
    return {k: v for k, v in config.items() if k not in drop}


def deploy(
    settings: LabSettings,
    lab_env: LabEnv,
    clients: Clients,
    broken: bool = False,
    built: Bundle | None = None,
) -> Bundle:
    """Publish a code bundle (``built``, or one built now); point the fleet's launch template
    at the boot script."""
    made = built or build(settings, broken)
    bundle.publish(clients.s3, lab_env.bucket, made)
    instances.ensure_template(
        clients.ec2, lab_env.env, userdata.render(instance_config(settings, lab_env))
    )
    return made


def build(settings: LabSettings, broken: bool = False) -> Bundle:
    """Build a bundle of this source tree into the lab's ``bundles/`` folder."""
    return bundle.build(
        project_root(),
        settings.home / "bundles",
        start_fails=broken,
        wheel_cache=settings.wheel_cache,
        services=settings.services_dir,
    )


def project_root() -> Path:
    """The fleetlab source tree this lab runs from (bundles are built from it)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise LabError(f"no fleetlab source tree at {root}: deploy builds bundles from source")
    return root


def start_hypervisor(settings: LabSettings, env: dict[str, str], backend: str) -> int:
    """Start the hypervisor process that gives the fleet's instances bodies."""
    argv = [sys.executable, "-m", "lab.ec2.hypervisor", "--home", str(settings.home),
            "--backend", backend, "--image", image.IMAGE,
            "--venv-cache", str(settings.venv_cache)]  # fmt: skip
    return procs.start(HYPERVISOR, argv, settings.pids, settings.logs, env, Path.cwd())


def routed(settings: LabSettings) -> dict[str, str]:
    """What points an instance's (or a plain worker's) AWS calls at the lab's proxy, when the
    lab's network has a latency model; nothing otherwise (nor ever on AWS: it has its own)."""
    if settings.latency == "none" or settings.env not in environment.EMULATED:
        return {}
    return {"FLEETLAB_ENDPOINT_URL": settings.proxy_url}


def proxy_counts(settings: LabSettings) -> Path:
    """The JSON file where the lab's proxy keeps its calls by operation."""
    return settings.home / "proxy" / "counts.json"


def start_proxy(settings: LabSettings, env: dict[str, str]) -> int:
    """Start the lab's proxy in front of the emulator, with the lab's latency model, and wait
    until it listens."""
    proxy_counts(settings).parent.mkdir(parents=True, exist_ok=True)
    route = f"emulator:{settings.proxy_port}:127.0.0.1:{settings.emulator_port}"
    argv = [sys.executable, "-m", "lab.net.serve", "--route", route,
            "--latency", settings.latency, "--counts", str(proxy_counts(settings))]  # fmt: skip
    if procs.listening(settings.proxy_port):
        raise StartFailed(f"something already listens on {settings.proxy_url}; is a lab up?")
    pid = procs.start(PROXY, argv, settings.pids, settings.logs, env, Path.cwd())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if procs.listening(settings.proxy_port):
            return pid
        if not procs.alive(pid):
            break
        time.sleep(0.05)
    raise StartFailed(f"the lab's proxy did not start; see {settings.logs / 'proxy.log'}")


def start_receiver(settings: LabSettings, env: dict[str, str]) -> int:
    """Start the callback receiver and wait until it answers."""
    argv = [
        sys.executable, "-m", "lab.client.receiver", "--port", str(settings.receiver_port),
        "--dir", str(settings.home / "receiver"),
        "--callback-auth", CALLBACK_AUTH, "--media-auth", MEDIA_AUTH,
    ]  # fmt: skip
    pid = procs.start(RECEIVER, argv, settings.pids, settings.logs, env, Path.cwd())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{settings.receiver_url}/callbacks", timeout=1):  # noqa: S310
                return pid
        except (urllib.error.URLError, OSError):
            if not procs.alive(pid):
                break
            time.sleep(0.05)
    raise StartFailed(f"callback receiver did not start; see {settings.logs / 'receiver.log'}")


def start_worker(
    settings: LabSettings, lab_env: LabEnv, name: str, extra: dict[str, str] | None = None
) -> int:
    """Start one worker process named ``name`` with its own working folder."""
    env = base_env(lab_env.env) | lab_env.worker_env() | {
        "FLEETLAB_WORKER_ID": name,
        "FLEETLAB_WORK_DIR": str(settings.home / "workers" / name),
        "FLEETLAB_SPEED": f"{settings.job_speed:g}",
    } | routed(settings) | _own_services(settings) | (extra or {})  # fmt: skip
    argv = [sys.executable, "-m", "worker"]
    return procs.start(name, argv, settings.pids, settings.logs, env, Path.cwd())


def _own_services(settings: LabSettings) -> dict[str, str]:
    # A plain worker loads the services folder where it is; an instance, from its bundle.
    if settings.services_dir is None:
        return {}
    return {"FLEETLAB_SERVICES_DIR": str(settings.services_dir.resolve())}


def down(settings: LabSettings, grace_s: float = 60.0) -> list[str]:
    """Terminate the fleet (bodies drain), stop workers, hypervisor, receiver, emulator; then
    free the disk the lab no longer needs."""
    stopped = retire_fleet(settings, grace_s)
    names = list(procs.running(settings.pids))
    last = (HYPERVISOR, RECEIVER, PROXY, emulator.NAME)
    order = sorted(names, key=lambda n: (n in last, last.index(n) if n in last else 0))
    stopped += [name for name in order if procs.stop(name, settings.pids)]
    free_disk(settings)
    return stopped


def free_disk(settings: LabSettings) -> None:
    """Clear the disks of the lab's stopped bodies (their logs stay), delete the cached venvs
    no release links to but the last used, and the built bundles but the newest."""
    folder = settings.home / "instances"
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        body = Body.load(path)
        if body is not None and liveness(body) == "dead":
            disks.clear(path)
    disks.prune(settings.venv_cache, settings.shared or settings.home)
    bundle.prune(settings.home / "bundles")


def retire_fleet(settings: LabSettings, grace_s: float) -> list[str]:
    """Terminate every instance through EC2 and wait for the hypervisor to stop the bodies;
    any body still alive after that (no hypervisor running) is stopped here, by its record."""
    folder = settings.home / "instances"
    if not folder.is_dir():
        return []
    terminated: list[str] = []
    with contextlib.suppress(NotRunning, BotoCoreError, ClientError):
        lab_env = LabEnv.load(settings.home)
        hypervisor_up = HYPERVISOR in procs.running(settings.pids)
        if hypervisor_up and emulator.ready(lab_env.env, lab_env.endpoint_url or ""):
            clients = clients_for(lab_env)
            # The fleet's own scalers would replace what is terminated here: unconfigure them
            # first; one mid-tick may still launch, so terminate until nothing new appears.
            clients.s3.delete_object(Bucket=lab_env.bucket, Key=SCALER_CONFIG)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                live = [i.id for i in instances.fleet(clients.ec2, lab_env.env)]
                instances.terminate(clients.ec2, live)
                terminated += [i for i in live if i not in terminated]
                if not live and not _live_bodies(folder):
                    break
                time.sleep(0.5)
    left = _live_bodies(folder)
    for body in left:
        backend_for(body).stop(body, grace_s=5.0)
    return [f"instance {i}" for i in terminated] + [f"body {b.instance_id}" for b in left]


def _live_bodies(folder: Path) -> list[Body]:
    records = (Body.load(path) for path in sorted(folder.iterdir()) if path.is_dir())
    return [b for b in records if b is not None and liveness(b) != "dead"]
