"""
The txzmq2 side of every case: the measuring side (client, PULL, SUB) and the far side
(REP server, PUSH, PUB), on one reactor or with the far side in a peer process; and what
every reactor-based implementation shares (:mod:`txzmq2.bench.txzmq_cases` uses it too): the
stall monitor, the burst sender, the request loop, the arrival counter, the peer's
:class:`ServerSide`.

Senders go through the connection's ``IConsumer`` (``registerProducer``), a few hundred
messages per reactor turn, as an application that wants to stay responsive would (txzmq2's
PUSH hands each turn's burst to ``sendMany`` in one call; PUB sends one by one); the
reactor's responsiveness is watched by :class:`StallMonitor` throughout the measured window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from zope.interface import implementer

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
from txzmq2.bench.common import (
    CLOCK_EVERY,
    CONNECT_TIMEOUT,
    IDLE_END,
    Measurement,
    PeerProcess,
    Spec,
    summarise,
)
from txzmq2.rpc import RPCClient, RPCServer, expose
from txzmq2.testing import waitForSubscription

__all__ = [
    "DATA",
    "PROBE",
    "WARM_UP",
    "BurstSender",
    "Counter",
    "EchoServer",
    "EchoService",
    "ServerSide",
    "StallMonitor",
    "countArrivals",
    "measure",
    "requestLoop",
    "runOnReactor",
    "serve",
    "startProbes",
    "startServerSide",
]

WARM_UP = 20
PROBE = b"probe"
DATA = b"data"
_CLOCK_MASK = CLOCK_EVERY - 1
RETRY_DELAY = 0.001
"""Seconds a :class:`BurstSender` waits after a refused send (no flow control to wait on)."""


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
    Sends ``count`` messages through ``send`` (or ``sendBatch``), at most ``burst`` per
    reactor turn.

    :param consumer: the txzmq2 connection (it has flow control): the sender registers as its
        producer and pauses while the outbound queue is above its high-water mark.
    :param refusedBy: what ``send`` raises when the message was not sent (a library without
        flow control, at the high-water mark): the sender retries it after
        :data:`RETRY_DELAY`.
    :param sendBatch: sends ``n`` messages in one call (txzmq2's ``sendMany``): then each
        turn's burst goes in one call, and ``send`` is not used.
    """

    def __init__(
        self,
        reactor: Any,
        send: Callable[[], object],
        count: int,
        *,
        consumer: ZmqConnection | None = None,
        refusedBy: tuple[type[BaseException], ...] = (),
        burst: int = 256,
        sendBatch: Callable[[int], object] | None = None,
    ) -> None:
        self._reactor = reactor
        self._consumer = consumer
        self._send = send
        self._sendBatch = sendBatch
        self._refusedBy = refusedBy
        self._burst = burst
        self.remaining = count
        self.sent = 0
        self._paused = False
        self._call: Any = None
        self.finished: Deferred[None] = Deferred()

    def start(self) -> None:
        if self._consumer is not None:
            self._consumer.registerProducer(self, True)
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
        if self._sendBatch is not None:
            if self._paused:
                return  # resumeProducing schedules the next burst
            # The whole burst in one call, even if the consumer pauses us during it: the
            # rest of the burst then waits in its queue (at most one burst past its
            # high-water mark), which is what pausing is for.
            count = min(self._burst, self.remaining)
            self._sendBatch(count)
            self.sent += count
            # (stopProducing during the batch already set it to 0.)
            self.remaining = max(0, self.remaining - count)
            if self.remaining:
                self._schedule()
            else:
                self._end()
            return
        send = self._send
        for _ in range(min(self._burst, self.remaining)):
            if self._paused:
                break
            try:
                send()
            except self._refusedBy:
                # Nothing will say when there is room again: try again a little later.
                self._call = self._reactor.callLater(RETRY_DELAY, self._sendBurst)
                return
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
            if self._consumer is not None:
                self._consumer.unregisterProducer()
            self.finished.callback(None)


