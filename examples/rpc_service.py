"""
An RPC service: a calculator served by two worker processes behind a queue, and a client.

The queue is a ``ZmqProxy`` (a ROUTER the client connects to, a DEALER the workers connect
to), so the client knows only the queue and its calls are dealt round-robin to the workers.
Each worker is this same file run as ``python examples/rpc_service.py worker BACKEND NAME``:
an ``RPCServer`` serving the methods of ``Calculator`` marked with ``@expose``. The client,
an ``RPCClient``, shows:

- calls spread over both workers, with their results;
- a slow coroutine method that holds up no other call, not even on its own worker;
- keyword arguments;
- an exception raised by a remote method, and a call to a method that is not exposed, both
  arriving as ``RemoteError``;
- a call given a timeout of its own that it does not meet;
- a fire-and-forget ``notify``.

It starts the queue and the workers itself, and stops them at the end. Run it with::

    python examples/rpc_service.py
"""

from __future__ import annotations

import os
import sys
from typing import Any

import zmq
from twisted.internet import protocol, stdio
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater, react

from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqProxy,
    ZmqRequestTimeoutError,
    ZmqRouterConnection,
)
from txzmq2.rpc import RemoteError, RPCClient, RPCServer, expose

WORKERS = ("worker-1", "worker-2")
CALL_TIMEOUT = 5.0


# -- the service -------------------------------------------------------------------------------


class Calculator:
    """What each worker serves. Only the methods marked with @expose can be called."""

    def __init__(self, reactor: Any, name: str) -> None:
        self.reactor = reactor
        self.name = name
        self.calls = 0

    @expose
    def add(self, a: float, b: float) -> dict[str, Any]:
        self.calls += 1
        return {"sum": a + b, "worker": self.name}

    @expose
    async def slowSquare(self, x: float, seconds: float = 0.5) -> dict[str, Any]:
        self.calls += 1
        await deferLater(self.reactor, seconds)  # a coroutine: other calls go on meanwhile
        return {"square": x * x, "worker": self.name}

    @expose
    def greet(self, name: str, greeting: str = "Hello") -> str:
        self.calls += 1
        return f"{greeting}, {name}! (from {self.name})"

    @expose
    def divide(self, a: float, b: float) -> float:
        self.calls += 1
        return a / b

    @expose
    def log(self, message: str) -> None:
        self.calls += 1
        print(f"{self.name}: notified: {message}", flush=True)

    def shutdownEverything(self) -> None:
        """Not exposed: no client can call this."""
        raise SystemExit("never reached over RPC")


# -- a worker process --------------------------------------------------------------------------


class _UntilStdinCloses(protocol.Protocol):
    """Fires ``closed`` when the parent closes our stdin: the signal to stop."""

    def __init__(self) -> None:
        self.closed: Deferred[None] = Deferred()

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


async def worker(reactor: Any, backend: str, name: str) -> None:
    factory = ZmqFactory(reactor)
    calculator = Calculator(reactor, name)
    try:
        server = RPCServer(
            factory, ZmqEndpoint(ZmqEndpointType.connect, backend), calculator, maxConcurrency=100
        )
        await server.whenConnected(timeout=10.0)
        print(f"{name}: serving {', '.join(server.methodNames)}", flush=True)
        stdin = _UntilStdinCloses()
        stdio.StandardIO(stdin, reactor=reactor)
        await stdin.closed
        print(f"{name}: served {calculator.calls} calls", flush=True)
    finally:
        await factory.shutdown()


# -- the queue, the client, and the workers' supervision ---------------------------------------


class _WorkerProcess(protocol.ProcessProtocol):
    """Relays a worker's output lines; ``ended`` fires when the process has exited."""

    def __init__(self) -> None:
        self.ended: Deferred[None] = Deferred()
        self._buffer = b""

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            print(line.decode(), flush=True)

    def errReceived(self, data: bytes) -> None:
        sys.stderr.write(data.decode())

    def processEnded(self, reason: Any) -> None:
        self.ended.callback(None)


