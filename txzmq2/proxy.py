"""
Devices on the reactor: a proxy between two connections (queue, forwarder, streamer) and a
load-balancing broker.

Flow control is Twisted's producer/consumer pairing: each side is registered as the producer
of the other, so when one side's outbound queue backs up, reading from the other pauses and
libzmq's own queues push back on the senders.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable

import zmq
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from txzmq2._logging import RateLimitedLogger
from txzmq2.connection import Message, ZmqConnection
from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqConnectionClosed, ZmqUnroutableError
from txzmq2.factory import ZmqFactory
from txzmq2.routerdealer import ZmqRouterConnection

__all__ = ["ZmqLoadBalancingBroker", "ZmqProxy"]


# Sending socket type -> receiving socket types it can forward to, per device.
_PAIRINGS: dict[tuple[int, int], str] = {
    (zmq.ROUTER, zmq.DEALER): "queue",
    (zmq.XSUB, zmq.XPUB): "forwarder",
    (zmq.PULL, zmq.PUSH): "streamer",
}


class ZmqProxy:
    """
    Forward whole messages between two connections, as ``zmq_proxy`` does, on the reactor.

    - ROUTER frontend, DEALER backend: a request-reply queue (both ways).
    - XSUB frontend, XPUB backend: a pub-sub forwarder (publications forward,
      subscriptions back).
    - PULL frontend, PUSH backend: a pipeline streamer (forward only).

    The proxy takes over the two connections' deliveries (it sets their ``receiver``; their
    own ``messageReceived`` is no longer called) and shuts down with either of them, closing
    the capture connection if it made it.

    :param factory: the factory of the connections (and of a capture endpoint).
    :param frontend: the connection facing clients (ROUTER, XSUB or PULL).
    :param backend: the connection facing servers (DEALER, XPUB or PUSH).
    :param capture: a connection, or an endpoint (bound or connected as a PUSH), that
        receives a copy of every message forwarded either way. A connection given here is
        never closed by the proxy; one it makes from an endpoint closes with it.
    :raises ValueError: for a pair of socket types that is not one of the above.
    :raises RuntimeError: when either connection already has a producer (it is in another
        proxy, say); the connections are left as they were.
    :raises zmq.ZMQError: when the capture endpoint cannot be bound or connected.
    """

    _log = RateLimitedLogger()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.frontend!r} -> {self.backend!r}>"

    def __init__(
        self,
        factory: ZmqFactory,
        frontend: ZmqConnection,
        backend: ZmqConnection,
        capture: ZmqConnection | ZmqEndpoint | None = None,
    ) -> None:
        kind = _PAIRINGS.get((frontend.socketType, backend.socketType))
        if kind is None:
            raise ValueError(
                f"cannot proxy {type(frontend).__name__} -> {type(backend).__name__}: use a "
                "ROUTER/DEALER, XSUB/XPUB or PULL/PUSH pair"
            )
        self.kind = kind
        self.factory = factory
        self.frontend = frontend
        self.backend = backend
        # Only a capture the proxy made is the proxy's to close; one given to it is the
        # caller's, who may use it after the proxy (or share it between proxies).
        self._ownCapture: ZmqConnection | None = None
        if isinstance(capture, ZmqConnection) or capture is None:
            self.capture = capture
        else:
            from txzmq2.pushpull import ZmqPushConnection

            self.capture = self._ownCapture = ZmqPushConnection(factory, capture)
        self.forwarded = 0
        """Messages forwarded so far, both ways."""
        self.captureDropped = 0
        """Copies not captured because the capture connection was backed up."""
        # When the backend's outbound queue backs up, stop reading the frontend, and back;
        # nothing flows back to a PULL frontend. Either side's end ends the proxy.
        registered: list[ZmqConnection] = []
        try:
            backend.registerProducer(_Side(self, frontend), True)
            registered.append(backend)
            frontend.registerProducer(_Side(self, None if kind == "streamer" else backend), True)
        except BaseException:
            # A side that already has a producer: leave both sides as they were.
            for connection in registered:
                connection.unregisterProducer()
            if self._ownCapture is not None:
                self._ownCapture.shutdown()
            raise
        # Deliveries go straight to the other side through the connections' receiver seam;
        # their own messageReceived is bypassed.
        frontend.receiver = self._fromFrontend
        backend.receiver = self._fromBackend

    def _fromFrontend(self, message: Message) -> None:
        self._forward(message, self.backend)

    def _fromBackend(self, message: Message) -> None:
        self._forward(message, self.frontend)

    def _forward(self, message: Message, to: ZmqConnection) -> None:
        capture = self.capture
        if capture is not None and not capture.closed:
            # A capture nobody reads must not hold the proxy's memory: beyond its queue
            # bound, copies are dropped (counted in captureDropped).
            if capture.sendQueueLength >= capture.sendQueueHighWater:
                self.captureDropped += 1
            else:
                try:
                    capture.send(message)
                except Exception:
                    self._log.failure("{proxy}: capture failed", proxy=self)
        self.forwarded += 1
        to.send(message)

    def shutdown(self) -> None:
        """
        Shut down both connections and the capture connection the proxy made from an
        endpoint. A capture connection given to the proxy stays open: it is the caller's.
        """
        for connection in (self.frontend, self.backend, self._ownCapture):
            if connection is not None:
                connection.shutdown()


@implementer(IPushProducer)
class _Side:
    """
    The producer the proxy registers with one of its connections: ``feeding``, the
    connection whose messages it forwards there (paused while its outbound queue is backed
    up; ``None`` when nothing is forwarded to it), and the proxy, which ends with it.
    """

    def __init__(self, proxy: ZmqProxy, feeding: ZmqConnection | None) -> None:
        self.proxy = proxy
        self.feeding = feeding

    def pauseProducing(self) -> None:
        if self.feeding is not None:
            self.feeding.pauseProducing()

    def resumeProducing(self) -> None:
        if self.feeding is not None:
            self.feeding.resumeProducing()

    def stopProducing(self) -> None:
        self.proxy.shutdown()


def _packEnvelope(frames: list[bytes]) -> bytes:
    """Encode a routing envelope (any number of frames) as one opaque frame."""
    return b"".join(struct.pack(">I", len(frame)) + frame for frame in frames)


def _unpackEnvelope(packed: bytes) -> list[bytes] | None:
    """Decode :func:`_packEnvelope`'s frame; ``None`` when it is not one."""
    frames = []
    offset = 0
    while offset < len(packed):
        if offset + 4 > len(packed):
            return None
        (length,) = struct.unpack_from(">I", packed, offset)
        offset += 4
        if offset + length > len(packed):
            return None
        frames.append(packed[offset : offset + length])
        offset += length
    return frames or None


