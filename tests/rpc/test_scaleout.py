"""
Scale-out: RPC servers behind a ZmqProxy queue (ROUTER frontend, DEALER backend) share the
calls of a client; a worker process killed with SIGKILL costs only the calls it held, which
time out, or are answered by another worker when the client retries.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import Deferred, DeferredList, gatherResults

from tests.peers import inThread
from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqProxy,
    ZmqRequestTimeoutError,
    ZmqRouterConnection,
)
from txzmq2.rpc import RPCClient, RPCServer, expose

CALLS = 30


class Named:
    def __init__(self, name: str) -> None:
        self.name = name

    @expose
    def work(self, n: int) -> list[Any]:
        return [self.name, n]


class Queue:
    """A ZmqProxy queue on tcp, counting the workers that complete a handshake with it."""

    def __init__(self, factory: ZmqFactory) -> None:
        self.frontend = ZmqRouterConnection(
            factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")
        )
        self.backend = ZmqDealerConnection(factory)
        self.workers = 0
        self._waiters: list[tuple[int, Deferred[None]]] = []
        # Watched before binding: a worker's handshake can complete at once.
        self.backend.monitor(zmq.EVENT_HANDSHAKE_SUCCEEDED, self._handshake)
        self.backend.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")])
        self.disconnected = self.backend.monitor(zmq.EVENT_DISCONNECTED)
        self.proxy = ZmqProxy(factory, self.frontend, self.backend)

    def _handshake(self, _: object) -> None:
        self.workers += 1
        for entry in list(self._waiters):
            if self.workers >= entry[0]:
                self._waiters.remove(entry)
                entry[1].callback(None)

    def shutdown(self) -> None:
        """Shut down the proxy, and with it both of its connections."""
        self.proxy.shutdown()

    def connected(self, count: int) -> Deferred[None]:
        """Fires once ``count`` workers have connected to the backend."""
        from twisted.internet import reactor

        waiter: Deferred[None] = Deferred()
        self._waiters.append((count, waiter))
        if self.workers >= count:
            self._waiters.remove((count, waiter))
            waiter.callback(None)
        return waiter.addTimeout(20.0, reactor)


@pytest_twisted.ensureDeferred
async def test_every_worker_behind_a_queue_serves_calls(zmq_factory):
    queue = Queue(zmq_factory)
    workerEndpoint = ZmqEndpoint(ZmqEndpointType.connect, queue.backend.lastEndpoint)
    servers = [RPCServer(zmq_factory, workerEndpoint, Named(name)) for name in ("w1", "w2", "w3")]
    await queue.connected(3)
    client = RPCClient(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, queue.frontend.lastEndpoint), timeout=5
    )
    results = await gatherResults([client.callRemote("work", n) for n in range(CALLS)])
    assert [n for _, n in results] == list(range(CALLS))
    # The DEALER deals round-robin: with three workers connected, each gets some (a third,
    # unless a worker's connection reached the DEALER after the first calls went out).
    assert {name for name, _ in results} == {"w1", "w2", "w3"}
    client.shutdown()
    for server in servers:
        server.shutdown()
    queue.shutdown()


# -- worker processes --------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys
    from twisted.internet import task
    from twisted.internet.defer import Deferred, ensureDeferred
    from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory
    from txzmq2.rpc import RPCServer, expose

    address, name = sys.argv[1], sys.argv[2]
    holds = "--hold" in sys.argv

    class Worker:
        @expose
        def work(self, n):
            if holds:
                print(f"holding {n}", flush=True)
                return Deferred()  # never answered: the call dies with this process
            return [name, n]

    async def main(reactor):
        factory = ZmqFactory(reactor)
        server = RPCServer(factory, ZmqEndpoint(ZmqEndpointType.connect, address), Worker())
        await server.whenConnected(20)
        print("ready", flush=True)
        await Deferred()  # serve until killed

    task.react(lambda reactor: ensureDeferred(main(reactor)))
    """
)


