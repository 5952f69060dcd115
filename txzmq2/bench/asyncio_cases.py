"""
The asyncio peers: pyzmq's ``zmq.asyncio`` and aiozmq (optional: ``txzmq2[bench]``), each on
an asyncio event loop, both sides of every case they can run (all but RPC), mirroring
:mod:`txzmq2.bench.cases`: the measuring side (REQ, DEALER, PULL, SUB) and the far side (REP,
ROUTER, PUSH, PUB) on the same loop or in a peer process.

The work is the plain baseline's (:mod:`txzmq2.bench.baseline`), written as a user of each
library would write it: one frame per message, ``await`` on every send and receive (aiozmq:
``write`` then ``await drain()``), replies to pipelined requests matched in order, the clock
read every :data:`~txzmq2.bench.common.CLOCK_EVERY` arrivals in the throughput loops. What
the libraries lack is made up for outside the measured window: the handshake is awaited
with each library's socket monitor, and the measuring side ends a loop by cancelling it (at
the timeout, or when arrivals stop).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

import zmq
import zmq.asyncio

from txzmq2.bench.baseline import DATA, PROBE
from txzmq2.bench.common import (
    CLOCK_EVERY,
    CONNECT_TIMEOUT,
    IDLE_END,
    Measurement,
    PeerProcess,
    Spec,
    peakRssKb,
    summarise,
)

__all__ = ["measure", "runPeer"]

WARM_UP = 20
_CLOCK_MASK = CLOCK_EVERY - 1
_WATCH_INTERVAL = 0.05


class _Socket(Protocol):
    """One socket of either library, as the cases use it."""

    endpoint: str

    def send(self, frame: bytes) -> Awaitable[Any]: ...
    def recv(self) -> Awaitable[bytes]: ...
    def sendMultipart(self, frames: list[bytes]) -> Awaitable[Any]: ...
    def recvMultipart(self) -> Awaitable[list[bytes]]: ...
    def subscribe(self, prefix: bytes) -> None: ...
    def close(self) -> None: ...


class _ZmqAsyncioSocket:
    """A ``zmq.asyncio`` socket: the futures its ``send``/``recv`` return, as they are."""

    def __init__(self, socket: zmq.asyncio.Socket) -> None:
        self._socket = socket
        self.endpoint = ""

    def send(self, frame: bytes) -> Awaitable[Any]:
        return self._socket.send(frame)

    def recv(self) -> Awaitable[bytes]:
        return self._socket.recv()

    def sendMultipart(self, frames: list[bytes]) -> Awaitable[Any]:
        return self._socket.send_multipart(frames)

    def recvMultipart(self) -> Awaitable[list[bytes]]:
        return self._socket.recv_multipart()

    def subscribe(self, prefix: bytes) -> None:
        self._socket.subscribe(prefix)

    def close(self) -> None:
        self._socket.close(linger=0)


class _AiozmqSocket:
    """An aiozmq stream: ``write`` then ``await drain()``; ``read()`` gives a message's frames."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.endpoint = ""

    async def send(self, frame: bytes) -> None:
        self._stream.write([frame])
        await self._stream.drain()

    async def recv(self) -> bytes:
        frames: list[bytes] = await self._stream.read()
        return frames[0]

    async def sendMultipart(self, frames: list[bytes]) -> None:
        self._stream.write(frames)
        await self._stream.drain()

    async def recvMultipart(self) -> list[bytes]:
        frames: list[bytes] = await self._stream.read()
        return frames

    def subscribe(self, prefix: bytes) -> None:
        self._stream.transport.subscribe(prefix)

    def close(self) -> None:
        self._stream.close()