class _BrokerSide(ZmqRouterConnection):
    routerMandatory = True

    def __init__(self, broker: ZmqLoadBalancingBroker, endpoints: Iterable[ZmqEndpoint]) -> None:
        self.broker = broker
        super().__init__(broker.factory)
        try:
            self.addEndpoints(endpoints)
        except BaseException:
            # Nobody gets a reference to this connection: it must not stay open and
            # registered with the factory.
            self.shutdown()
            raise

    def messageReceived(self, message: Message) -> None:
        try:
            delimiter = message.index(b"", 1)
        except ValueError:
            self._log.warn("{connection}: dropped a message without envelope", connection=self)
            return
        self.gotEnvelope(message[:delimiter], message[delimiter + 1 :])

    def gotEnvelope(self, envelope: list[bytes], body: list[bytes]) -> None:
        raise NotImplementedError


class _Frontend(_BrokerSide):
    def gotEnvelope(self, envelope: list[bytes], body: list[bytes]) -> None:
        self.broker._clientRequest(envelope, body)


class _Backend(_BrokerSide):
    def gotEnvelope(self, envelope: list[bytes], body: list[bytes]) -> None:
        self.broker._workerMessage(envelope, body)


class ZmqLoadBalancingBroker:
    """
    The load-balancing broker of the ZeroMQ Guide: clients send requests to ``frontend``,
    workers connect to ``backend``, and each request goes to the least recently used ready
    worker.

    Workers are REQ-like: a worker announces itself by sending any one-frame message (say
    ``b"READY"``); from then on it receives requests as ``[client, b"", *request]`` and
    answers with ``[client, b"", *reply]``, which also makes it ready again. ``client`` is
    one opaque frame (the client's whole envelope, packed) that the worker returns untouched.
    Clients are REQ, :class:`~txzmq2.ZmqREQConnection`, or DEALER peers framing requests as
    ``[b"", *request]``.

    While no worker is ready the broker stops reading from clients, so requests wait in
    libzmq's queues (and clients' own ones) rather than in the broker, which holds at most
    the one request it read last.

    :param factory: the factory to create the two ROUTER connections with.
    :param frontend: endpoint(s) for clients.
    :param backend: endpoint(s) for workers.
    :raises zmq.ZMQError: when an endpoint cannot be bound or connected; whatever the
        broker had opened by then is closed.
    """

    _log = RateLimitedLogger()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.frontend!r} -> {self.backend!r}>"

    def __init__(
        self,
        factory: ZmqFactory,
        frontend: ZmqEndpoint | Iterable[ZmqEndpoint],
        backend: ZmqEndpoint | Iterable[ZmqEndpoint],
    ) -> None:
        self.factory = factory
        self._ready: deque[list[bytes]] = deque()
        self._waiting: deque[tuple[list[bytes], list[bytes]]] = deque()
        self.frontend = _Frontend(self, _endpoints(frontend))
        try:
            self.backend = _Backend(self, _endpoints(backend))
        except BaseException:
            self.frontend.shutdown()
            raise
        # Nothing to do with requests until a worker is ready.
        self.frontend.pauseProducing()

    @property
    def readyWorkers(self) -> int:
        """Workers waiting for a request."""
        return len(self._ready)

    def _clientRequest(self, client: list[bytes], request: list[bytes]) -> None:
        self._waiting.append((client, request))
        self._dispatch()

    def _dispatch(self) -> None:
        """Give waiting requests to ready workers, least recently used first."""
        while self._waiting and self._ready:
            worker = self._ready.popleft()
            client, request = self._waiting[0]
            try:
                self.backend.send([*worker, b"", _packEnvelope(client), b"", *request])
            except ZmqUnroutableError:
                continue  # that worker went away; the request waits for the next one
            self._waiting.popleft()
        # Read more requests only while a worker can take one.
        if self._ready and not self._waiting:
            self.frontend.resumeProducing()
        else:
            self.frontend.pauseProducing()

    def _workerMessage(self, worker: list[bytes], body: list[bytes]) -> None:
        # A worker is ready once, however many READYs it sends (or after a restart with
        # the same identity): it must never get two requests at a time.
        if worker not in self._ready:
            self._ready.append(worker)
        if len(body) >= 3 and body[1] == b"":
            client = _unpackEnvelope(body[0])
            if client is None:
                self._log.warn("{broker}: a worker's reply has a bad client frame", broker=self)
            else:
                try:
                    self.frontend.send([*client, b"", *body[2:]])
                except (ZmqUnroutableError, ZmqConnectionClosed):
                    self._log.debug("{broker}: client gone; reply dropped", broker=self)
        elif len(body) != 1:
            self._log.warn("{broker}: unexpected worker message shape; ignored", broker=self)
        self._dispatch()

    def shutdown(self) -> None:
        """Shut down both ROUTER connections."""
        self.frontend.shutdown()
        self.backend.shutdown()


def _endpoints(value: ZmqEndpoint | Iterable[ZmqEndpoint]) -> list[ZmqEndpoint]:
    if isinstance(value, ZmqEndpoint):
        return [value]
    return list(value)
