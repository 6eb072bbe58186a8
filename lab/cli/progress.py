"""Progress for long commands: a live line on a terminal, nothing new when piped or ``--json``.

``working(title)`` yields ``say``: on a terminal the live line (spinner, title, the step under
way, elapsed time) follows the steps said, and each finished step is printed as a done line;
elsewhere ``say`` is the command's plain fallback (what it printed before, or nothing), so
scripts read the same output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from lab.cli.tables import on_terminal

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@contextlib.contextmanager
def working(title: str, plain: Say = _quiet, quiet: bool = False) -> Iterator[Say]:
    """Show ``title`` with a spinner and elapsed time while the block runs (on a terminal and
    unless ``quiet``); yield the function that reports a step."""
    if quiet or not on_terminal():
        yield plain
        return
    columns = (
        SpinnerColumn(),
        TextColumn("[bold]{task.description}[/bold]"),
        TextColumn("{task.fields[step]}", style="dim"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(), transient=True) as bar:
        task = bar.add_task(title, step="", total=None)
        current: list[str] = []  # the step under way, ticked off when the next one starts

        def say(step: str) -> None:
            if current:
                bar.console.print(f"  [green]✓[/green] {escape(current.pop())}")
            current.append(step)
            bar.update(task, step=step)

        yield say
        if current:
            bar.console.print(f"  [green]✓[/green] {escape(current.pop())}")
