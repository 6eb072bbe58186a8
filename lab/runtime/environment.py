"""Which environment the lab talks to: one value in ``<lab home>/config.toml``.

``local`` is a moto server the lab starts, ``localstack`` a LocalStack the lab starts, ``aws`` the
real thing (no emulator, no hypervisor). ``FLEETLAB_LAB_ENV`` overrides the file for one command
(the test suite runs on either emulator that way); nothing else differs between environments.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path

from lab.errors import LabError
from lab.net.latency import MODES as LATENCY_MODES
from worker.config import ENVIRONMENTS

CONFIG = "config.toml"
DEFAULT = "local"
OVERRIDE = "FLEETLAB_LAB_ENV"
SERVICES_OVERRIDE = "FLEETLAB_SERVICES_DIR"
EMULATED = ("local", "localstack")


def check(name: str) -> str:
    """``name`` if it is an environment; a clear error otherwise."""
    if name not in ENVIRONMENTS:
        raise LabError(f"unknown environment {name!r}: use one of {', '.join(ENVIRONMENTS)}")
    return name


def read(home: Path) -> dict[str, object]:
    """What ``home/config.toml`` says (nothing when there is no such file)."""
    path = home / CONFIG
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from None


def chosen(home: Path) -> str:
    """The environment written in ``home/config.toml`` (``local`` when there is none)."""
    path = home / CONFIG
    value = read(home).get("env", DEFAULT)
    if not isinstance(value, str):
        raise LabError(f"{path}: env must be a string, not {value!r}")
    return check(value)


def selected(home: Path, env: Mapping[str, str]) -> str:
    """The environment for this command: ``FLEETLAB_LAB_ENV`` if set, else the config file's."""
    override = env.get(OVERRIDE)
    return check(override) if override else chosen(home)


def use(home: Path, name: str) -> Path:
    """Write ``name`` as the environment of the lab in ``home``; return the file written."""
    return remember(home, "env", check(name))


def remember(home: Path, key: str, value: str) -> Path:
    """Set ``key`` in ``home/config.toml``, keeping what else it says; return the file."""
    data = {k: v for k, v in read(home).items() if isinstance(v, str)} | {key: value}
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG
    # A JSON string is a valid TOML basic string: quotes and backslashes escaped alike.
    lines = [f"{k} = {json.dumps(v)}\n" for k, v in sorted(data.items())]
    path.write_text(
        "# Written by `lab env use` (env: where the lab's AWS calls go), by\n"
        "# `lab up/deploy --services` (services: the team's own services folder) and by\n"
        "# `lab up --latency` (latency: none, or aws: the lab's network answers like AWS's).\n"
        + "".join(lines),
        encoding="utf-8",
    )
    return path


def latency(home: Path) -> str:
    """The lab network's latency mode remembered by `lab up --latency` (``none`` by default)."""
    value = read(home).get("latency", "none")
    if value not in LATENCY_MODES:
        raise LabError(
            f"{home / CONFIG}: latency must be one of {', '.join(LATENCY_MODES)}, not {value!r}"
        )
    return str(value)


def services_dir(home: Path, env: Mapping[str, str]) -> Path | None:
    """The services folder bundles carry: ``FLEETLAB_SERVICES_DIR``, else the remembered one."""
    value = env.get(SERVICES_OVERRIDE) or read(home).get("services")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LabError(f"{home / CONFIG}: services must be a string, not {value!r}")
    return Path(value)
