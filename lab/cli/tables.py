"""Tables for people: rich tables on a terminal, plain aligned lines when piped.

Plain output is what scripts and the existing tests read, so it stays as it was; rich only
decorates a terminal (``sys.stdout.isatty()``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
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
            table.add_row(*("-" if cell is None else escape(str(cell)) for cell in row))
        Console().print(table)
        return
    for row in rows:
        typer.echo("  ".join("-" if cell is None else str(cell) for cell in row))


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.1f} s ago"


def network_line(net: dict[str, Any]) -> str:
    """One line on the lab's network, for both views of `lab status`."""
    if net["latency"] == "none":
        return "network: direct to the emulator (latency none)"
    if net["proxy"] is None:
        return f"network: latency {net['latency']}, but its proxy is not running"
    return (
        f"network: latency {net['latency']} via the proxy {net['proxy']}, "
        f"{sum(net['calls'].values())} AWS calls carried"
    )


def status_view(snap: dict[str, Any], now: float) -> Group:
    """`lab status` on a terminal: the network's and the scaler's lines, then queues,
    instances and workers."""
    parts: list[Any] = [escape(network_line(snap["network"]))]
    leading = snap["scaler"]
    if leading:
        parts.append(
            f"[bold]scaler[/bold] leader {leading.get('leader')} (token {leading.get('token')}),"
            f" desired [bold]{leading.get('desired')}[/bold],"
            f" {now - float(leading.get('at', 0)):.0f} s ago: {escape(str(leading.get('reason')))}"
        )
    queues = Table(title="queues", title_justify="left")
    for head in ("queue", "visible", "in flight", "delayed"):
        queues.add_column(head, justify="left" if head == "queue" else "right")
    for name, c in snap["queues"].items():
        queues.add_row(name, str(c["visible"]), str(c["in_flight"]), str(c["delayed"]))
    parts.append(queues)
    if snap["instances"]:
        fleet = Table(title="instances", title_justify="left")
        for head in ("instance", "EC2", "state", "body", "code", "jobs", "heartbeat", "flags"):
            fleet.add_column(head, justify="right" if head in ("jobs", "heartbeat") else "left")
        for i in snap["instances"]:
            flags = " ".join(
                f for f, on in (("STALE", i["stale"]), ("DRAIN", i["drain_requested"])) if on
            )
            fleet.add_row(
                i["id"], i["ec2_state"], _cell(i["state"]), f"{_cell(i['backend'])} {i['body']}",
                _cell(i["code_version"]), str(i["jobs_done"]), _age(i["heartbeat_age_s"]),
                f"[red]{flags}[/red]" if flags else "",
            )  # fmt: skip
        parts.append(fleet)
    if snap["workers"]:
        plain = Table(title="workers", title_justify="left")
        for head in ("worker", "state", "process", "jobs", "heartbeat", "flags"):
            plain.add_column(head, justify="right" if head in ("jobs", "heartbeat") else "left")
        for w in snap["workers"]:
            plain.add_row(
                w["worker_id"], w["state"], w["process"], str(w["jobs_done"]),
                _age(w["heartbeat_age_s"]), "[red]STALE[/red]" if w["stale"] else "",
            )  # fmt: skip
        parts.append(plain)
    return Group(*parts)


def show(view: RenderableType) -> None:
    """Print a rich view on the terminal."""
    Console().print(view)


def watch(view: Callable[[], RenderableType], every_s: float) -> None:
    """Redraw ``view()`` in place every ``every_s`` until Ctrl-C."""
    with Live(view(), console=Console(), auto_refresh=False) as live:
        try:
            while True:
                time.sleep(every_s)
                live.update(view(), refresh=True)
        except KeyboardInterrupt:
            return


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
