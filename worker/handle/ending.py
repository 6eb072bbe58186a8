"""How a binary's run ended, as data, and the one rule that says what that means for the request.

The executor returns an ``Ending``; it raises nothing to carry a decision. ``judge`` is pure: it
turns (ending, receive count, max receives) into a ``Verdict`` — answer (success or an error
response), retry, or fenced — and is the only place that knows a crash is retried but a non-zero
exit is answered at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.errors import BinaryCrashed, ExecutionError, ExecutionTimeout

# ---------------------------------------------------------------------------------- endings


@dataclass(frozen=True)
class Exited:
    """The binary exited by itself with ``code``; its output is cut at the limit plus one byte."""

    code: int
    stdout: bytes
    stderr: bytes
    seconds: float


@dataclass(frozen=True)
class Signalled:
    """The binary was killed by a signal it did not get from us (a crash, the OOM killer)."""

    signal: str
    seconds: float


@dataclass(frozen=True)
class TimedOut:
    """The binary ran past ``limit_s`` and its process group was killed."""

    limit_s: float
    seconds: float


@dataclass(frozen=True)
class Cancelled:
    """The binary was stopped because it was asked to (the worker lost the job's claim)."""

    seconds: float


@dataclass(frozen=True)
class NotStarted:
    """The binary could not be started at all."""

    reason: str


Ending = Exited | Signalled | TimedOut | Cancelled | NotStarted

# ---------------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class Succeeded:
    """Exit 0: answer with the binary's output."""

    ran: Exited


@dataclass(frozen=True)
class Failed:
    """Answer with the error ``code`` and ``message``; ``dead_letter``: and keep the message for
    the dead-letter queue (a poison request, crashed on every receive)."""

    code: str
    message: str
    dead_letter: bool = False


@dataclass(frozen=True)
class Retry:
    """Do not answer: let the message come back, once the claim's lease has run out."""

    code: str
    message: str


@dataclass(frozen=True)
class Fenced:
    """The claim was lost while the binary ran: publish nothing; the taker answers."""

    message: str


Verdict = Succeeded | Failed | Retry | Fenced


def judge(ending: Ending, receive_count: int, max_receives: int) -> Verdict:
    """What ``ending`` means for a request on its ``receive_count``-th receive.

    A crash (killed by a signal) may be the machine's fault, so it is retried; on the last
    receive (``max_receives``, the redrive policy's; 0: none) it is answered ``BINARY_CRASHED``
    and left for the dead-letter queue. A non-zero exit and a timeout are answered at once: the
    binary said what was wrong, or would only run out of time again.
    """
    if isinstance(ending, Exited):
        return Succeeded(ending) if ending.code == 0 else Failed(*_exit_error(ending))
    if isinstance(ending, Signalled):
        return _crashed(ending, receive_count, max_receives)
    if isinstance(ending, TimedOut):
        return Failed(
            ExecutionTimeout.code,
            f"binary ran past its limit of {ending.limit_s:g} seconds and was killed",
        )
    if isinstance(ending, Cancelled):
        return Fenced("claim lost while the binary ran; run abandoned")
    return Failed(ExecutionError.code, ending.reason)


def _exit_error(ending: Exited) -> tuple[str, str]:
    last = ending.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return ExecutionError.code, f"binary exited with status {ending.code}: {last[0][:300]}"


def _crashed(ending: Signalled, receive_count: int, max_receives: int) -> Failed | Retry:
    message = f"binary was killed by signal {ending.signal}"
    if 0 < max_receives <= receive_count:
        return Failed(BinaryCrashed.code, f"{message} on each of {receive_count} receives", True)
    return Retry(BinaryCrashed.code, message)
