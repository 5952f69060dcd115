"""
``maxMessageSize`` (``ZMQ_MAXMSGSIZE``): a peer that sends a frame bigger than the limit is
disconnected by libzmq, and the message never reaches the application. The connection
itself survives: it serves that peer again once the peer has reconnected, and every other
peer all along. The limit bounds each frame, not the whole message, and applies to the
network transports (tcp, ipc), not to inproc.

The offending peer is a blocking pyzmq socket run in a thread, watching its own socket
events: it sends the oversized message, waits until it has been disconnected and has
reconnected, then sends a good one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from zmq.utils.monitor import recv_monitor_message

from tests.peers import PEER_TIMEOUT_MS, blockingSocket, inThread
from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqPullConnection,
    ZmqREPConnection,
    ZmqREQConnection,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect

LIMIT = 1024
"""Bytes: the servers' maxMessageSize."""
WAIT = 10.0
"""Seconds an expected event or message may take: a broken test fails instead of hanging."""

pytestmark = pytest.mark.timeout(30)


class Received:
    """What the application was handed, and a wait for a given message."""

    def __init__(self) -> None:
        self.messages: list[list[bytes]] = []
        self._waiters: list[tuple[bytes, Deferred[None]]] = []

    def add(self, message: list[bytes]) -> None:
        self.messages.append(message)
        for marker, waiter in list(self._waiters):
            if marker in message:
                self._waiters.remove((marker, waiter))
                # Resume the test on the next turn, outside the connection's callback.
                reactor.callLater(0, waiter.callback, None)

    def waitFor(self, marker: bytes) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._waiters.append((marker, waiter))
        return waiter.addTimeout(WAIT, reactor)


class LimitedPull(ZmqPullConnection):
    maxMessageSize = LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.received = Received()
        super().__init__(*args, **kwargs)

    def onPull(self, message: list[bytes]) -> None:
        self.received.add(message)


class LimitedEcho(ZmqREPConnection):
    maxMessageSize = LIMIT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.received = Received()
        super().__init__(*args, **kwargs)

    def handleRequest(self, *parts: bytes) -> list[bytes]:
        self.received.add(list(parts))
        return [b"echo", *parts]


class Peer:
    """A blocking pyzmq socket and the monitor socket watching it."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.events = socket.get_monitor_socket(
            zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED
        )
        self.events.setsockopt(zmq.RCVTIMEO, PEER_TIMEOUT_MS)

    def awaitOwnEvent(self, event: int) -> None:
        """In the peer's thread: read its socket events until ``event`` comes."""
        while recv_monitor_message(self.events)["event"] != event:
            pass

    def sendOversizedThenReconnect(self, oversized: list[bytes]) -> None:
        """In the peer's thread: send ``oversized``, wait until dropped and reconnected."""
        self.socket.send_multipart(oversized)
        self.awaitOwnEvent(zmq.EVENT_DISCONNECTED)
        self.awaitOwnEvent(zmq.EVENT_HANDSHAKE_SUCCEEDED)

    def close(self) -> None:
        self.socket.disable_monitor()
        self.events.close(linger=0)
        self.socket.close(linger=0)


@pytest.fixture
def peers(zmq_factory: ZmqFactory) -> Iterator[Any]:
    """
    ``peers(socketType, address)``: a :class:`Peer` connected to ``address`` (its monitor
    started first); all closed after the test, before the factory terminates the context.
    """
    made: list[Peer] = []

    def make(socketType: int, address: str) -> Peer:
        peer = Peer(blockingSocket(zmq_factory.context, socketType))
        made.append(peer)
        peer.socket.connect(address)
        return peer

    yield make
    for peer in made:
        peer.close()


def oversized() -> list[bytes]:
    return [b"x" * (LIMIT + 1)]


@pytest_twisted.ensureDeferred
async def test_pull_drops_a_peer_sending_an_oversized_message_and_serves_it_after(
    zmq_factory, loggedFailures, peers
):
    pull = LimitedPull(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    offender = peers(zmq.PUSH, pull.lastEndpoint)
    bystander = peers(zmq.PUSH, pull.lastEndpoint)
    for peer, hello in ((offender, b"offender hello"), (bystander, b"bystander hello")):
        peer.socket.send(hello)
        await pull.received.waitFor(hello)
    serverSaw = pull.monitor(zmq.EVENT_DISCONNECTED).waitFor(zmq.EVENT_DISCONNECTED, WAIT)

    await gather(inThread(offender.sendOversizedThenReconnect, oversized()), serverSaw)
    bystander.socket.send(b"bystander after")
    await pull.received.waitFor(b"bystander after")
    offender.socket.send(b"offender after")
    await pull.received.waitFor(b"offender after")

    assert pull.received.messages == [
        [b"offender hello"],
        [b"bystander hello"],
        [b"bystander after"],
        [b"offender after"],
    ]
    assert not pull.closed
    assert loggedFailures == []
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_rep_drops_a_peer_sending_an_oversized_request_and_answers_it_after(
    zmq_factory, loggedFailures, peers
):
    server = LimitedEcho(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    offender = peers(zmq.DEALER, server.lastEndpoint)
    offender.socket.send_multipart([b"", b"offender hello"])
    await server.received.waitFor(b"offender hello")
    assert offender.socket.recv_multipart() == [b"", b"echo", b"offender hello"]
    bystander = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, server.lastEndpoint))
    assert await bystander.sendMsg(b"bystander hello", timeout=WAIT) == [
        b"echo",
        b"bystander hello",
    ]
    serverSaw = server.monitor(zmq.EVENT_DISCONNECTED).waitFor(zmq.EVENT_DISCONNECTED, WAIT)

    await gather(inThread(offender.sendOversizedThenReconnect, [b"", *oversized()]), serverSaw)
    assert await bystander.sendMsg(b"bystander after", timeout=WAIT) == [
        b"echo",
        b"bystander after",
    ]
    offender.socket.send_multipart([b"", b"offender after"])
    await server.received.waitFor(b"offender after")
    assert offender.socket.recv_multipart() == [b"", b"echo", b"offender after"]

    assert server.received.messages == [
        [b"offender hello"],
        [b"bystander hello"],
        [b"bystander after"],
        [b"offender after"],
    ]
    assert server.pendingRequests == 0
    assert loggedFailures == []
    bystander.shutdown()
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_max_message_size_bounds_each_frame_not_the_whole_message(zmq_factory, peers):
    pull = LimitedPull(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    peer = peers(zmq.PUSH, pull.lastEndpoint)
    # Three frames at the limit: 3 KiB in all, and still delivered.
    message = [b"a" * LIMIT, b"b" * LIMIT, b"c" * (LIMIT - 1) + b"!"]
    peer.socket.send_multipart(message)
    await pull.received.waitFor(message[-1])
    assert pull.received.messages == [message]
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_max_message_size_does_not_apply_to_inproc(zmq_factory, zmq_address, peers):
    pull = LimitedPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    peer = peers(zmq.PUSH, pull.lastEndpoint)
    # No wire, no decoder: libzmq hands the message over as it is.
    message = [b"x" * (10 * LIMIT)]
    peer.socket.send_multipart(message)
    await pull.received.waitFor(message[0])
    assert pull.received.messages == [message]
    pull.shutdown()


async def gather(*deferreds: Deferred[Any]) -> None:
    for deferred in deferreds:
        await deferred
