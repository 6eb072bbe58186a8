"""The service registry: which binaries may run, with which filtered parameters, for how long."""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from worker.errors import ConfigError, ParameterRejected, UnknownService

ParamKind = Literal["int", "float", "choice", "pattern"]
OutputKind = Literal["stdout", "stderr", "file"]
_INT = re.compile(r"[+-]?[0-9]{1,12}")
_FLOAT = re.compile(r"[+-]?[0-9]{1,12}(\.[0-9]{1,9})?")
_PLACEHOLDERS = ("{python}", "{input}", "{output}", "{speed}", "{params}")


@dataclass(frozen=True)
class Parameter:
    """One allowed parameter: how its value is checked and how it becomes argv elements."""

    name: str
    kind: ParamKind
    arg: tuple[str, ...]
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None

    def render(self, value: str) -> list[str]:
        """Check ``value`` and return the argv elements it becomes; raise ``ParameterRejected``."""
        self._check(value)
        return [part.replace("{value}", value) for part in self.arg]

    def _check(self, value: str) -> None:
        if self.kind == "choice":
            if value not in self.choices:
                raise ParameterRejected(
                    f"parameter {self.name!r} must be one of {', '.join(self.choices)}"
                )
            return
        if self.kind == "pattern":
            assert self.pattern is not None
            if value.startswith("-") or not self.pattern.fullmatch(value):
                raise ParameterRejected(f"parameter {self.name!r} has a value that is not allowed")
            return
        syntax = _INT if self.kind == "int" else _FLOAT
        if not syntax.fullmatch(value):
            expected = "an integer" if self.kind == "int" else "a number"
            raise ParameterRejected(f"parameter {self.name!r} must be {expected}")
        number = float(value)
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise ParameterRejected(
                f"parameter {self.name!r} must be between {self.minimum:g} and {self.maximum:g}"
            )


@dataclass(frozen=True)
class Service:
    """A service: its argv template, parameter allow-list, input need, time limit, output."""

    name: str
    command: tuple[str, ...]
    parameters: Mapping[str, Parameter]
    needs_input: bool
    timeout_s: float
    output: OutputKind
    output_suffix: str = ""
    description: str = ""

    def argv(
        self,
        parameters: Sequence[tuple[str, str]],
        *,
        python: str,
        input_path: str,
        output_path: str,
        speed: float,
    ) -> list[str]:
        """Build the binary's argv from the template and the filtered request parameters."""
        rendered = self.check(parameters)
        values = {
            "{python}": [python],
            "{input}": [input_path],
            "{output}": [output_path],
            "{speed}": [f"{speed:g}"],
            "{params}": rendered,
        }
        argv: list[str] = []
        for part in self.command:
            argv.extend(values.get(part, [part]))
        return argv

    def check(self, parameters: Sequence[tuple[str, str]]) -> list[str]:
        """Filter the request's parameters through the allow-list; return their argv elements."""
        rendered: list[str] = []
        seen: set[str] = set()
        for name, value in parameters:
            spec = self.parameters.get(name)
            if spec is None:
                raise ParameterRejected(
                    f"parameter {name!r} is not allowed for service {self.name!r}"
                )
            if name in seen:
                raise ParameterRejected(f"parameter {name!r} is given more than once")
            seen.add(name)
            rendered.extend(spec.render(value))
        return rendered


@dataclass(frozen=True)
class Registry:
    """All services by name."""

    services: Mapping[str, Service]

    def get(self, name: str) -> Service:
        """Return the service called ``name``; raise ``UnknownService`` if there is none."""
        service = self.services.get(name)
        if service is None:
            raise UnknownService(f"service {name!r} is not offered here")
        return service


def _parameter(service: str, name: str, raw: Mapping[str, Any]) -> Parameter:
    where = f"services.{service}.parameters.{name}"
    kind = raw.get("kind")
    arg = raw.get("arg")
    if not isinstance(arg, list) or not all(isinstance(a, str) for a in arg) or not arg:
        raise ConfigError(f"{where}.arg must be a non-empty list of strings")
    if kind in ("int", "float"):
        low, high = _bounds(where, raw)
        return Parameter(name, kind, tuple(arg), minimum=low, maximum=high)
    if kind == "choice":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices must be a non-empty list")
        if any(not isinstance(c, str) or c.startswith("-") for c in choices):
            raise ConfigError(f"{where}.choices must be strings not starting with '-'")
        return Parameter(name, kind, tuple(arg), choices=tuple(choices))
    if kind == "pattern":
        pattern = raw.get("pattern")
        if not isinstance(pattern, str):
            raise ConfigError(f"{where}.pattern must be a string")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}.pattern does not compile: {exc}") from None
        return Parameter(name, kind, tuple(arg), pattern=compiled)
    raise ConfigError(f"{where}.kind must be int, float, choice or pattern")


def _bounds(where: str, raw: Mapping[str, Any]) -> tuple[float, float]:
    low, high = raw.get("min"), raw.get("max")
    if not isinstance(low, int | float) or not isinstance(high, int | float) or low > high:
        raise ConfigError(f"{where} needs numeric min <= max")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{where} min and max must be finite")
    return float(low), float(high)


def _service(name: str, raw: Mapping[str, Any]) -> Service:
    command = raw.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ConfigError(f"services.{name}.command must be a non-empty list of strings")
    for part in command:
        if "{" in part and part not in _PLACEHOLDERS:
            raise ConfigError(f"services.{name}.command has an unknown placeholder in {part!r}")
    output = raw.get("output", "stdout")
    if output not in ("stdout", "stderr", "file"):
        raise ConfigError(f"services.{name}.output must be stdout, stderr or file")
    if output == "file" and "{output}" not in command:
        raise ConfigError(f"services.{name} has output=file but no {{output}} in its command")
    timeout = raw.get("timeout_seconds", 900)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"services.{name}.timeout_seconds must be a positive number")
    params = raw.get("parameters", {})
    return Service(
        name=name,
        command=tuple(command),
        parameters={p: _parameter(name, p, spec) for p, spec in params.items()},
        needs_input=bool(raw.get("input", True)),
        timeout_s=float(timeout),
        output=output,
        output_suffix=str(raw.get("output_suffix", "")),
        description=str(raw.get("description", "")),
    )


def load_registry(path: Path | None = None) -> Registry:
    """Load the registry from ``path``, or the one shipped with the worker."""
    try:
        if path is None:
            text = resources.files("worker.handle").joinpath("services.toml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        data = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read services file: {exc}") from None
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise ConfigError("services file defines no [services.NAME] tables")
    return Registry({name: _service(name, raw) for name, raw in services.items()})
