"""A lab of the dashboard tests' own (`lab up`, one instance) with `lab dashboard` beside it,
and a real headless Chromium driven through selenium and Debian's chromium-driver."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from support import LAB_CLI, cli_env, wait_until

from lab.runtime import procs
from lab.runtime.procs import free_port

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--window-size=1400,2200",
)  # fmt: skip


@dataclass
class Running:
    """A lab and a dashboard process serving it."""

    home: Path
    env: dict[str, str]
    url: str
    proc: subprocess.Popen[bytes]

    def lab(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LAB_CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
            stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """GET ``path``: (HTTP status, parsed JSON or raw bytes)."""
        return call(urllib.request.Request(self.url + path, headers=headers or {}))

    def post(self, path: str, body: bytes, kind: str = "application/json") -> tuple[int, Any]:
        request = urllib.request.Request(
            self.url + path, data=body, headers={"Content-Type": kind}, method="POST"
        )
        return call(request)


def call(request: urllib.request.Request) -> tuple[int, Any]:
    """Send; (status, JSON body or raw bytes), errors included."""
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            status, data, kind = reply.status, reply.read(), reply.headers.get("Content-Type")
    except urllib.error.HTTPError as exc:
        status, data, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
    return status, json.loads(data) if kind == "application/json" else data


def start_dashboard(
    env: dict[str, str], log: Path, *extra: str
) -> tuple[subprocess.Popen[bytes], int]:
    """`lab dashboard` on a free port; wait until it answers."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [LAB_CLI, "dashboard", "--port", str(port), *extra],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def listening() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"lab dashboard exited {proc.returncode}: {log.read_text()}")
        return "dashboard on" in log.read_text()

    wait_until(listening, 30, "lab dashboard to listen")
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_lab(folder: Path) -> Iterator[Running]:
    """`lab up --instances 1` and `lab dashboard`; down and stopped afterwards, by pid."""
    home = folder / "lab"
    env = cli_env(home, free_port(), free_port())
    env["FLEETLAB_LAB_VISIBILITY_TIMEOUT"] = "4"  # a poison message reaches the DLQ sooner
    proc: subprocess.Popen[bytes] | None = None
    try:
        up = subprocess.run(
            [LAB_CLI, "up", "--instances", "1", "--no-samples"], env=env, capture_output=True,
            text=True, timeout=300, stdin=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        assert up.returncode == 0, up.stdout + up.stderr
        proc, port = start_dashboard(env, folder / "dashboard.log")
        yield Running(home, env, f"http://127.0.0.1:{port}", proc)
    finally:
        if proc is not None:
            stop(proc)
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                [LAB_CLI, "down"], env=env, capture_output=True, timeout=120, check=False
            )
        for pid in procs.running(home / "pids").values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def chromium(profile: Path) -> Any:
    """A headless Chromium under selenium; fails (never skips) when it is not installed."""
    missing = [t for t in ("chromium", "chromedriver") if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the dashboard is tested in a real browser; "
            "install Debian's chromium and chromium-driver (scripts/install-system-deps)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(shutil.which("chromium"))
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")  # a fresh profile per test
    service = Service(executable_path=str(shutil.which("chromedriver")))
    return webdriver.Chrome(options=options, service=service)