class Counter:
    """
    Counts arrivals until ``target``; ``done`` fires then, past ``deadline`` (a
    :func:`~time.perf_counter` time), or when :meth:`end` is called. The clock is read every
    :data:`~txzmq2.bench.common.CLOCK_EVERY` arrivals and at the last (``last``), as the
    baseline's loop does.
    """

    def __init__(self, target: int) -> None:
        self.target = target
        self.received = 0
        self.last = 0.0
        self.deadline = math.inf
        self.timedOut = False
        self.done: Deferred[None] = Deferred()

    def arrived(self) -> None:
        self.received = received = self.received + 1
        if received & _CLOCK_MASK and received != self.target:
            return
        self.last = now = perf_counter()
        if received == self.target:
            self.end()
        elif now > self.deadline:
            # Checked here, not only by countArrivals' watcher: a read loop that never yields
            # (txZMQ's doRead drains the socket) keeps every timer from running.
            self.end(timedOut=True)

    def end(self, timedOut: bool = False) -> None:
        if not self.done.called:
            self.timedOut = timedOut
            self.done.callback(None)


class _CountingPull(ZmqPullConnection):
    counter: Counter

    def onPull(self, message: Message) -> None:
        self.counter.arrived()


class _CountingSub(ZmqSubConnection):
    counter: Counter
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

        def sendBatch(count: int) -> None:
            push.sendMany([payload] * count)

        return push, BurstSender(
            reactor, partial(push.send, payload), spec.count, consumer=push, sendBatch=sendBatch
        )
    publisher = ZmqPubConnection(factory, bind)
    publisher.singleFrame = True  # one frame per publication, as plain pyzmq sends
    return publisher, BurstSender(
        reactor, partial(publisher.publish, payload, DATA), spec.count, consumer=publisher
    )


@dataclass(frozen=True)
class ServerSide:
    """The far side of a case bound on a reactor, in any library: what a peer process drives."""

    endpoint: str
    send: Callable[[], None] | None
    """Start sending ``spec.count`` messages (PUSH, PUB); None for a request server."""
    probe: Callable[[], object] | None
    """Publish one probe (PUB): the subscriber's sign that its subscriptions arrived."""
    shutdown: Callable[[], object]
    """Close everything; may return a Deferred."""


def serve(reactor: Any, spec: Spec) -> ServerSide:
    """Bind the txzmq2 far side of ``spec``'s case on ``reactor`` (for a peer process)."""
    factory = ZmqFactory(reactor)
    server, sender = startServerSide(factory, spec)
    probe = partial(server.publish, b"", PROBE) if isinstance(server, ZmqPubConnection) else None
    return ServerSide(
        server.lastEndpoint, sender.start if sender else None, probe, factory.shutdown
    )


def startProbes(reactor: Any, probe: Callable[[], object]) -> LoopingCall:
    """Call ``probe`` every millisecond until the returned loop is stopped."""
    probes = LoopingCall(probe)
    probes.clock = reactor
    probes.start(0.001)
    return probes


def _requester(client: ZmqREQConnection) -> Callable[[bytes], Deferred[Any]]:
    """How one request is made: ``sendMsg``, or an RPC call of ``echo``."""
    if isinstance(client, RPCClient):
        callRemote = client.callRemote
        return lambda payload: callRemote("echo", payload)
    return client.sendMsg


async def requestLoop(
    reactor: Any,
    request: Callable[[bytes], Deferred[Any]],
    spec: Spec,
    abandon: Callable[[], object],
    abandoned: type[BaseException],
) -> tuple[int, list[float], bool]:
    """
    Run the request-reply loop: one at a time, or ``spec.inflight`` outstanding, until
    ``spec.count`` replies or ``spec.timeout`` seconds.

    :param request: makes one request; its Deferred fires with the reply.
    :param abandon: at the timeout: fail every outstanding request with ``abandoned``.
    :return: the replies received, their latencies (seconds), and whether the loop timed out
        or a request failed.
    """
    payload = b"x" * spec.size
    latencies: list[float] = []
    deadline = perf_counter() + spec.timeout
    done: Deferred[None] = Deferred()
    failed = False

    def expire() -> None:
        nonlocal failed
        failed = True
        abandon()
        # Also ends a pipelined loop that has nothing outstanding left to fail.
        if not done.called:
            done.callback(None)

    watchdog = reactor.callLater(spec.timeout, expire)
    try:
        if spec.kind == "sequential":
            for _ in range(spec.count):
                started = perf_counter()
                try:
                    await request(payload)
                except abandoned:
                    return len(latencies), latencies, True
                latencies.append(perf_counter() - started)
                if started > deadline:
                    return len(latencies), latencies, True
            return len(latencies), latencies, False

        issued = 0

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


