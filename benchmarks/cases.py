"""
The txzmq2 side of every case: the measuring side (client, PULL, SUB) and the far side
(REP server, PUSH, PUB), on one reactor or with the far side in a peer process.

Senders go through the connection's ``IConsumer`` (``registerProducer``), a few hundred
messages per reactor turn, as an application that wants to stay responsive would; the
reactor's responsiveness is watched by :class:`StallMonitor` throughout the measured window.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from benchmarks.common import IDLE_END, Measurement, PeerProcess, Spec, summarise
from txzmq2 import (
    Message,
    ZmqConnection,
    ZmqConnectionClosed,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqPubConnection,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqSubConnection,
)
from txzmq2.rpc import RPCClient, RPCServer, expose
from txzmq2.testing import waitForSubscription

__all__ = [
    "BurstSender",
    "EchoServer",
    "EchoService",
    "StallMonitor",
    "measure",
    "startServerSide",
]

CONNECT_TIMEOUT = 10.0
WARM_UP = 20
PROBE = b"probe"
DATA = b"data"


class StallMonitor:
    """
    The longest gap between ticks of a 1 ms ``LoopingCall``: how long the reactor went
    without running a timer (the interval itself included).
    """

    def __init__(self, reactor: Any, interval: float = 0.001) -> None:
        self._loop = LoopingCall(self._tick)
        self._loop.clock = reactor
        self._interval = interval
        self._last = 0.0
        self.longest = 0.0

    def start(self) -> None:
        self._last = perf_counter()
        self._loop.start(self._interval, now=False)

    def _tick(self) -> None:
        now = perf_counter()
        self.longest = max(self.longest, now - self._last)
        self._last = now

    def stop(self) -> float:
        """Stop watching; return the longest gap in seconds (including the one ending now)."""
        if self._loop.running:
            self._tick()
            self._loop.stop()
        return self.longest


class EchoServer(ZmqREPConnection):
    """A REP server answering each request with its own frames."""

    def handleRequest(self, *parts: bytes) -> tuple[bytes, ...]:
        return parts


class EchoService:
    """What the RPC cases call: ``echo`` answers with its argument."""

    @expose
    def echo(self, data: bytes) -> bytes:
        return data


@implementer(IPushProducer)
class BurstSender:
    """
    Sends ``count`` messages through ``send``, at most ``burst`` per reactor turn, paused
    while the connection's outbound queue is above its high-water mark.
    """

    def __init__(
        self,
        reactor: Any,
        connection: ZmqConnection,
        send: Callable[[], None],
        count: int,
        burst: int = 256,
    ) -> None:
        self._reactor = reactor
        self._connection = connection
        self._send = send
        self._burst = burst
        self.remaining = count
        self.sent = 0
        self._paused = False
        self._call: Any = None
        self.finished: Deferred[None] = Deferred()

    def start(self) -> None:
        self._connection.registerProducer(self, True)
        self._schedule()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self.remaining = 0
        self._end()

    def _schedule(self) -> None:
        if self._call is None and self.remaining and not self._paused:
            self._call = self._reactor.callLater(0, self._sendBurst)

    def _sendBurst(self) -> None:
        self._call = None
        send = self._send
        for _ in range(min(self._burst, self.remaining)):
            if self._paused:
                break
            send()
            self.remaining -= 1
            self.sent += 1
        if self.remaining:
            self._schedule()
        else:
            self._end()

    def _end(self) -> None:
        if self._call is not None:
            self._call.cancel()
            self._call = None
        if not self.finished.called:
            self._connection.unregisterProducer()
            self.finished.callback(None)


class _Counter:
    """Counts arrivals until ``target``; ``done`` fires then, or when :meth:`end` is called."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.received = 0
        self.last = 0.0
        self.timedOut = False
        self.done: Deferred[None] = Deferred()

    def arrived(self) -> None:
        self.received += 1
        self.last = perf_counter()
        if self.received == self.target:
            self.end()

    def end(self, timedOut: bool = False) -> None:
        if not self.done.called:
            self.timedOut = timedOut
            self.done.callback(None)


class _CountingPull(ZmqPullConnection):
    counter: _Counter

    def onPull(self, message: Message) -> None:
        self.counter.arrived()


class _CountingSub(ZmqSubConnection):
    counter: _Counter
    probed: Deferred[None]

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        if tag == DATA:
            self.counter.arrived()
        elif tag == PROBE and not self.probed.called:
            self.probed.callback(None)


def startServerSide(factory: ZmqFactory, spec: Spec) -> tuple[ZmqConnection, BurstSender | None]:
    """
    Bind the far side of ``spec``'s case: an echo server, or a PUSH or PUB connection with
    a :class:`BurstSender` ready to start.
    """
    bind = ZmqEndpoint(ZmqEndpointType.bind, spec.bindAddress())
    payload = b"x" * spec.size
    reactor = factory.reactor
    if spec.kind in ("sequential", "pipelined"):
        if spec.rpc:
            return RPCServer(factory, bind, EchoService()), None
        return EchoServer(factory, bind), None
    if spec.kind == "push_pull":
        push = ZmqPushConnection(factory, bind)
        return push, BurstSender(reactor, push, lambda: push.send(payload), spec.count)
    publisher = ZmqPubConnection(factory, bind)
    return publisher, BurstSender(
        reactor, publisher, lambda: publisher.publish(payload, DATA), spec.count
    )


