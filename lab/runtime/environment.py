"""Which environment the lab talks to: one value in ``<lab home>/config.toml``.

``local`` is a moto server the lab starts, ``localstack`` a LocalStack the lab starts, ``aws`` the
real thing (no emulator, no hypervisor). ``FLEETLAB_LAB_ENV`` overrides the file for one command
(the test suite runs on either emulator that way); nothing else differs between environments.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

from lab.errors import LabError
from worker.config import ENVIRONMENTS

CONFIG = "config.toml"
DEFAULT = "local"
OVERRIDE = "FLEETLAB_LAB_ENV"
EMULATED = ("local", "localstack")


def check(name: str) -> str:
    """``name`` if it is an environment; a clear error otherwise."""
    if name not in ENVIRONMENTS:
        raise LabError(f"unknown environment {name!r}: use one of {', '.join(ENVIRONMENTS)}")
    return name


def chosen(home: Path) -> str:
    """The environment written in ``home/config.toml`` (``local`` when there is none)."""
    path = home / CONFIG
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise LabError(f"cannot read {path}: {exc}") from None
    value = data.get("env", DEFAULT)
    if not isinstance(value, str):
        raise LabError(f"{path}: env must be a string, not {value!r}")
    return check(value)


def selected(home: Path, env: Mapping[str, str]) -> str:
    """The environment for this command: ``FLEETLAB_LAB_ENV`` if set, else the config file's."""
    override = env.get(OVERRIDE)
    return check(override) if override else chosen(home)


def use(home: Path, name: str) -> Path:
    """Write ``name`` as the environment of the lab in ``home``; return the file written."""
    check(name)
    home.mkdir(parents=True, exist_ok=True)
    path = home / CONFIG
    path.write_text(
        f'# Written by `lab env use`: where the lab\'s AWS calls go.\nenv = "{name}"\n',
        encoding="utf-8",
    )
    return path