async def countArrivals(
    reactor: Any, counter: Counter, spec: Spec, go: Callable[[], None]
) -> tuple[int, float, bool]:
    """
    Start the sending with ``go``, then count until every message arrived, none arrived for
    :data:`~txzmq2.bench.common.IDLE_END` seconds (PUB/SUB: the rest were dropped), or
    ``spec.timeout`` seconds passed.

    :return: the messages counted, the seconds from ``go`` to the last one, and whether the
        count timed out (or, PUSH/PULL, went idle before the end).
    """
    started = counter.last = perf_counter()
    counter.deadline = started + spec.timeout
    # The counter reads the clock only now and then: idle is when its count stood still.
    seen, seenAt = 0, started

    def watch() -> None:
        nonlocal seen, seenAt
        now = perf_counter()
        if counter.received != seen:
            seen, seenAt = counter.received, now
        elif seen and now - seenAt > IDLE_END:
            counter.end(timedOut=spec.kind != "pub_sub")
        if now > counter.deadline:
            counter.end(timedOut=True)

    watcher = LoopingCall(watch)
    watcher.clock = reactor
    watcher.start(0.05, now=False)
    try:
        go()
        await counter.done
    finally:
        watcher.stop()
    return counter.received, counter.last - started, counter.timedOut


async def _run(reactor: Any, spec: Spec) -> Measurement:
    factory = ZmqFactory(reactor)
    peer: PeerProcess | None = None
    stall = StallMonitor(reactor)
    sender: BurstSender | None = None
    try:
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
            request = _requester(client)
            for _ in range(WARM_UP):
                await request(b"warm-up")
            stall.start()
            started = perf_counter()
            completed, latencies, timedOut = await requestLoop(
                reactor, request, spec, client.shutdown, ZmqConnectionClosed
            )
            elapsed = perf_counter() - started
        else:
            counter = Counter(spec.count)
            if spec.kind == "push_pull":
                receiver = _CountingPull(factory, connect, monitored=True)
                receiver.counter = counter
                await receiver.whenConnected(CONNECT_TIMEOUT)
            else:
                subscriber = _CountingSub(factory, connect)
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
            completed, elapsed, timedOut = await countArrivals(reactor, counter, spec, go)
        longest = stall.stop()
        report = peer.stop() if peer is not None else None
        return summarise(
            spec, completed, elapsed, latencies, timedOut=timedOut, stall=longest, peer=report
        )
    finally:
        stall.stop()
        if sender is not None:
            sender.stopProducing()
        if peer is not None:
            peer.kill()
        await factory.shutdown()


def runOnReactor(
    run: Callable[[Any, Spec], Coroutine[Any, Any, Measurement]], spec: Spec
) -> Measurement:
    """Run ``run(reactor, spec)`` on this process's (default) reactor; return its result."""
    from twisted.internet import reactor as installed

    reactor: Any = installed
    outcome: list[Any] = []

    def finished(result: Any) -> None:
        outcome.append(result)
        reactor.stop()

    def start() -> None:
        ensureDeferred(run(reactor, spec)).addBoth(finished)

    reactor.callWhenRunning(start)
    reactor.run()
    result = outcome[0]
    if isinstance(result, Measurement):
        return result
    result.raiseException()
    raise AssertionError("unreachable")


def measure(spec: Spec) -> Measurement:
    """Run one txzmq2 measurement on this process's (default) reactor."""
    return runOnReactor(_run, spec)
