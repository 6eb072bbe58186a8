"""`lab dashboard`: serve the live page and its JSON API for the current environment."""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer

from lab.cli.common import errors_to_exit, lab_env, settings
from lab.dashboard import server


def dashboard(
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8790,
    host: Annotated[
        str, typer.Option(help="Address to bind; anything but loopback needs --token.")
    ] = "127.0.0.1",
    token: Annotated[
        str | None,
        typer.Option(
            envvar="FLEETLAB_DASHBOARD_TOKEN",
            help="Shared secret (16+ chars) every request must carry; required off loopback.",
            show_envvar=True,
        ),
    ] = None,
    open_page: Annotated[bool, typer.Option("--open", help="Open the page in a browser.")] = False,
) -> None:
    """A live web page: queues, instances, scaler, activity, DLQ (with redrive), journal."""

    def ready(url: str) -> None:
        typer.echo(f"dashboard on {url}  (Ctrl-C stops it)", err=False)
        if open_page:
            webbrowser.open(url)

    with errors_to_exit():
        server.serve(lab_env(), settings().home, host, port, token, ready)


def register(app: typer.Typer) -> None:
    """Add the command to the `lab` app."""
    app.command()(dashboard)
