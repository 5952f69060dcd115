"""
The txZMQ side of the cases txZMQ can run (all but RPC: it has none), mirroring
:mod:`txzmq2.bench.cases`: the measuring side (REQ, PULL, SUB) and the far side (REP, PUSH,
PUB), on one reactor or with the far side in a peer process. txZMQ (the library txzmq2
replaces) is optional: ``pip install 'txzmq2[bench]'``.

The work is written as a txZMQ user would write it, with what txZMQ lacks made up for
outside the measured code, so that its figures compare and every loop stays bounded:

- Its connections default to unbounded high-water marks (``highWaterMark = 0``); here they
  use libzmq's default, 1000, like txzmq2 and pyzmq, so queues (memory) and PUB drops
  compare.
- It has no flow control: at the high-water mark ``send`` raises ``zmq.Again``. The burst
  sender then tries again :data:`~txzmq2.bench.cases.RETRY_DELAY` later.
- Its ``doRead`` drains the socket before returning, so no timer runs meanwhile: the
  arrival counter checks its deadline at every message.
- It cannot say when a connection is up: the handshake is awaited with pyzmq's monitor
  (:func:`~txzmq2.bench.common.handshake`, blocking, before the measured window), or, for
  PUB/SUB, by probes.
- Shutting a connection down leaves its requests' Deferreds unfired: at the timeout they
  are cancelled instead.
"""

from __future__ import annotations

from functools import partial
from time import perf_counter
from typing import Any

import txzmq  # type: ignore[import-untyped, import-not-found, unused-ignore]
import zmq
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import LoopingCall

from txzmq2.bench.cases import (
    DATA,
    PROBE,
    WARM_UP,
    BurstSender,
    Counter,
    ServerSide,
    StallMonitor,
    countArrivals,
    requestLoop,
    runOnReactor,
    startProbes,
)
from txzmq2.bench.common import (
    CONNECT_TIMEOUT,
    Measurement,
    PeerProcess,
    Spec,
    handshake,
    summarise,
)

__all__ = ["measure", "serve", "startServerSide"]

LIBZMQ_HWM = 1000
"""libzmq's default high-water mark, which the other implementations run with."""


class _EchoServer(txzmq.ZmqREPConnection):  # type: ignore[misc]
    """A REP server answering each request with its own frames."""

    highWaterMark = LIBZMQ_HWM

    def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
        self.reply(messageId, *messageParts)


class _Requester(txzmq.ZmqREQConnection):  # type: ignore[misc]
    highWaterMark = LIBZMQ_HWM


class _Push(txzmq.ZmqPushConnection):  # type: ignore[misc]
    highWaterMark = LIBZMQ_HWM


class _Pub(txzmq.ZmqPubConnection):  # type: ignore[misc]
    highWaterMark = LIBZMQ_HWM


class _CountingPull(txzmq.ZmqPullConnection):  # type: ignore[misc]
    highWaterMark = LIBZMQ_HWM
    counter: Counter

    def onPull(self, message: list[bytes]) -> None:
        self.counter.arrived()


class _CountingSub(txzmq.ZmqSubConnection):  # type: ignore[misc]
    highWaterMark = LIBZMQ_HWM
    counter: Counter
    probed: Deferred[None]

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        if tag == DATA:
            self.counter.arrived()
        elif tag == PROBE and not self.probed.called:
            self.probed.callback(None)


def _endpoint(connection: Any) -> str:
    """Where ``connection`` is bound (txZMQ does not say; its socket does)."""
    endpoint: str = connection.socket.get_string(zmq.LAST_ENDPOINT)
    return endpoint


def _connect(connection: Any, address: str) -> None:
    """Connect ``connection`` to ``address``; block until the handshake is done."""
    endpoint = txzmq.ZmqEndpoint(txzmq.ZmqEndpointType.connect, address)
    handshake(connection.socket, lambda: connection.addEndpoints([endpoint]))


