"""`lab image build`: the instance image for Docker bodies."""

from __future__ import annotations

from typing import Annotated

import typer

from lab import image
from lab.cli.common import errors_to_exit, settings

app = typer.Typer(no_args_is_help=True, help="The instance image for Docker bodies.")


@app.command()
def build(
    force: Annotated[bool, typer.Option(help="Rebuild even if the image exists.")] = False,
) -> None:
    """Build the image offline (debootstrap + docker import), unless Docker already has it."""
    with errors_to_exit():
        made = image.build(settings().home / "image", force=force)
    typer.echo(f"image {made} ready")