def _requester(client: ZmqREQConnection) -> Callable[[bytes], Deferred[Any]]:
    """How one request is made: ``sendMsg``, or an RPC call of ``echo``."""
    if isinstance(client, RPCClient):
        callRemote = client.callRemote
        return lambda payload: callRemote("echo", payload)
    return client.sendMsg


async def _requests(
    reactor: Any, client: ZmqREQConnection, spec: Spec
) -> tuple[int, list[float], bool]:
    """Run the request-reply loop: one at a time, or ``spec.inflight`` outstanding."""
    request = _requester(client)
    payload = b"x" * spec.size
    latencies: list[float] = []
    deadline = perf_counter() + spec.timeout
    # Shutting the client down fails every pending request: the loops below then end.
    watchdog = reactor.callLater(spec.timeout, client.shutdown)
    try:
        if spec.kind == "sequential":
            for _ in range(spec.count):
                started = perf_counter()
                try:
                    await request(payload)
                except ZmqConnectionClosed:
                    return len(latencies), latencies, True
                latencies.append(perf_counter() - started)
                if started > deadline:
                    return len(latencies), latencies, True
            return len(latencies), latencies, False

        done: Deferred[None] = Deferred()
        issued = 0
        failed = False

        def issue() -> None:
            nonlocal issued
            issued += 1
            started = perf_counter()
            request(payload).addCallbacks(answered, lost, (started,))

        def answered(_: object, started: float) -> None:
            latencies.append(perf_counter() - started)
            if issued < spec.count:
                issue()
            elif len(latencies) == spec.count and not done.called:
                done.callback(None)

        def lost(_: object) -> None:
            nonlocal failed
            failed = True
            if not done.called:
                done.callback(None)

        for _ in range(min(spec.inflight, spec.count)):
            issue()
        await done
        return len(latencies), latencies, failed
    finally:
        if watchdog.active():
            watchdog.cancel()


async def _run(reactor: Any, spec: Spec) -> Measurement:
    factory = ZmqFactory(reactor)
    peer: PeerProcess | None = None
    stall = StallMonitor(reactor)
    try:
        sender: BurstSender | None = None
        server: ZmqConnection | None = None
        if spec.mode == "subprocess":
            peer = PeerProcess(spec)
            address = peer.endpoint
        else:
            server, sender = startServerSide(factory, spec)
            address = server.lastEndpoint
        connect = ZmqEndpoint(ZmqEndpointType.connect, address)

        def go() -> None:
            if peer is not None:
                peer.go()
            elif sender is not None:
                sender.start()

        latencies: list[float] | None = None
        if spec.kind in ("sequential", "pipelined"):
            client = (RPCClient if spec.rpc else ZmqREQConnection)(factory, connect)
            await client.whenConnected(CONNECT_TIMEOUT)
            warmUp = _requester(client)
            for _ in range(WARM_UP):
                await warmUp(b"warm-up")
            stall.start()
            started = perf_counter()
            completed, latencies, timedOut = await _requests(reactor, client, spec)
            elapsed = perf_counter() - started
        else:
            counter = _Counter(spec.count)
            receiver: ZmqConnection
            if spec.kind == "push_pull":
                receiver = _CountingPull(factory, connect)
                receiver.counter = counter
                await receiver.whenConnected(CONNECT_TIMEOUT)
            else:
                receiver = subscriber = _CountingSub(factory, connect)
                subscriber.counter = counter
                subscriber.probed = Deferred()
                subscriber.subscribe(DATA)
                if peer is None:
                    assert server is not None
                    await waitForSubscription(server, subscriber, CONNECT_TIMEOUT)
                else:
                    # The peer publishes probes until told to go.
                    subscriber.subscribe(PROBE)
                    await subscriber.probed.addTimeout(CONNECT_TIMEOUT, reactor)
            stall.start()
            started = perf_counter()
            deadline = started + spec.timeout

            def watch() -> None:
                now = perf_counter()
                if counter.received and now - counter.last > IDLE_END:
                    counter.end(timedOut=spec.kind != "pub_sub")
                elif now > deadline:
                    counter.end(timedOut=True)

            watcher = LoopingCall(watch)
            watcher.clock = reactor
            watcher.start(0.05, now=False)
            go()
            await counter.done
            watcher.stop()
            completed, timedOut = counter.received, counter.timedOut
            elapsed = (counter.last or perf_counter()) - started
        longest = stall.stop()
        report = peer.stop() if peer is not None else None
        return summarise(
            spec, completed, elapsed, latencies, timedOut=timedOut, stall=longest, peer=report
        )
    finally:
        stall.stop()
        if peer is not None:
            peer.kill()
        await factory.shutdown()


def measure(spec: Spec) -> Measurement:
    """Run one txzmq2 measurement on this process's (default) reactor."""
    from twisted.internet import reactor as installed

    reactor: Any = installed
    outcome: list[Any] = []

    def finished(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    def start() -> None:
        ensureDeferred(_run(reactor, spec)).addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    result = outcome[0]
    if isinstance(result, Measurement):
        return result
    result.raiseException()
    raise AssertionError("unreachable")
