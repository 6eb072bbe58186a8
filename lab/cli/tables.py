"""Tables for people: rich tables on a terminal, plain aligned lines when piped.

Plain output is what scripts and the existing tests read, so it stays as it was; rich only
decorates a terminal (``sys.stdout.isatty()``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from lab.client.dlq import DeadLetter


def on_terminal() -> bool:
    """True when stdout is a terminal (rich output), False when piped (plain output)."""
    return sys.stdout.isatty()


def render(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A rich table on a terminal, else tab-free plain lines of the same cells."""
    if on_terminal():
        table = Table(title=title, title_justify="left")
        for header in headers:
            table.add_column(header)
        for row in rows:
            table.add_row(*("-" if cell is None else str(cell) for cell in row))
        Console().print(table)
        return
    for row in rows:
        typer.echo("  ".join("-" if cell is None else str(cell) for cell in row))


def dead_letters(letters: Sequence[DeadLetter], now: float) -> None:
    """`lab dlq list`."""
    if not letters:
        typer.echo("the dead-letter queue is empty")
        return
    rows = [
        (x.message_id, x.request_id, x.receive_count, f"{now - x.sent_at:.0f}s", x.worker, x.reason)
        for x in letters
    ]
    render(
        "dead-letter queue",
        ("message id", "request id", "receives", "age", "worker", "reason"),
        rows,
    )
