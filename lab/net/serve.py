"""The lab's proxy as a process of its own (``python -m lab.net.serve``), for AWS endpoints:
every route carries AWS calls, counted by operation and, with ``--latency aws``, delayed like
AWS's. Its counts go to a JSON file (rewritten each second and at exit), each call to a JSON
lines trace if asked; SIGTERM or SIGINT stops it."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import IO

from lab.net.latency import MODES, model_for
from lab.net.proxy import Proxy, Route, Traced

_FLUSH_S = 1.0


def parse_route(spec: str) -> Route:
    """``NAME:LISTEN:HOST:PORT`` as an AWS route (LISTEN 0: a free port)."""
    parts = spec.split(":")
    if len(parts) != 4 or not all(parts) or not parts[1].isdigit() or not parts[3].isdigit():
        raise argparse.ArgumentTypeError(f"route {spec!r}: want NAME:LISTEN:HOST:PORT")
    return Route(parts[0], parts[2], int(parts[3]), listen=int(parts[1]), aws=True)


def write_counts(proxy: Proxy, path: Path) -> None:
    """Replace ``path`` with the proxy's calls by route and operation, and its latency mode."""
    doc = {"latency": "aws" if proxy.latency else "none", "calls": proxy.calls()}
    part = path.with_suffix(".part")
    part.write_text(json.dumps(doc, sort_keys=True) + "\n")
    part.replace(path)


def read_counts(path: Path) -> dict[str, dict[str, int]]:
    """The calls a standalone proxy last wrote by route and operation (none before it wrote)."""
    try:
        calls = json.loads(path.read_text())["calls"]
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read proxy counts {path}: {exc}") from None
    return {str(r): {str(op): int(n) for op, n in ops.items()} for r, ops in calls.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.net.serve", description=__doc__)
    ap.add_argument("--route", type=parse_route, action="append", required=True,
                    help="NAME:LISTEN:HOST:PORT, repeatable")  # fmt: skip
    ap.add_argument("--latency", choices=MODES, default="none")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--counts", type=Path, required=True, help="JSON file of calls by operation")
    ap.add_argument("--trace", type=Path, help="JSON lines file, one line per call")
    args = ap.parse_args(argv)
    trace: IO[str] | None = args.trace.open("a", buffering=1) if args.trace else None

    def traced(one: Traced) -> None:
        if trace is not None:
            line = {"at": round(one.at, 6), "route": one.route, "call": one.call.name,
                    "delay_ms": round(one.delay_ms, 3), "path": one.path}  # fmt: skip
            trace.write(json.dumps(line) + "\n")

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    proxy = Proxy(args.route, args.seed, model_for(args.latency, args.seed), traced).start()
    print(f"proxy ready: {', '.join(f'{n} {proxy.url(n)}' for n in proxy.routes)}", flush=True)
    try:
        while not stop.wait(_FLUSH_S):
            write_counts(proxy, args.counts)
    finally:
        proxy.stop()
        write_counts(proxy, args.counts)
        if trace is not None:
            trace.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