class _Library:
    """Opens sockets of one library: bound, or connected once the handshake is done."""

    def __init__(self, impl: str) -> None:
        self.impl = impl
        self._context: zmq.asyncio.Context | None = None
        if impl == "zmq_asyncio":
            self._context = zmq.asyncio.Context()

    async def bind(self, socketType: int, address: str) -> _Socket:
        if self._context is not None:
            socket = self._context.socket(socketType)
            socket.bind(address)
            wrapped: _Socket = _ZmqAsyncioSocket(socket)
            wrapped.endpoint = socket.get_string(zmq.LAST_ENDPOINT)
            return wrapped
        import aiozmq  # type: ignore[import-untyped, import-not-found, unused-ignore]

        stream = await aiozmq.create_zmq_stream(socketType)
        wrapped = _AiozmqSocket(stream)
        wrapped.endpoint = await stream.transport.bind(address)
        return wrapped

    async def connect(
        self, socketType: int, address: str, subscriptions: tuple[bytes, ...] = ()
    ) -> _Socket:
        """
        A socket connected to ``address``; it returns once the handshake is done (a SUB's
        subscriptions are set before it connects; their arrival is for the caller to see).
        """
        if self._context is not None:
            socket = self._context.socket(socketType)
            for prefix in subscriptions:
                socket.subscribe(prefix)
            monitor = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            try:
                socket.connect(address)
                await asyncio.wait_for(monitor.recv_multipart(), CONNECT_TIMEOUT)
            finally:
                socket.disable_monitor()
                monitor.close(linger=0)
            return _ZmqAsyncioSocket(socket)
        import aiozmq

        stream = await aiozmq.create_zmq_stream(socketType)
        transport = stream.transport
        for prefix in subscriptions:
            transport.subscribe(prefix)
        await transport.enable_monitor(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            await transport.connect(address)
            await asyncio.wait_for(stream.read_event(), CONNECT_TIMEOUT)
        finally:
            await transport.disable_monitor()
        return _AiozmqSocket(stream)

    def close(self) -> None:
        if self._context is not None:
            self._context.destroy(linger=0)


class _StallMonitor:
    """The longest gap between ticks of a 1 ms timer on the loop (as the reactor's)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self.longest = 0.0

    def start(self) -> None:
        self._last = perf_counter()
        self._handle = self._loop.call_later(0.001, self._tick)

    def _tick(self) -> None:
        now = perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now
        self._handle = self._loop.call_later(0.001, self._tick)

    def stop(self) -> float:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self.longest = max(self.longest, perf_counter() - self._last)
        return self.longest


@dataclass
class _ServerSide:
    """The far side of a case on the loop: what a peer process (or the measurer) drives."""

    endpoint: str
    send: Callable[[], None] | None
    """Start sending ``spec.count`` messages (PUSH, PUB); None for a request server."""
    shutdown: Callable[[], Awaitable[None]]


async def _serve(library: _Library, spec: Spec) -> _ServerSide:
    """Bind the far side of ``spec``'s case: an echo server, a PUSH or a probing PUB."""
    kind = spec.kind
    socketType = {
        "sequential": zmq.REP,
        "pipelined": zmq.ROUTER,
        "push_pull": zmq.PUSH,
        "pub_sub": zmq.PUB,
    }[kind]
    socket = await library.bind(socketType, spec.bindAddress())
    tasks: list[asyncio.Future[None]] = []

    async def echo() -> None:
        while True:
            await socket.send(await socket.recv())

    async def echoRouted() -> None:
        while True:
            await socket.sendMultipart(await socket.recvMultipart())

    async def probe() -> None:
        while True:
            await socket.send(PROBE)
            await asyncio.sleep(0.001)

    async def burst() -> None:
        payload = (DATA if kind == "pub_sub" else b"") + b"x" * spec.size
        send = socket.send
        for _ in range(spec.count):
            await send(payload)

    def start() -> None:
        for task in tasks:
            task.cancel()
        tasks.append(asyncio.ensure_future(burst()))

    async def shutdown() -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        socket.close()

    if kind == "sequential":
        tasks.append(asyncio.ensure_future(echo()))
    elif kind == "pipelined":
        tasks.append(asyncio.ensure_future(echoRouted()))
    elif kind == "pub_sub":
        tasks.append(asyncio.ensure_future(probe()))
    return _ServerSide(
        socket.endpoint, start if kind in ("push_pull", "pub_sub") else None, shutdown
    )


class _Progress:
    """What a measuring loop has done so far (kept when the loop is cancelled)."""

    def __init__(self) -> None:
        self.received = 0
        self.last = 0.0
        self.latencies: list[float] = []


async def _sequential(socket: _Socket, spec: Spec, progress: _Progress) -> None:
    payload = b"x" * spec.size
    send, recv = socket.send, socket.recv
    latencies = progress.latencies
    for _ in range(spec.count):
        started = perf_counter()
        await send(payload)
        await recv()
        latencies.append(perf_counter() - started)


async def _pipelined(socket: _Socket, spec: Spec, progress: _Progress) -> None:
    payload = b"x" * spec.size
    send, recv = socket.send, socket.recv
    latencies = progress.latencies
    sentAt: deque[float] = deque()
    issued = 0
    for _ in range(min(spec.inflight, spec.count)):
        issued += 1
        sentAt.append(perf_counter())
        await send(payload)
    while len(latencies) < spec.count:
        await recv()
        latencies.append(perf_counter() - sentAt.popleft())
        if issued < spec.count:
            issued += 1
            sentAt.append(perf_counter())
            await send(payload)


async def _arrivals(socket: _Socket, spec: Spec, progress: _Progress) -> None:
    recv = socket.recv
    pubSub = spec.kind == "pub_sub"
    count = spec.count
    received = 0
    while received < count:
        frame = await recv()
        if pubSub and not frame.startswith(DATA):
            continue
        progress.received = received = received + 1
        if not received & _CLOCK_MASK:
            progress.last = perf_counter()
    progress.last = perf_counter()


async def _bounded(work: Awaitable[None], progress: _Progress, spec: Spec) -> bool:
    """
    Run ``work`` until it ends, ``spec.timeout`` passes, or (one-way cases) arrivals stop
    for :data:`~txzmq2.bench.common.IDLE_END` seconds; return whether it did not finish
    (for PUB/SUB an idle end is drops, not a failure).
    """
    task = asyncio.ensure_future(work)
    deadline = perf_counter() + spec.timeout
    seen, seenAt = 0, perf_counter()
    while not task.done():
        await asyncio.wait([task], timeout=_WATCH_INTERVAL)
        now = perf_counter()
        if progress.received != seen:
            seen, seenAt = progress.received, now
        idle = spec.kind in ("push_pull", "pub_sub") and seen and now - seenAt > IDLE_END
        if not task.done() and (idle or now > deadline):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return spec.kind != "pub_sub" or now > deadline
    task.result()
    return False


async def _measure(spec: Spec) -> Measurement:
    loop = asyncio.get_running_loop()
    library = _Library(spec.impl)
    peer: PeerProcess | None = None
    server: _ServerSide | None = None
    client: _Socket | None = None
    stall = _StallMonitor(loop)
    progress = _Progress()
    try:
        if spec.mode == "subprocess":
            peer = await loop.run_in_executor(None, PeerProcess, spec)
            address = peer.endpoint
            go = peer.go
        else:
            server = await _serve(library, spec)
            address = server.endpoint
            go = server.send or (lambda: None)
        latencies: list[float] | None = None
        if spec.kind in ("sequential", "pipelined"):
            client = await library.connect(
                zmq.REQ if spec.kind == "sequential" else zmq.DEALER, address
            )
            for _ in range(WARM_UP):
                await client.send(b"warm-up")
                await client.recv()
            run = _sequential if spec.kind == "sequential" else _pipelined
            stall.start()
            started = perf_counter()
            timedOut = await _bounded(run(client, spec, progress), progress, spec)
            elapsed = perf_counter() - started
            latencies = progress.latencies
            completed = len(latencies)
        else:
            if spec.kind == "push_pull":
                client = await library.connect(zmq.PULL, address)
            else:
                client = await library.connect(zmq.SUB, address, (DATA, PROBE))
                # The publisher sends probes until told to go: one here says we are subscribed.
                while not (await asyncio.wait_for(client.recv(), CONNECT_TIMEOUT)).startswith(
                    PROBE
                ):
                    pass
            stall.start()
            started = progress.last = perf_counter()
            go()
            timedOut = await _bounded(_arrivals(client, spec, progress), progress, spec)
            completed, elapsed = progress.received, progress.last - started
        longest = stall.stop()
        report = await loop.run_in_executor(None, peer.stop) if peer is not None else None
        return summarise(
            spec, completed, elapsed, latencies, timedOut=timedOut, stall=longest, peer=report
        )
    finally:
        stall.stop()
        if client is not None:
            client.close()
        if server is not None:
            await server.shutdown()
        if peer is not None:
            peer.kill()
        library.close()


def measure(spec: Spec) -> Measurement:
    """Run one ``zmq.asyncio`` or aiozmq measurement on a fresh asyncio loop."""
    return asyncio.run(_measure(spec))


def runPeer(
    spec: Spec, say: Callable[..., None], commands: Callable[[Callable[[str], object]], None]
) -> None:
    """
    Run the far side of ``spec``'s case in this process (``python -m txzmq2.bench.peer``)
    until told to stop.

    :param say: prints one JSON line of keyword fields.
    :param commands: starts passing each stdin command to its argument, from a thread.
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        library = _Library(spec.impl)
        side = await _serve(library, spec)
        stall = _StallMonitor(loop)
        stopped = asyncio.Event()

        def handle(command: str) -> None:
            if command == "go" and side.send is not None:
                stall.start()
                side.send()
            elif command == "stop":
                stopped.set()

        if side.send is None:
            stall.start()  # a request server: watched from the start
        say(endpoint=side.endpoint)
        commands(lambda command: loop.call_soon_threadsafe(handle, command))
        try:
            await stopped.wait()
            say(rss_kb=peakRssKb(), max_stall_s=stall.stop())
        finally:
            await side.shutdown()
            library.close()

    asyncio.run(main())
