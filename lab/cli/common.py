"""What the CLI files share: settings, the saved environment, error-to-exit-code mapping."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import typer
from botocore.exceptions import BotoCoreError, ClientError

from lab.runtime.resources import LabEnv
from lab.runtime.settings import LabSettings, load_settings
from worker.errors import FleetlabError


def settings(env_name: str | None = None) -> LabSettings:
    """Settings from the environment (``env_name`` overrides the chosen lab environment)."""
    return load_settings(name=env_name)


def lab_env() -> LabEnv:
    """The saved environment of the running lab."""
    return LabEnv.load(settings().home)


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Turn library and AWS errors into a one-line message and exit code 1."""
    try:
        yield
    except FleetlabError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except (BotoCoreError, ClientError) as exc:
        typer.echo(f"error: AWS call failed: {exc}", err=True)
        raise typer.Exit(1) from None


def emit_json(data: Any) -> None:
    """Print JSON for machines."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True))
