"""
ZmqStreamConnection: raw TCP peers through a STREAM socket, against Twisted's own TCP
protocols on the same reactor and against the ``socket`` module.
"""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from tests.peers import inThread
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqStreamConnection, ZmqUnroutableError

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect
TIMEOUT = 10


class Recording(ZmqStreamConnection):
    """A STREAM socket putting ``(event, peerId, data)`` in a queue, one per callback."""

    def __init__(self, *args, **kwargs):
        self.events: DeferredQueue[tuple[str, bytes, bytes]] = DeferredQueue()
        super().__init__(*args, **kwargs)

    def peerConnected(self, peerId):
        self.events.put(("connected", peerId, b""))

    def dataReceived(self, peerId, data):
        self.events.put(("data", peerId, data))

    def peerDisconnected(self, peerId):
        self.events.put(("disconnected", peerId, b""))

    async def next(self) -> tuple[str, bytes, bytes]:
        return await self.events.get().addTimeout(TIMEOUT, reactor)

    async def dataFrom(self, peerId: bytes, size: int) -> bytes:
        """``size`` bytes from the peer, however TCP chunks them."""
        received = b""
        while len(received) < size:
            event, sender, data = await self.next()
            assert (event, sender) == ("data", peerId)
            received += data
        return received


class TwistedPeer(Protocol):
    """A plain Twisted TCP protocol collecting what it receives."""

    def __init__(self):
        self.received = b""
        self.lost: Deferred[None] = Deferred()
        self.waiting: tuple[int, Deferred[bytes]] | None = None

    def dataReceived(self, data):
        self.received += data
        if self.waiting is not None and len(self.received) >= self.waiting[0]:
            waiting, self.waiting = self.waiting[1], None
            waiting.callback(self.received)

    def connectionLost(self, reason):
        self.lost.callback(None)

    def receivedAtLeast(self, size: int) -> Deferred[bytes]:
        if len(self.received) >= size:
            return Deferred.fromCoroutine(_value(self.received))
        done: Deferred[bytes] = Deferred()
        self.waiting = (size, done)
        return done.addTimeout(TIMEOUT, reactor)


async def _value(value):
    return value


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


@pytest_twisted.ensureDeferred
async def test_twisted_tcp_client_talks_to_a_bound_stream(zmq_factory):
    server = Recording(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    client = TwistedPeer()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", _port(server.lastEndpoint))
    await connectProtocol(endpoint, client)
    event, peerId, _ = await server.next()
    assert event == "connected" and server.peers == {peerId}
    client.transport.write(b"hello stream")
    assert await server.dataFrom(peerId, 12) == b"hello stream"
    server.sendData(peerId, b"hello tcp")
    assert await client.receivedAtLeast(9) == b"hello tcp"
    client.transport.loseConnection()
    assert await server.next() == ("disconnected", peerId, b"")
    assert server.peers == set()
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_close_peer_ends_the_tcp_connection_after_the_data_sent(zmq_factory):
    server = Recording(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    client = TwistedPeer()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", _port(server.lastEndpoint))
    await connectProtocol(endpoint, client)
    _, peerId, _ = await server.next()
    server.sendData(peerId, b"last words")
    server.closePeer(peerId)
    await client.lost.addTimeout(TIMEOUT, reactor)
    assert client.received == b"last words"
    assert await server.next() == ("disconnected", peerId, b"")
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_empty_data_sends_nothing_and_keeps_the_peer(zmq_factory):
    server = Recording(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    client = TwistedPeer()
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", _port(server.lastEndpoint))
    await connectProtocol(endpoint, client)
    _, peerId, _ = await server.next()
    server.sendData(peerId, b"")
    server.sendData(peerId, b"still open")
    assert await client.receivedAtLeast(10) == b"still open"
    assert not client.lost.called
    client.transport.loseConnection()
    await client.lost
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_stream_connects_out_to_a_twisted_tcp_server(zmq_factory):
    accepted: DeferredQueue[TwistedPeer] = DeferredQueue()

    class Accepting(Factory):
        def buildProtocol(self, addr):
            protocol = TwistedPeer()
            accepted.put(protocol)
            return protocol

    listening = reactor.listenTCP(0, Accepting(), interface="127.0.0.1")
    try:
        address = f"tcp://127.0.0.1:{listening.getHost().port}"
        client = Recording(zmq_factory, ZmqEndpoint(connect, address))
        event, peerId, _ = await client.next()
        assert event == "connected"
        server = await accepted.get().addTimeout(TIMEOUT, reactor)
        client.sendData(peerId, b"GET / HTTP/1.0\r\n\r\n")
        assert await server.receivedAtLeast(18) == b"GET / HTTP/1.0\r\n\r\n"
        server.transport.write(b"HTTP/1.0 200 OK\r\n\r\n")
        assert await client.dataFrom(peerId, 19) == b"HTTP/1.0 200 OK\r\n\r\n"
        server.transport.loseConnection()
        assert await client.next() == ("disconnected", peerId, b"")
        client.shutdown()
    finally:
        await listening.stopListening()


def _blockingExchange(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as peer:
        peer.sendall(b"ping\n")
        received = b""
        while not received.endswith(b"\n"):
            chunk = peer.recv(100)
            if not chunk:
                break
            received += chunk
        return received


@pytest_twisted.ensureDeferred
async def test_socket_module_client_gets_an_answer(zmq_factory):
    class Answering(ZmqStreamConnection):
        def dataReceived(self, peerId, data):
            self.sendData(peerId, b"pong to " + data)

    server = Answering(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    assert await inThread(_blockingExchange, _port(server.lastEndpoint)) == b"pong to ping\n"
    server.shutdown()


def test_sending_to_an_unknown_peer_is_unroutable(zmq_factory):
    server = Recording(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    with pytest.raises(ZmqUnroutableError):
        server.sendData(b"\x00nobody", b"data")
    server.shutdown()


class Tight(Recording):
    highWaterMark = 10

    def applySocketOptions(self):
        super().applySocketOptions()
        self.socket.set(zmq.SNDBUF, 4096)  # the kernel absorbs little of a stuck peer's data


@pytest_twisted.ensureDeferred
async def test_peer_that_never_reads_does_not_hold_back_another(zmq_factory):
    server = Tight(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    port = _port(server.lastEndpoint)
    with socket.socket() as never:
        never.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        never.connect(("127.0.0.1", port))
        _, stuck, _ = await server.next()
        chunk = b"x" * 65536
        # Until libzmq refuses this peer and messages wait in the connection's queue
        # (after the small kernel buffers and the high-water mark); bounded at 64 MB.
        for _ in range(1000):
            server.sendData(stuck, chunk)
            if server.sendQueueLength:
                break
        assert server.sendQueueLength
        other = TwistedPeer()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), other)
        _, otherId, _ = await server.next()
        server.sendData(otherId, b"not queued behind the stuck peer")
        assert await other.receivedAtLeast(32) == b"not queued behind the stuck peer"
        other.transport.loseConnection()
        await other.lost
    server.shutdown()