class WorkerProcess:
    """An RPC worker in a subprocess; its stdout lines are handed to ``onLine``."""

    def __init__(self, address: str, name: str, *options: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, address, name, *options],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[str] = []
        self._ready: Deferred[None] = Deferred()
        self.onLine = lambda line: None
        self.reader = inThread(self._read)

    def _read(self) -> None:
        from twisted.internet import reactor

        assert self.process.stdout is not None
        for line in self.process.stdout:
            reactor.callFromThread(self._gotLine, line.strip())

    def _gotLine(self, line: str) -> None:
        if line == "ready":
            self._ready.callback(None)
        else:
            self.lines.append(line)
            self.onLine(line)

    def ready(self) -> Deferred[None]:
        from twisted.internet import reactor

        return self._ready.addTimeout(20.0, reactor)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.kill()
        pytest_twisted.blockon(worker.reader)
        assert worker.process.stdout is not None
        worker.process.stdout.close()


async def runWithAWorkerKilled(
    factory: ZmqFactory, workers: list[WorkerProcess], retries: int
) -> tuple[list[Any], list[BaseException], int]:
    """
    Three worker processes behind a queue, the third holding every call it gets; once every
    call is answered or held, the third is killed. Returns the results, the failures, and
    how many calls the killed worker held.
    """
    queue = Queue(factory)
    for name, options in (("w1", ()), ("w2", ()), ("w3", ("--hold",))):
        workers.append(WorkerProcess(queue.backend.lastEndpoint, name, *options))
    for worker in workers:
        await worker.ready()
    await queue.connected(3)
    client = RPCClient(
        factory,
        ZmqEndpoint(ZmqEndpointType.connect, queue.frontend.lastEndpoint),
        timeout=3.0,
        retries=retries,
    )
    await client.whenConnected(10)

    accounted: Deferred[None] = Deferred()
    answered = 0

    def check(_: object = None) -> None:
        if answered + len(workers[2].lines) == CALLS and not accounted.called:
            accounted.callback(None)

    def gotAnswer(result: Any) -> Any:
        nonlocal answered
        answered += 1
        check()
        return result

    workers[2].onLine = check
    calls = [client.callRemote("work", n).addCallback(gotAnswer) for n in range(CALLS)]
    await accounted
    held = len(workers[2].lines)
    workers[2].kill()
    await queue.disconnected.waitFor(zmq.EVENT_DISCONNECTED, 10)

    outcomes = await DeferredList(calls, consumeErrors=True)
    results = [value for ok, value in outcomes if ok]
    failures = [value.value for ok, value in outcomes if not ok]
    # Calls made after the worker died go to the two that are left.
    after = await gatherResults([client.callRemote("work", n) for n in range(10)])
    assert {name for name, _ in after} == {"w1", "w2"}
    client.shutdown()
    queue.shutdown()
    return results, failures, held


@pytest.mark.timeout(40)
@pytest_twisted.ensureDeferred
async def test_a_killed_worker_costs_only_the_calls_it_held(zmq_factory, workers):
    results, failures, held = await runWithAWorkerKilled(zmq_factory, workers, retries=0)
    assert held > 0
    assert len(failures) == held
    assert all(isinstance(failure, ZmqRequestTimeoutError) for failure in failures)
    assert len(results) == CALLS - held
    assert {name for name, _ in results} == {"w1", "w2"}


@pytest.mark.timeout(40)
@pytest_twisted.ensureDeferred
async def test_with_retries_the_calls_a_killed_worker_held_are_answered_by_others(
    zmq_factory, workers
):
    results, failures, held = await runWithAWorkerKilled(zmq_factory, workers, retries=1)
    assert held > 0
    assert failures == []
    assert sorted(n for _, n in results) == list(range(CALLS))
    assert {name for name, _ in results} == {"w1", "w2"}
