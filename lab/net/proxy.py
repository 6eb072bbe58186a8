"""A TCP proxy on 127.0.0.1 between the instances and their endpoints (the emulator, the
callback receiver), one listening port per route, with faults set per route while it runs.

The fault model is data (``Fault``): added latency per forwarded chunk, a chance of resetting a
connection, refusing new connections, or a partition (bytes are held, neither forwarded nor
answered, until it heals: the peer sees a hang, as behind a dropped route). The proxy only
forwards bytes, so it serves HTTP, keep-alive and all, whatever runs over it.

A route marked ``aws`` carries AWS API calls: there the proxy frames each HTTP/1.1 request
(http_frames.py), counts it by operation and, with a latency model (latency.py), holds it for
a delay drawn for that operation before forwarding it: the lab's network answers like AWS's.
Faults apply on top of that base. Instances use the proxy only when the lab points their
endpoint URLs at it: off the path by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lab.net import http_frames
from lab.net.http_frames import FramingError
from lab.net.latency import Call, LatencyModel

_CHUNK = 64 * 1024
_HOLD_TICK_S = 0.05
_TRACED_PATH = 256


@dataclass(frozen=True)
class Fault:
    """What a route does to its traffic now; ``Fault()`` forwards untouched."""

    latency_s: float = 0.0  # added before each chunk is forwarded, either way
    reset_p: float = 0.0  # chance, per chunk, that the connection is reset (both sides)
    refuse: bool = False  # new connections are reset at once (a closed port)
    partition: bool = False  # nothing passes; held bytes flow again when it heals

    def __post_init__(self) -> None:
        if self.latency_s < 0 or not 0.0 <= self.reset_p <= 1.0:
            raise ValueError(f"bad fault {self}: latency >= 0 and 0 <= reset_p <= 1")

    @property
    def active(self) -> bool:
        """True when the route does anything but forward."""
        return self != Fault()


@dataclass(frozen=True)
class Route:
    """Where one listening port forwards to."""

    name: str
    host: str
    port: int
    listen: int = 0  # the proxy's own port for it; 0: a free one
    aws: bool = False  # AWS API calls: framed, counted, delayed by the latency model


@dataclass(frozen=True)
class Traced:
    """One AWS call through the proxy: when it arrived (epoch s), on which route, what it was,
    and the delay the latency model held it for."""

    at: float
    route: str
    call: Call
    delay_ms: float
    path: str  # the request's path, without its query (S3: bucket and key)


class Proxy:
    """Routes on 127.0.0.1, served by an event loop on a thread of its own; ``set`` changes a
    route's fault at once (a partition also holds the connections already open)."""

    def __init__(
        self,
        routes: list[Route],
        seed: int = 0,
        latency: LatencyModel | None = None,
        trace: Callable[[Traced], None] | None = None,
    ) -> None:
        self.routes = {r.name: r for r in routes}
        self.latency = latency
        self._trace = trace  # hears every AWS call, on the proxy's loop: keep it quick
        self._calls: dict[str, Counter[str]] = {r.name: Counter() for r in routes if r.aws}
        self._drawn: Counter[Call] = Counter()
        self._faults: dict[str, Fault] = {r.name: Fault() for r in routes}
        self._ports: dict[str, int] = {}
        self._rng = random.Random(seed)  # noqa: S311 (fault draws, not secrets)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="proxy", daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far, every route

    def start(self) -> Proxy:
        """Listen on a free port per route; return self."""
        self._thread.start()
        for name in self.routes:
            future = asyncio.run_coroutine_threadsafe(self._listen(name), self._loop)
            self._ports[name] = future.result(timeout=5)
        return self

    def stop(self) -> None:
        """Close every route and stop the loop's thread."""

        async def close() -> None:
            for server in self._servers:
                server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            with contextlib.suppress(TimeoutError, RuntimeError):
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def url(self, name: str) -> str:
        """The base URL that reaches route ``name`` through the proxy."""
        return f"http://127.0.0.1:{self._ports[name]}"

    def set(self, name: str, fault: Fault) -> None:
        """Give route ``name`` this fault from now on (``Fault()`` heals it)."""
        if name not in self.routes:
            raise KeyError(f"no route {name!r}: {', '.join(self.routes)}")
        self._faults[name] = fault

    def faults(self) -> Mapping[str, Fault]:
        """Each route's fault now."""
        return dict(self._faults)

    def calls(self) -> dict[str, dict[str, int]]:
        """AWS calls so far per ``aws`` route, by ``service.Operation``."""
        return {name: dict(sorted(counts.items())) for name, counts in self._calls.items()}

    # ------------------------------------------------------------------------------ the loop

    async def _listen(self, name: str) -> int:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:  # held here: the loop keeps only a weak reference
                self._tasks.add(task)
            try:
                await self._serve(name, reader, writer)
            except asyncio.CancelledError:
                pass  # stop() ends open connections; Python 3.11 would log each as an error
            finally:
                self._tasks.discard(task)

        listen = self.routes[name].listen
        server = await asyncio.start_server(serve, "127.0.0.1", listen, limit=http_frames.MAX_HEAD)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def _serve(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        if self._faults[name].refuse:
            writer.transport.abort()
            return
        route = self.routes[name]
        try:
            up_reader, up_writer = await asyncio.open_connection(route.host, route.port)
        except OSError:
            writer.transport.abort()  # the endpoint is away: the client sees a reset
            return
        closing = (writer, up_writer)
        outward = self._requests if route.aws else self._pipe
        try:
            await asyncio.gather(
                outward(name, reader, up_writer, closing),
                self._pipe(name, up_reader, writer, closing),
                return_exceptions=True,
            )
        finally:
            for w in closing:
                w.transport.abort()

    async def _pipe(
        self,
        name: str,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        both: tuple[asyncio.StreamWriter, ...],
    ) -> None:
        try:
            while data := await src.read(_CHUNK):
                if not await self._gate(name):
                    break
                dst.write(data)
                await dst.drain()
            else:
                if dst.can_write_eof():
                    dst.write_eof()  # a half-close passes through; the other way may go on
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        for w in both:
            w.transport.abort()

    async def _gate(self, name: str) -> bool:
        """Apply the route's fault to the next piece forwarded: hold it through a partition,
        delay it; False when the connection is to be reset instead."""
        while self._faults[name].partition:
            await asyncio.sleep(_HOLD_TICK_S)
        fault = self._faults[name]
        if fault.reset_p and self._rng.random() < fault.reset_p:
            return False
        if fault.latency_s:
            await asyncio.sleep(fault.latency_s)
        return True

    async def _requests(
        self,
        name: str,
        src: asyncio.StreamReader,
        dst: asyncio.StreamWriter,
        both: tuple[asyncio.StreamWriter, ...],
    ) -> None:
        """Client to endpoint on an ``aws`` route: request by request, each counted and held
        for its drawn delay (the whole request: a ``100-continue`` body follows its head at
        once). Bytes that are not HTTP are forwarded untouched from there on."""
        try:
            while raw := await http_frames.read_head(src):
                try:
                    head = http_frames.parse_head(raw)
                except FramingError:
                    dst.write(raw)  # not HTTP ours to frame: bytes as they come from here on
                    await self._pipe(name, src, dst, both)
                    return
                form = await http_frames.read_form(head, src) if head.is_form else None
                delay_s = self._record(name, head, http_frames.recognise(head, form)) / 1000
                if delay_s:
                    await asyncio.sleep(delay_s)
                if not await self._gate(name):
                    break
                dst.write(raw + (form or b""))
                if form is None:
                    await http_frames.copy_body(head, src, dst)
                await dst.drain()
            else:
                if dst.can_write_eof():
                    dst.write_eof()
                return
        except FramingError:  # what is left in the buffer is forwarded as it comes
            await self._pipe(name, src, dst, both)
            return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        for w in both:
            w.transport.abort()

    def _record(self, name: str, head: http_frames.RequestHead, call: Call) -> float:
        """Count a call and draw its delay (ms; 0 without a latency model)."""
        self._calls[name][call.name] += 1
        delay_ms = 0.0
        if self.latency is not None:
            delay_ms = self.latency.draw_ms(call, self._drawn[call])
            self._drawn[call] += 1
        if self._trace is not None:
            path = head.target.split("?", 1)[0][:_TRACED_PATH]
            self._trace(Traced(time.time(), name, call, delay_ms, path))
        return delay_ms
