"""
Process faults under load: a broker or a worker SIGKILLed while a stream of requests is in
flight through it, then restarted. A Lazy Pirate client (``timeout`` and ``retries``)
completes every request, and every request's Deferred fires exactly once.

(``tests/test_reliability.py`` covers a lone REP server killed between requests or while
holding one; here the victim dies with many requests outstanding, behind or being the
broker.) Loopback only: killed processes are :mod:`tests.faults.hosts` programs.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txzmq2 import (
    Message,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqProxy,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect

TOTAL = 300
INFLIGHT = 20
TIMEOUT = 0.3
RETRIES = 20  # 6 s of tries: room for a process restart
KILL_AFTER = 100


class LazyPirate(ZmqREQConnection):
    reconnectInterval = 100
    monitored = True  # whenConnected after the connect


class NamedWorker(ZmqREPConnection):
    reconnectInterval = 100
    monitored = True  # whenConnected after the connect

    def handleRequest(self, *parts: bytes) -> list[bytes]:
        return [b"local", *parts]


class RequestStream:
    """
    ``total`` numbered requests, ``inflight`` of them outstanding at any time, each with
    ``timeout`` and ``retries``. Records how each Deferred fired, and how many times.
    """

    def __init__(self, client: ZmqREQConnection, total: int, inflight: int) -> None:
        self.client = client
        self.total = total
        self.inflight = inflight
        self.fired = [0] * total
        self.results: list[Message | Failure | None] = [None] * total
        self.ended = 0
        self.done: Deferred[None] = Deferred()
        self._next = 0
        self._milestones: list[tuple[int, Deferred[None]]] = []

    def start(self) -> None:
        for _ in range(self.inflight):
            self._issue()

    def reached(self, count: int) -> Deferred[None]:
        """Fires once ``count`` requests have ended."""
        milestone: Deferred[None] = Deferred()
        self._milestones.append((count, milestone))
        return milestone

    def _issue(self) -> None:
        number = self._next
        if number < self.total:
            self._next += 1
            request = self.client.sendMsg(b"%d" % number, timeout=TIMEOUT, retries=RETRIES)
            request.addBoth(self._ended, number)

    def _ended(self, result: Message | Failure, number: int) -> None:
        self.fired[number] += 1
        self.results[number] = result
        self.ended += 1
        for count, milestone in list(self._milestones):
            if self.ended >= count:
                self._milestones.remove((count, milestone))
                milestone.callback(None)
        self._issue()
        if self.ended == self.total:
            self.done.callback(None)

    def answeredBy(self) -> set[bytes]:
        return {result[0] for result in self.results if isinstance(result, list)}

    def assertEachAnsweredOnce(self) -> None:
        assert self.fired == [1] * self.total
        bodies = [result[1:] if isinstance(result, list) else result for result in self.results]
        assert bodies == [[b"%d" % number] for number in range(self.total)]
        assert self.client.pendingRequests == 0


async def midStream(stream: RequestStream) -> None:
    """Start the stream and return once it is well under way, with requests outstanding."""
    stream.start()
    await stream.reached(KILL_AFTER)
    assert stream.client.pendingRequests > 0


@pytest.mark.timeout(30)
@pytest_twisted.ensureDeferred
async def test_broker_killed_mid_stream_and_restarted_every_request_answered_once(
    zmq_factory, hosts, loggedFailures
):
    broker = hosts.start("broker")
    endpoints = await broker.expect("ready")
    worker = NamedWorker(zmq_factory, ZmqEndpoint(connect, endpoints["backend"]))
    client = LazyPirate(zmq_factory, ZmqEndpoint(connect, endpoints["frontend"]))
    await worker.whenConnected(10)
    await client.whenConnected(10)
    stream = RequestStream(client, TOTAL, INFLIGHT)

    await midStream(stream)
    assert await broker.kill() is None  # died of the signal
    restarted = hosts.start(
        "broker", "--frontend", endpoints["frontend"], "--backend", endpoints["backend"]
    )
    await restarted.expect("ready")
    await stream.done

    stream.assertEachAnsweredOnce()
    assert loggedFailures == []
    client.shutdown()
    worker.shutdown()


@pytest.mark.timeout(30)
@pytest_twisted.ensureDeferred
async def test_worker_killed_mid_stream_behind_a_broker_every_request_answered_once(
    zmq_factory, hosts, loggedFailures
):
    frontend = ZmqRouterConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    backend = ZmqDealerConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    proxy = ZmqProxy(zmq_factory, frontend, backend)

    def startWorker(name: str) -> Any:
        # Each request is held a while: the victim dies holding some.
        return hosts.start(
            *("worker", "--name", name, "--connect", backend.lastEndpoint, "--hold-ms", "20"),
            name=name,
        )

    victim = startWorker("w1")
    for worker in (victim, startWorker("w2")):
        await worker.expect("ready")
    client = LazyPirate(zmq_factory, ZmqEndpoint(connect, frontend.lastEndpoint))
    await client.whenConnected(10)
    stream = RequestStream(client, TOTAL, INFLIGHT)

    await midStream(stream)
    assert stream.answeredBy() == {b"w1", b"w2"}
    await victim.kill()
    await startWorker("w1").expect("ready")
    await stream.done

    stream.assertEachAnsweredOnce()
    assert loggedFailures == []
    # The restarted worker is back in the broker's rotation.
    for _ in range(10):
        reply = await client.sendMsg(b"again", timeout=5)
        if reply[0] == b"w1":
            break
    assert reply == [b"w1", b"again"]
    client.shutdown()
    proxy.shutdown()
