"""`lab image build`: the instance image for Docker bodies."""

from __future__ import annotations

from typing import Annotated

import typer

from lab.cli import progress
from lab.cli.common import errors_to_exit, settings
from lab.ec2 import image
from lab.errors import LabError

app = typer.Typer(no_args_is_help=True, help="The instance image for Docker bodies.")


@app.command()
def build(
    force: Annotated[bool, typer.Option(help="Rebuild even if the image exists.")] = False,
    source: Annotated[
        str, typer.Option(help="auto (Dockerfile if a registry answers), dockerfile, debootstrap.")
    ] = "auto",
) -> None:
    """Build the instance image unless Docker already has it."""
    with errors_to_exit():
        if source not in ("auto", "dockerfile", "debootstrap"):
            raise LabError(f"--source must be auto, dockerfile or debootstrap, not {source!r}")
        with progress.working(f"building {image.IMAGE}"):
            how = image.build(settings().home / "image", force=force, source=source)
    typer.echo(f"image {image.IMAGE} ready: {how}")
