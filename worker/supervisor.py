"""The instance's supervisor (``python -m worker.supervisor``): runs named children, restarts one
that fails after a capped backoff, and on SIGTERM hands the signal on and waits for them to drain.

The restart policy (``after_exit``: whether and when to restart) is a pure function of the exit
and the time; ``Supervisor`` only starts, polls and signals processes.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType

from worker.backoff import backoff_delay
from worker.config import Retry

# The children an instance may run, by name.
CHILDREN: dict[str, tuple[str, ...]] = {
    "worker": (sys.executable, "-m", "worker"),
    "scaler": (sys.executable, "-m", "worker.scaler"),
}
_TICK_S = 0.05  # how often exits are noticed; a child's restart is never due sooner than this
_NOT_STARTED = 127  # what a child that cannot even be started counts as (the shell's code)


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child and how long to wait for children to stop."""

    retry: Retry = field(default_factory=lambda: Retry(base_s=0.5, cap_s=30.0))
    reset_after_s: float = 60.0  # a child that ran this long is healthy again: backoff restarts
    grace_s: float = 60.0  # SIGTERM to SIGKILL on shutdown: a job in progress gets this long
    # A SIGTERM sent to the whole process group (the lab's bodies, systemd's cgroup kill) has
    # reached the children already. Sent again at once, it can hit a child on its way out, when
    # Python has reset its handlers, and kill it (-15) instead of letting it exit 0. So children
    # get it from the supervisor only if they still run after this long (docker's init, say,
    # signals the supervisor alone); a child mid-job just drains on.
    forward_after_s: float = 1.0


@dataclass(frozen=True)
class Restart:
    """Start the child again at ``at`` (the caller's clock); ``failures`` in a row so far."""

    at: float
    failures: int


def after_exit(
    returncode: int,
    started_at: float,
    exited_at: float,
    failures: int,
    policy: RestartPolicy,
    draw: float,
) -> Restart | None:
    """What to do about a child that exited: None if it finished (exit 0), else when to restart.

    ``failures`` counts earlier failed runs in a row; ``draw`` is uniform in [0, 1). The delay is
    "equal jitter" (half the backoff ceiling, plus up to half at random): never ~0 like full
    jitter, so a crash loop is always slowed, yet restarts across a fleet stay spread out.
    """
    if returncode == 0:
        return None
    if exited_at - started_at >= policy.reset_after_s:
        failures = 0
    delay = backoff_delay(failures, policy.retry, 0.5 + max(0.0, min(1.0, draw)) / 2)
    return Restart(at=exited_at + delay, failures=failures + 1)


def log(message: str) -> None:
    """One timestamped line on stderr (the instance's console log)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    print(f"{stamp} supervisor: {message}", file=sys.stderr, flush=True)


def describe(returncode: int) -> str:
    """'exit 3' or 'signal SIGKILL', as a person reads an exit status."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-returncode).name}"
        return f"signal {-returncode}"
    return f"exit {returncode}"


@dataclass
class Child:
    """One supervised child: what it runs and where it stands."""

    name: str
    argv: tuple[str, ...]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    restart_at: float | None = None
    finished: bool = False


