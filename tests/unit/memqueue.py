"""An in-memory request queue with SQS's semantics, for unit tests of the pipeline and the loop.

It keeps what the worker relies on: a receive hides a message for its visibility timeout and
gives a fresh receipt handle (an old one can no longer delete or change it), counts receives,
and a receive past ``max_receive_count`` moves the message to the dead-letter queue instead of
delivering it (the redrive policy). Time is a number the test moves (``advance``); every delete
and visibility change is recorded with the thread that made it. Integration tests run the same
worker on the emulators' SQS.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from worker.consume.queue import Message


@dataclass
class Stored:
    """A message in the queue: its body, how often it was received, when it is visible."""

    message_id: str
    body: bytes
    receives: int = 0
    visible_at: float = 0.0
    handle: str = ""


@dataclass(frozen=True)
class Call:
    """One delete or visibility change: which operation, on what, from which thread."""

    operation: str  # "delete" or "visibility"
    message_id: str
    seconds: int | None
    thread: str


class MemoryQueue:
    """The request queue, its dead-letter queue and the response queue, in memory."""

    def __init__(self, max_receive_count: int = 0) -> None:
        self.max_receive_count = max_receive_count
        self.now = 0.0
        self.messages: dict[str, Stored] = {}
        self.dead_letters: list[Stored] = []
        self.responses: list[bytes] = []
        self.calls: list[Call] = []
        self.batches: list[tuple[str, int]] = []  # (operation, entries) per batch call
        self.refuse: set[str] = set()  # message ids whose delete/visibility change SQS refuses
        self.on_empty: threading.Event | None = None  # set when a receive finds nothing
        self.receives = 0  # receive calls
        self._ids = (f"m-{n}" for n in itertools.count(1))
        self._handles = (f"h-{n}" for n in itertools.count(1))
        self._lock = threading.Lock()

    # -------------------------------------------------------------------- the test's side

    def send(self, body: bytes | str) -> str:
        """Put a message on the queue; return its id."""
        data = body.encode() if isinstance(body, str) else body
        message_id = next(self._ids)
        self.messages[message_id] = Stored(message_id, data)
        return message_id

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds

    def visible(self) -> list[str]:
        """Ids of the messages a receive would return now."""
        return [m.message_id for m in self.messages.values() if m.visible_at <= self.now]

    def operations(self, operation: str) -> list[Call]:
        """Recorded calls of one kind."""
        return [c for c in self.calls if c.operation == operation]

    # ------------------------------------------------------------- the worker's side (RequestQueue)

    def receive(self, max_messages: int, wait_s: int, visibility_s: int) -> list[Message]:
        with self._lock:
            self.receives += 1
            got: list[Message] = []
            for stored in list(self.messages.values()):
                if len(got) >= max(1, min(10, max_messages)):
                    break
                if stored.visible_at > self.now:
                    continue
                if 0 < self.max_receive_count <= stored.receives:
                    self.dead_letters.append(self.messages.pop(stored.message_id))
                    continue
                stored.receives += 1
                stored.visible_at = self.now + visibility_s
                stored.handle = next(self._handles)
                got.append(Message(stored.message_id, stored.handle, stored.body, stored.receives))
        if not got and self.on_empty is not None:
            self.on_empty.set()
        return got

    def delete(self, messages: Sequence[Message]) -> dict[Message, str]:
        with self._lock:
            self.batches.extend(
                ("delete", len(messages[i : i + 10])) for i in range(0, len(messages), 10)
            )
            failed = {}
            for message in messages:
                self._record("delete", message, None)
                why = self._refused(message)
                if why:
                    failed[message] = why
                else:
                    del self.messages[message.message_id]
            return failed

    def change_visibility(self, changes: Sequence[tuple[Message, int]]) -> dict[Message, str]:
        with self._lock:
            self.batches.extend(
                ("visibility", len(changes[i : i + 10])) for i in range(0, len(changes), 10)
            )
            failed = {}
            for message, seconds in changes:
                self._record("visibility", message, seconds)
                why = self._refused(message)
                if why:
                    failed[message] = why
                else:
                    self.messages[message.message_id].visible_at = self.now + seconds
            return failed

    def send_response(self, body: bytes) -> str:
        self.responses.append(body)
        return f"r-{len(self.responses)}"

    def _record(self, operation: str, message: Message, seconds: int | None) -> None:
        thread = threading.current_thread().name
        self.calls.append(Call(operation, message.message_id, seconds, thread))

    def _refused(self, message: Message) -> str:
        stored = self.messages.get(message.message_id)
        if message.message_id in self.refuse or stored is None:
            return "ReceiptHandleIsInvalid: refused"
        if stored.handle != message.receipt_handle:
            return "ReceiptHandleIsInvalid: the handle of an earlier receive"
        return ""