def _abandonRequests(client: Any) -> None:
    """Cancel every outstanding request of ``client``: each fails with CancelledError."""
    # txZMQ keeps them in ``_requests`` (id -> (Deferred, timeout call)) and has no public
    # way to fail them all; its shutdown() would leave them unfired.
    for deferred, _ in list(client._requests.values()):
        deferred.cancel()


def startServerSide(factory: Any, spec: Spec) -> tuple[Any, BurstSender | None]:
    """
    Bind the far side of ``spec``'s case with txZMQ: an echo server, or a PUSH or PUB
    connection with a :class:`~txzmq2.bench.cases.BurstSender` ready to start.

    :raises ValueError: for an RPC case (txZMQ has no RPC).
    """
    if spec.rpc:
        raise ValueError(f"{spec.case}: txZMQ has no RPC layer")
    bind = txzmq.ZmqEndpoint(txzmq.ZmqEndpointType.bind, spec.bindAddress())
    payload = b"x" * spec.size
    if spec.kind in ("sequential", "pipelined"):
        return _EchoServer(factory, bind), None
    if spec.kind == "push_pull":
        push = _Push(factory, bind)
        send = partial(push.push, payload)
    else:
        push = _Pub(factory, bind)
        send = partial(push.publish, payload, DATA)
    return push, BurstSender(factory.reactor, send, spec.count, refusedBy=(zmq.Again,))


def serve(reactor: Any, spec: Spec) -> ServerSide:
    """Bind the txZMQ far side of ``spec``'s case (for a peer process; txZMQ's own reactor)."""
    factory = txzmq.ZmqFactory()
    server, sender = startServerSide(factory, spec)
    probe = partial(server.publish, b"", PROBE) if isinstance(server, _Pub) else None
    return ServerSide(_endpoint(server), sender.start if sender else None, probe, factory.shutdown)


async def _run(reactor: Any, spec: Spec) -> Measurement:
    # txZMQ's factory and connections use the global reactor, which is ``reactor`` here.
    factory = txzmq.ZmqFactory()
    peer: PeerProcess | None = None
    stall = StallMonitor(reactor)
    sender: BurstSender | None = None
    probes: LoopingCall | None = None

    def stopProbes() -> None:
        if probes is not None and probes.running:
            probes.stop()

    try:
        if spec.mode == "subprocess":
            peer = PeerProcess(spec)
            address = peer.endpoint
        else:
            server, sender = startServerSide(factory, spec)
            address = _endpoint(server)
            if isinstance(server, _Pub):
                probes = startProbes(reactor, partial(server.publish, b"", PROBE))

        def go() -> None:
            if peer is not None:
                peer.go()
            elif sender is not None:
                stopProbes()
                sender.start()

        latencies: list[float] | None = None
        if spec.kind in ("sequential", "pipelined"):
            client = _Requester(factory)
            _connect(client, address)
            for _ in range(WARM_UP):
                await client.sendMsg(b"warm-up", timeout=CONNECT_TIMEOUT)
            stall.start()
            started = perf_counter()
            completed, latencies, timedOut = await requestLoop(
                reactor, client.sendMsg, spec, partial(_abandonRequests, client), CancelledError
            )
            elapsed = perf_counter() - started
        else:
            counter = Counter(spec.count)
            if spec.kind == "push_pull":
                receiver = _CountingPull(factory)
                receiver.counter = counter
                _connect(receiver, address)
            else:
                subscriber = _CountingSub(factory)
                subscriber.counter = counter
                subscriber.probed = Deferred()
                subscriber.subscribe(DATA)
                # The publisher (here or in the peer) publishes probes until told to go.
                subscriber.subscribe(PROBE)
                subscriber.addEndpoints(
                    [txzmq.ZmqEndpoint(txzmq.ZmqEndpointType.connect, address)]
                )
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
        stopProbes()
        if sender is not None:
            sender.stopProducing()
        if peer is not None:
            peer.kill()
        factory.shutdown()


def measure(spec: Spec) -> Measurement:
    """Run one txZMQ measurement on this process's (default) reactor."""
    return runOnReactor(_run, spec)