class Supervisor:
    """Starts its children, restarts failed ones by ``after_exit``, stops them all on request."""

    def __init__(
        self,
        children: Sequence[tuple[str, Sequence[str]]],
        policy: RestartPolicy,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.children = [Child(name, tuple(argv)) for name, argv in children]
        self.policy = policy
        self.clock = clock
        self.draw = draw
        # Set by the signal handler and nothing more: an Event's lock, or a write to stderr
        # that the handler interrupted, could deadlock or raise if taken again in the handler.
        self.stop_signal = 0

    @property
    def stopping(self) -> bool:
        """True once SIGTERM or SIGINT arrived."""
        return self.stop_signal != 0

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: leave the loop and shut the children down."""
        self.stop_signal = self.stop_signal or signum

    def run(self) -> int:
        """Supervise until stopped (then exit 0) or until every child finished with exit 0."""
        for child in self.children:
            self.start(child)
        while not self.stopping:
            now = self.clock()
            for child in self.children:
                self.check(child, now)
            if all(child.finished for child in self.children):
                log("every child finished; exiting")
                return 0
            time.sleep(_TICK_S)
        return self.shutdown()

    def start(self, child: Child) -> None:
        """Start ``child`` in the supervisor's process group (the instance is one group)."""
        child.restart_at = None
        child.started_at = self.clock()
        try:
            child.proc = subprocess.Popen(child.argv, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log(f"{child.name} cannot start: {exc}")
            child.proc = None
            self.exited(child, _NOT_STARTED, self.clock())
            return
        log(f"{child.name} started (pid {child.proc.pid})")

    def check(self, child: Child, now: float) -> None:
        """Notice an exit, or start a child whose restart is due."""
        if child.proc is not None and (code := child.proc.poll()) is not None:
            child.proc = None
            self.exited(child, code, now)
        if child.restart_at is not None and now >= child.restart_at:
            self.start(child)

    def exited(self, child: Child, code: int, now: float) -> None:
        """Apply the policy to an exit and remember the decision."""
        ran = now - child.started_at
        decision = after_exit(code, child.started_at, now, child.failures, self.policy, self.draw())
        if decision is None:
            child.finished = True
            log(f"{child.name} finished ({describe(code)} after {ran:.1f} s); not restarted")
            return
        child.failures = decision.failures
        child.restart_at = decision.at
        log(
            f"{child.name} failed ({describe(code)} after {ran:.1f} s); "
            f"restart #{decision.failures} in {decision.at - now:.2f} s"
        )

    def shutdown(self) -> int:
        """SIGTERM every child still running (the worker drains), SIGKILL after the grace; 0."""
        log(f"{signal.Signals(self.stop_signal).name} received: stopping children")
        running = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        began = self.clock()
        self.wait_for(running, began + min(self.policy.forward_after_s, self.policy.grace_s))
        for child in running:
            assert child.proc is not None
            if child.proc.poll() is None:
                log(f"{child.name} (pid {child.proc.pid}) still running: SIGTERM")
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
        self.wait_for(running, began + self.policy.grace_s)
        for child in running:
            assert child.proc is not None
            if child.proc.poll() is None:
                log(f"{child.name} still running after {self.policy.grace_s:g} s: SIGKILL")
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
            code = child.proc.wait()
            log(f"{child.name} (pid {child.proc.pid}) stopped: {describe(code)}")
        return 0

    def wait_for(self, children: list[Child], deadline: float) -> None:
        """Poll until every one of ``children`` exited, or ``deadline`` passed."""
        while self.clock() < deadline and any(c.proc.poll() is None for c in children if c.proc):
            time.sleep(_TICK_S)


def children_from(names: Sequence[str], commands: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Children from table names (``--child worker``) and ``NAME=ARGV`` commands (tests)."""
    found: list[tuple[str, list[str]]] = [(name, list(CHILDREN[name])) for name in names]
    for command in commands:
        name, sep, argv = command.partition("=")
        if not sep or not name or not argv.strip():
            raise ValueError(f"--run {command!r}: expected NAME=ARGV")
        found.append((name, shlex.split(argv)))  # split like a shell would, but none runs it
    return found or [("worker", list(CHILDREN["worker"]))]


def main(argv: list[str] | None = None) -> int:
    """Run the supervisor until SIGTERM/SIGINT (exit 0), or until every child finished."""
    parser = argparse.ArgumentParser(description="fleetlab instance supervisor")
    parser.add_argument("--child", action="append", default=[], choices=sorted(CHILDREN))
    parser.add_argument("--run", action="append", default=[], metavar="NAME=ARGV")
    parser.add_argument("--grace", type=float, default=60.0, help="SIGTERM to SIGKILL, seconds")
    parser.add_argument("--backoff-base", type=float, default=0.5)
    parser.add_argument("--backoff-cap", type=float, default=30.0)
    parser.add_argument("--reset-after", type=float, default=60.0)
    parser.add_argument("--forward-after", type=float, default=1.0)
    args = parser.parse_args(argv)
    try:
        children = children_from(args.child, args.run)
    except ValueError as exc:
        parser.error(str(exc))
    policy = RestartPolicy(
        retry=Retry(base_s=args.backoff_base, cap_s=args.backoff_cap),
        reset_after_s=args.reset_after,
        grace_s=args.grace,
        forward_after_s=args.forward_after,
    )
    supervisor = Supervisor(children, policy)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main())