def startWorkers(reactor: Any, backend: str) -> list[_WorkerProcess]:
    processes = []
    for name in WORKERS:
        process = _WorkerProcess()
        command = [sys.executable, os.path.abspath(__file__), "worker", backend, name]
        reactor.spawnProcess(process, sys.executable, command, env=os.environ)
        processes.append(process)
    return processes


def workersConnected(backend: ZmqDealerConnection, count: int) -> Deferred[None]:
    """Fires once ``count`` workers have connected to the queue (a socket monitor)."""
    connected: Deferred[None] = Deferred()
    seen = 0

    def handshake(_: object) -> None:
        nonlocal seen
        seen += 1
        if seen == count:
            monitor.stop()
            connected.callback(None)

    monitor = backend.monitor(zmq.EVENT_HANDSHAKE_SUCCEEDED, handshake)
    return connected


async def client(factory: ZmqFactory, frontend: str) -> None:
    calculator = RPCClient(
        factory, ZmqEndpoint(ZmqEndpointType.connect, frontend), timeout=CALL_TIMEOUT
    )

    # Calls go out together and are dealt round-robin to the workers.
    sums = await gatherResults([calculator.callRemote("add", n, n) for n in range(1, 5)])
    for n, answer in enumerate(sums, 1):
        print(f"client: add({n}, {n}) = {answer['sum']} (by {answer['worker']})")

    # A slow coroutine holds up nothing: quick calls made after it are answered first.
    slow = calculator.callRemote("slowSquare", 7)
    quick = await gatherResults([calculator.callRemote("add", 10, n) for n in range(4)])
    state = "was still running" if not slow.called else "had already finished"
    print(f"client: {len(quick)} quick calls answered while slowSquare(7) {state}")
    print(f"client: slowSquare(7) = {(await slow)['square']}")

    print("client: " + await calculator.callRemote("greet", "RPC", greeting="Hi"))

    try:
        await calculator.callRemote("divide", 1, 0)
    except RemoteError as error:
        print(f"client: divide(1, 0) failed remotely: {error.remoteType}: {error.message}")
    try:
        await calculator.callRemote("shutdownEverything")
    except RemoteError as error:
        print(f"client: shutdownEverything() refused: {error.remoteType}: {error.message}")

    try:
        await calculator.callRemoteWithOptions("slowSquare", (3,), {"seconds": 2}, timeout=0.2)
    except ZmqRequestTimeoutError:
        print("client: slowSquare(3, seconds=2) gave up after its own timeout of 0.2 s")

    calculator.notify("log", "hello from the client")
    # Notifies are not answered; a call to every worker after it shows it has been handled
    # (each worker reads its calls in order).
    await gatherResults([calculator.callRemote("add", 0, 0) for _ in WORKERS])
    print("client: done")


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    workers: list[_WorkerProcess] = []
    try:
        frontend = ZmqRouterConnection(factory)
        backend = ZmqDealerConnection(factory)
        connected = workersConnected(backend, len(WORKERS))
        frontend.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")])
        backend.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")])
        queue = ZmqProxy(factory, frontend, backend)
        print(f"queue: clients connect to {frontend.lastEndpoint}")
        print(f"queue: workers connect to {backend.lastEndpoint}")
        workers = startWorkers(reactor, backend.lastEndpoint)
        await connected.addTimeout(20.0, reactor)
        print(f"queue: {len(WORKERS)} workers connected")
        await client(factory, frontend.lastEndpoint)
        print(f"queue: forwarded {queue.forwarded} messages")
    finally:
        for process in workers:
            process.transport.closeStdin()  # type: ignore[union-attr]
        await gatherResults([process.ended for process in workers])
        await factory.shutdown()


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        react(worker, sys.argv[2:4])
    else:
        react(main)
