"""Read the service registry from TOML: the built-ins shipped with the worker, plus a services
folder of a team's own (``services.toml`` beside the files its commands need).

Every mistake is a ``ConfigError`` that names the file and line (``services.toml:12: ...``), so
a deploy that carries a bad folder stops there, not on an instance. A name that clashes with a
built-in is such a mistake: a team's folder may add services, never replace one.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from worker.config import MAX_CONCURRENCY
from worker.errors import ConfigError, ParameterRejected
from worker.handle.services import (
    CLAIM_MODES,
    PLACEHOLDERS,
    SERVICE_DIR,
    Parameter,
    Registry,
    Service,
    suffix_parameters,
)

FILE = "services.toml"
BUILT_IN_HOME = Path(__file__).resolve().parent  # {service_dir} of the built-ins
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # a service name
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_RESERVED_ENV = frozenset({"PATH", "HOME", "LD_PRELOAD", "LD_LIBRARY_PATH"})
_Fail = Callable[[str], ConfigError]


class _Where:
    """Turns a dotted key path (``services.x.parameters.p.kind``) into ``file:line``."""

    def __init__(self, label: str, text: str) -> None:
        self._label = label
        self._lines = text.splitlines()

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self._label}:{self.line(path)}: {message}")

    def line(self, path: str) -> int:
        """The line of the most specific table header on ``path``, or of its key inside it."""
        parts = path.split(".")
        for depth in range(len(parts), 0, -1):
            header = _header(parts[:depth])
            for number, text in enumerate(self._lines, 1):
                if header.fullmatch(text.strip()):
                    return self._key_line(number, parts[depth:]) or number
            # A table made only implicitly, by a sub-table's header: point at that header.
            for number, text in enumerate(self._lines, 1):
                if _header(parts[:depth], sub=True).match(text.strip()):
                    return number
        return 1

    def _key_line(self, header_line: int, rest: list[str]) -> int | None:
        if not rest:
            return None
        key = re.compile(rf'\s*"?{re.escape(rest[0])}"?\s*=')
        for number in range(header_line + 1, len(self._lines) + 1):
            text = self._lines[number - 1]
            if text.lstrip().startswith("["):
                return None
            if key.match(text):
                return number
        return None


def _header(parts: list[str], sub: bool = False) -> re.Pattern[str]:
    quoted = r"\.".join(rf'(?:{re.escape(p)}|"{re.escape(p)}")' for p in parts)
    if sub:
        return re.compile(rf"\[\s*{quoted}\.")
    return re.compile(rf"\[\s*{quoted}\s*\](?:\s*#.*)?")


def load_registry(path: Path | None = None, own: Path | None = None) -> Registry:
    """The built-in services (from ``path``, default: the file shipped with the worker) plus
    those of the services folder ``own``, whose ``{service_dir}`` is that folder."""
    builtin_file = path or BUILT_IN_HOME / FILE
    services = read_services(builtin_file, BUILT_IN_HOME if path is None else path.parent)
    if own is not None:
        own_file = own / FILE
        text = _read(own_file)
        where = _Where(str(own_file), text)
        for name, service in read_services(own_file, own.resolve(), text).items():
            if name in services:
                raise where.error(
                    f"services.{name}",
                    f"service {name!r} clashes with a built-in service; choose another name",
                )
            services[name] = service
    return Registry(services)


def read_services(file: Path, home: Path, text: str | None = None) -> dict[str, Service]:
    """The services one TOML file defines, ``{service_dir}`` being ``home``."""
    text = _read(file) if text is None else text
    where = _Where(str(file), text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib says "(at line N, column M)"; lead with the line as every other error does.
        found = re.search(r"at line (\d+)", str(exc))
        raise ConfigError(f"{file}:{found.group(1) if found else 1}: {exc}") from None
    tables = data.get("services")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(f"{file}:1: defines no [services.NAME] tables")
    origin = "built-in" if home == BUILT_IN_HOME else str(file)
    return {
        name: _service(where, name, raw, home, origin)
        for name, raw in tables.items()
        if _named(where, name, raw)
    }


def _read(file: Path) -> str:
    try:
        return file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read services file {file}: {exc}") from None


def _named(where: _Where, name: str, raw: object) -> bool:
    if not NAME.fullmatch(name):
        raise where.error(f"services.{name}", f"service name {name!r}: use a-z, 0-9, '-', '_'")
    if not isinstance(raw, dict):
        raise where.error(f"services.{name}", f"services.{name} must be a table")
    return True


def _service(where: _Where, name: str, raw: Mapping[str, Any], home: Path, origin: str) -> Service:
    at = f"services.{name}"
    command = raw.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise where.error(f"{at}.command", f"{at}.command must be a non-empty list of strings")
    for part in command:
        rest = part.replace(SERVICE_DIR, "")
        if "{" in rest and part not in PLACEHOLDERS:
            raise where.error(
                f"{at}.command", f"{at}.command has an unknown placeholder in {part!r}"
            )
    output = raw.get("output", "stdout")
    if output not in ("stdout", "stderr", "file"):
        raise where.error(f"{at}.output", f"{at}.output must be stdout, stderr or file")
    if output == "file" and "{output}" not in command:
        raise where.error(f"{at}.command", f"{at} has output=file but no {{output}} in its command")
    timeout = raw.get("timeout_seconds", 900)
    if not isinstance(timeout, int | float) or timeout <= 0:
        raise where.error(f"{at}.timeout_seconds", f"{at}.timeout_seconds must be positive")
    claim = raw.get("claim", "lease")
    if claim not in CLAIM_MODES:
        raise where.error(f"{at}.claim", f'{at}.claim must be "lease" or "result"')
    concurrency = raw.get("concurrency", 1)
    if type(concurrency) is not int or not 1 <= concurrency <= MAX_CONCURRENCY:
        raise where.error(
            f"{at}.concurrency", f"{at}.concurrency must be an integer from 1 to {MAX_CONCURRENCY}"
        )
    params = raw.get("parameters", {})
    if not isinstance(params, dict):
        raise where.error(f"{at}.parameters", f"{at}.parameters must be a table of tables")
    suffix = str(raw.get("output_suffix", ""))
    parameters = {p: _parameter(where, name, p, spec, suffix) for p, spec in params.items()}
    _check_suffix(where, at, suffix, parameters)
    return Service(
        name=name,
        command=tuple(command),
        parameters=parameters,
        needs_input=bool(raw.get("input", True)),
        timeout_s=float(timeout),
        output=output,
        output_suffix=suffix,
        description=str(raw.get("description", "")),
        home=home,
        env=_env(where, at, raw.get("env", {})),
        origin=origin,
        claim=claim,
        concurrency=concurrency,
    )


def _check_suffix(where: _Where, at: str, suffix: str, parameters: dict[str, Parameter]) -> None:
    plain = re.sub(r"\{[A-Za-z0-9_-]+\}", "", suffix)
    if (plain and not re.fullmatch(r"[A-Za-z0-9._-]+", plain)) or "/" in suffix:
        raise where.error(f"{at}.output_suffix", f"{at}.output_suffix may hold only a name's end")
    for ref in suffix_parameters(suffix):
        spec = parameters.get(ref)
        if spec is None or spec.kind != "choice" or spec.default is None:
            raise where.error(
                f"{at}.output_suffix",
                f"{at}.output_suffix names {{{ref}}}: it must be a choice parameter with a default",
            )


def _env(where: _Where, at: str, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise where.error(f"{at}.env", f"{at}.env must be a table of strings")
    for key, value in raw.items():
        if not _ENV_NAME.fullmatch(key) or key in _RESERVED_ENV or not isinstance(value, str):
            raise where.error(
                f"{at}.env",
                f"{at}.env.{key}: names are UPPER_CASE (not PATH, HOME, LD_*), values strings",
            )
    return dict(raw)


def _parameter(where: _Where, service: str, name: str, raw: object, suffix: str) -> Parameter:
    at = f"services.{service}.parameters.{name}"

    def fail(key: str, message: str) -> ConfigError:
        return where.error(f"{at}.{key}" if key else at, message)

    if not isinstance(raw, dict):
        raise fail("", f"{at} must be a table")
    kind = raw.get("kind")
    arg = raw.get("arg")
    # An empty arg is allowed only for a parameter that shapes the result's name alone.
    empty_ok = name in suffix_parameters(suffix)
    if (
        not isinstance(arg, list)
        or not all(isinstance(a, str) for a in arg)
        or not (arg or empty_ok)
    ):
        raise fail("arg", f"{at}.arg must be a non-empty list of strings")
    made = _by_kind(Parameter(name, "int", tuple(arg)), kind, raw, fail, at)
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise fail("required", f"{at}.required must be true or false")
    made = dataclasses.replace(made, required=required)
    return _with_default(made, raw.get("default"), lambda m: fail("default", m), at)


def _by_kind(
    base: Parameter,
    kind: object,
    raw: Mapping[str, Any],
    fail: Callable[[str, str], ConfigError],
    at: str,
) -> Parameter:
    """``base`` with its kind and that kind's rule (bounds, choices or a pattern)."""
    if kind in ("int", "float"):
        low, high = _bounds(raw, lambda m: fail("min", m), at)
        return dataclasses.replace(base, kind=kind, minimum=low, maximum=high)
    if kind == "choice":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail("choices", f"{at}.choices must be a non-empty list")
        if any(not isinstance(c, str) or c.startswith("-") for c in choices):
            raise fail("choices", f"{at}.choices must be strings not starting with '-'")
        return dataclasses.replace(base, kind="choice", choices=tuple(choices))
    if kind == "pattern":
        pattern = raw.get("pattern")
        if not isinstance(pattern, str):
            raise fail("pattern", f"{at}.pattern must be a string")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise fail("pattern", f"{at}.pattern does not compile: {exc}") from None
        return dataclasses.replace(base, kind="pattern", pattern=compiled)
    if kind == "age-recipient":
        return dataclasses.replace(base, kind="age-recipient")
    raise fail("kind", f"{at}.kind must be int, float, choice, pattern or age-recipient")


def _with_default(made: Parameter, default: object, fail: _Fail, at: str) -> Parameter:
    if default is None:
        return made
    if not isinstance(default, str):
        raise fail(f"{at}.default must be a string, as a request's values are")
    try:
        made.render(default)
    except ParameterRejected as exc:
        raise fail(f"{at}.default {default!r} breaks its own rule: {exc}") from None
    return dataclasses.replace(made, default=default)


def _bounds(raw: Mapping[str, Any], fail: _Fail, at: str) -> tuple[float, float]:
    low, high = raw.get("min"), raw.get("max")
    if not isinstance(low, int | float) or not isinstance(high, int | float) or low > high:
        raise fail(f"{at} needs numeric min <= max")
    if not (math.isfinite(low) and math.isfinite(high)):
        raise fail(f"{at} min and max must be finite")
    return float(low), float(high)
