"""The service registry: which binaries may run, with which filtered parameters, for how long.

This module is the model (``Parameter``, ``Service``, ``Registry``); ``worker.handle.service_file``
reads it from TOML: the built-ins shipped with the worker plus a team's own services folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from worker.errors import ParameterRejected, UnknownService
from worker.handle.recipients import is_age_recipient

ParamKind = Literal["int", "float", "choice", "pattern", "age-recipient"]
OutputKind = Literal["stdout", "stderr", "file"]
# How a request is kept to one result (README, "Claim modes"): "lease" claims before the run, so a
# duplicate never runs; "result" runs first and publishes with one create-only write.
ClaimMode = Literal["lease", "result"]
CLAIM_MODES: tuple[ClaimMode, ...] = ("lease", "result")
_INT = re.compile(r"[+-]?[0-9]{1,12}")
_FLOAT = re.compile(r"[+-]?[0-9]{1,12}(\.[0-9]{1,9})?")
PLACEHOLDERS = ("{python}", "{input}", "{output}", "{speed}", "{params}")
SERVICE_DIR = "{service_dir}"  # may stand anywhere inside an element: "{service_dir}/run.sh"
_SUFFIX_REF = re.compile(r"\{([A-Za-z0-9_-]+)\}")


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
    default: str | None = None  # the value used when a request does not give one
    required: bool = False  # a request must give it

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
        if self.kind == "age-recipient":
            if not is_age_recipient(value):
                raise ParameterRejected(f"parameter {self.name!r} must be an age recipient (age1…)")
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
    """A service: its argv template, parameter allow-list, input need, time limit, output.

    ``home`` is the folder ``{service_dir}`` names in ``command`` and ``env`` (the services
    folder it came from); ``env`` is added to the binary's minimal environment;
    ``output_suffix`` may name a choice parameter (``".{format}"``); ``claim`` is how a
    request is kept to one result (``ClaimMode``); ``concurrency`` is how many of its jobs one
    worker runs at once (within the worker's own cap).
    """

    name: str
    command: tuple[str, ...]
    parameters: Mapping[str, Parameter]
    needs_input: bool
    timeout_s: float
    output: OutputKind
    output_suffix: str = ""
    description: str = ""
    home: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    origin: str = "built-in"  # where it was defined: "built-in", or the services file's path
    claim: ClaimMode = "lease"
    concurrency: int = 1

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
            argv.extend(values.get(part, [self._at_home(part)]))
        return argv

    def environment(self) -> dict[str, str]:
        """What the service adds to its binary's environment, ``{service_dir}`` filled in."""
        return {name: self._at_home(value) for name, value in self.env.items()}

    def result_name(self, parameters: Sequence[tuple[str, str]]) -> str:
        """The result file's name: ``result`` and the suffix, with any parameter it names
        filled in from the request (checked) or that parameter's default."""
        given = dict(parameters)

        def fill(found: re.Match[str]) -> str:
            spec = self.parameters[found.group(1)]
            value = given.get(spec.name, spec.default)
            assert value is not None  # the loader requires a default for a suffix parameter
            spec.render(value)  # a value becomes part of a path only once it passed its rule
            return value

        return "result" + _SUFFIX_REF.sub(fill, self.output_suffix)

    def _at_home(self, text: str) -> str:
        if SERVICE_DIR not in text:
            return text
        return text.replace(SERVICE_DIR, str(self.home or "."))

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
        for name, spec in self.parameters.items():
            if name in seen:
                continue
            if spec.required:
                raise ParameterRejected(f"parameter {name!r} is required by {self.name!r}")
            if spec.default is not None:
                rendered.extend(spec.render(spec.default))
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


def suffix_parameters(suffix: str) -> list[str]:
    """The parameter names an ``output_suffix`` refers to."""
    return _SUFFIX_REF.findall(suffix)
