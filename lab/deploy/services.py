"""A team's own services folder, checked before it goes into a bundle.

The folder holds ``services.toml`` (the registry's format), the files its commands need, and
optionally ``packages.txt`` (Debian packages the boot script installs, one a line, ``#``
comments). ``check`` finds at deploy time what would otherwise fail on an instance: a name
that clashes with a built-in, a bad parameter rule, a missing executable, a bad package name
— each with file and line. ``copy_into`` puts the folder into a bundle's stage.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError
from worker.errors import ConfigError
from worker.handle.service_file import FILE, load_registry
from worker.handle.services import SERVICE_DIR, Registry, Service

PACKAGES = "packages.txt"
FOLDER = "services"  # its name inside a bundle (and so on the instance, in the release)
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9.+-]*")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


@dataclass(frozen=True)
class Checked:
    """A services folder that passed: its registry (built-ins and its own), its services, its
    packages, and what could not be checked on this machine."""

    registry: Registry
    own: tuple[Service, ...]
    packages: tuple[str, ...]
    notes: tuple[str, ...]


def check(folder: Path) -> Checked:
    """Check the services folder ``folder``; raise ``LabError`` naming file and line."""
    folder = folder.resolve()
    if not (folder / FILE).is_file():
        raise LabError(f"{folder}: no {FILE} in this folder")
    try:
        registry = load_registry(own=folder)
    except ConfigError as exc:
        raise LabError(str(exc)) from None
    own = tuple(s for s in registry.services.values() if s.origin != "built-in")
    packages = read_packages(folder)
    text = (folder / FILE).read_text("utf-8").splitlines()
    notes = [note for service in own for note in _executable(folder, service, text, packages)]
    return Checked(registry, own, packages, tuple(notes))


def read_packages(folder: Path) -> tuple[str, ...]:
    """The Debian packages ``packages.txt`` names (none if there is no such file)."""
    path = folder / PACKAGES
    if not path.is_file():
        return ()
    names: list[str] = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        for word in line.split("#", 1)[0].split():
            if not _PACKAGE.fullmatch(word):
                raise LabError(f"{path}:{number}: {word!r} is not a Debian package name")
            names.append(word)
    return tuple(names)


def _executable(
    folder: Path, service: Service, text: list[str], packages: tuple[str, ...]
) -> list[str]:
    """What the service's first command element names must run; notes what cannot be known."""
    program = service.command[0]
    line = _command_line(text, service.name)
    where = f"{folder / FILE}:{line}"
    if program == "{python}":
        return []
    if program.startswith(SERVICE_DIR):
        path = folder / program[len(SERVICE_DIR) :].lstrip("/")
        if not path.is_file():
            raise LabError(f"{where}: {service.name}: {program} is not a file of {folder}")
        if not os.access(path, os.X_OK):
            raise LabError(f"{where}: {service.name}: {path.name} is not executable (chmod +x)")
        return []
    if shutil.which(program, path="/usr/local/bin:/usr/bin:/bin") is not None:
        return []
    if packages:
        # It may come with a package the instance installs at boot: not knowable here.
        return [f"{service.name}: {program} is not on this machine; packages.txt may bring it"]
    raise LabError(f"{where}: {service.name}: executable {program!r} not found")


def _command_line(text: list[str], name: str) -> int:
    inside = False
    for number, line in enumerate(text, 1):
        stripped = line.strip()
        if stripped.startswith("["):
            inside = stripped in (f"[services.{name}]", f'[services."{name}"]')
        elif inside and stripped.startswith("command"):
            return number
    return 1


def copy_into(folder: Path, stage: Path) -> Path:
    """Copy ``folder`` into ``stage/services`` (modes kept: executables stay executable)."""
    dest = stage / FOLDER
    shutil.copytree(folder.resolve(), dest, ignore=_SKIP, symlinks=False)
    return dest
