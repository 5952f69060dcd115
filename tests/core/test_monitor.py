"""
Socket events: ``whenConnected`` fires once a peer has completed the ZeroMQ handshake, and
``monitor`` views deliver parsed events (listening, accepted, connected, disconnected,
handshake failures) to callbacks and ``waitFor`` Deferreds, on the reactor.

Peers are txzmq2 connections or plain pyzmq sockets that the test thread only binds,
connects, sends on without blocking, and closes. Every wait is on a Deferred.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, gatherResults
from twisted.logger import globalLogPublisher

from txzmq2 import (
    ZmqConnectionClosed,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqRouterConnection,
)
from txzmq2.errors import ZmqTimeoutError
from txzmq2.monitor import HANDSHAKE_FAILURES, ZmqMonitorEvent

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect

WAIT = 10.0  # seconds an expected event may take: a broken test fails instead of hanging
SHORT = 0.2  # seconds to wait for an event that must not come
TCP = "tcp://127.0.0.1:*"  # the OS chooses the port; read it back from lastEndpoint


@pytest.fixture
def plain_socket(zmq_factory: ZmqFactory) -> Iterator[Callable[..., Any]]:
    """Makes pyzmq DEALERs (connected to ``address`` if given); closes them after the test."""
    sockets: list[Any] = []

    def make(address: str | None = None) -> Any:
        peer = zmq_factory.context.socket(zmq.DEALER)
        peer.setsockopt(zmq.LINGER, 0)
        sockets.append(peer)
        if address is not None:
            peer.connect(address)
        return peer

    yield make
    for peer in sockets:
        peer.close(linger=0)  # before the factory terminates the context


@pytest.fixture
def dealer(zmq_factory: ZmqFactory) -> Iterator[Callable[[str, str], ZmqDealerConnection]]:
    """
    Makes DEALER connections bound or connected to an address (``dealer(bind, address)``);
    shuts them down after the test.
    """
    connections: list[ZmqDealerConnection] = []

    def make(endpointType: str, address: str) -> ZmqDealerConnection:
        # Watched from creation: a handshake can complete before the test asks.
        connections.append(
            ZmqDealerConnection(zmq_factory, ZmqEndpoint(endpointType, address), monitored=True)
        )
        return connections[-1]

    yield make
    for connection in connections:
        connection.shutdown()


@pytest.fixture
def server(dealer: Callable[[str, str], ZmqDealerConnection]) -> ZmqDealerConnection:
    """The connection under test: a DEALER bound to a tcp port."""
    return dealer(bind, TCP)


def timers() -> list[Any]:
    """Active delayed calls due later than now (a pass scheduled with callLater(0) is not)."""
    now = reactor.seconds()
    return [call for call in reactor.getDelayedCalls() if call.active() and call.getTime() > now]


# -- whenConnected ---------------------------------------------------------------------------


@pytest.mark.parametrize("side", ["binding", "connecting"])
@pytest.mark.parametrize("peerKind", ["txzmq2", "pyzmq"])
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
@pytest_twisted.ensureDeferred
async def test_whenConnected_fires_with_handshake_succeeded_once_a_peer_connects(
    dealer, zmq_address, plain_socket, transport, peerKind, side
):
    def openPeer(endpointType: str, address: str) -> str:
        if peerKind == "txzmq2":
            return dealer(endpointType, address).lastEndpoint
        peer = plain_socket()
        (peer.bind if endpointType == bind else peer.connect)(address)
        return peer.getsockopt_string(zmq.LAST_ENDPOINT)

    if side == "binding":
        connection = dealer(bind, zmq_address(transport))
        openPeer(connect, connection.lastEndpoint)
    else:
        connection = dealer(connect, openPeer(bind, zmq_address(transport)))
    event = await connection.whenConnected(timeout=WAIT)
    assert event.event == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert event.endpoint.startswith(f"{transport}://")


@pytest_twisted.ensureDeferred
async def test_whenConnected_fires_at_once_when_a_peer_is_already_connected(server, plain_socket):
    plain_socket(server.lastEndpoint)
    first = await server.whenConnected(timeout=WAIT)
    again, withTimeout = server.whenConnected(), server.whenConnected(timeout=WAIT)
    assert again.called and withTimeout.called
    assert [await again, await withTimeout] == [first, first]
    assert timers() == []


@pytest_twisted.ensureDeferred
async def test_whenConnected_waits_again_once_the_only_peer_has_left(server, plain_socket):
    peer = plain_socket(server.lastEndpoint)
    await server.whenConnected(timeout=WAIT)
    events = server.monitor(zmq.EVENT_DISCONNECTED)
    peer.close(linger=0)
    await events.waitFor(zmq.EVENT_DISCONNECTED, timeout=WAIT)
    with pytest.raises(ZmqTimeoutError):
        await server.whenConnected(timeout=SHORT)


@pytest_twisted.ensureDeferred
async def test_whenConnected_without_a_peer_times_out_and_leaves_no_timer(server):
    with pytest.raises(ZmqTimeoutError):
        await server.whenConnected(timeout=SHORT)
    assert timers() == []


@pytest_twisted.ensureDeferred
async def test_whenConnected_pending_at_shutdown_fails_with_connection_closed(server):
    pending = server.whenConnected(timeout=WAIT)
    server.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        await pending
    assert timers() == []


def test_whenConnected_and_monitor_after_shutdown_raise_connection_closed(server):
    server.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        server.whenConnected()
    with pytest.raises(ZmqConnectionClosed):
        server.monitor()


def test_connection_that_never_asks_for_events_costs_no_monitor_socket(zmq_factory):
    connection = ZmqDealerConnection(zmq_factory)
    assert connection._events is None
    assert connection.everConnected is None
    connection.shutdown()


@pytest_twisted.ensureDeferred
async def test_whenConnected_asked_before_the_first_connect_sees_the_handshake(
    zmq_factory, plain_socket
):
    connection = ZmqDealerConnection(zmq_factory)
    handshake = connection.whenConnected(timeout=WAIT)
    assert connection.everConnected is False
    peer = plain_socket()
    peer.bind("tcp://127.0.0.1:*")
    connection.addEndpoints([ZmqEndpoint(connect, peer.getsockopt_string(zmq.LAST_ENDPOINT))])
    assert (await handshake).event == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert connection.everConnected is True
    connection.shutdown()


@pytest_twisted.ensureDeferred
async def test_inproc_peers_produce_no_handshake_event(zmq_factory, zmq_address, dealer):
    """The documented limitation: libzmq reports no events for inproc connections."""
    received: Deferred[tuple[bytes, ...]] = Deferred()

    class Server(ZmqDealerConnection):
        def gotMessage(self, *frames: bytes) -> None:
            received.callback(frames)

    server = Server(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    dealer(connect, server.lastEndpoint).sendMsg(b"here I am")
    assert await received.addTimeout(WAIT, reactor) == (b"here I am",)
    with pytest.raises(ZmqTimeoutError):
        await server.whenConnected(timeout=SHORT)
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_whenConnected_still_fires_at_once_after_another_peer_failed_its_handshake(
    server, plain_socket
):
    events = server.monitor(zmq.EVENT_DISCONNECTED)
    plain_socket(server.lastEndpoint)
    await server.whenConnected(timeout=WAIT)
    host, port = server.lastEndpoint.removeprefix("tcp://").rsplit(":", 1)
    socket.create_connection((host, int(port))).close()  # no ZeroMQ greeting: fails
    await events.waitFor(zmq.EVENT_DISCONNECTED, timeout=WAIT)
    again = server.whenConnected()
    again.addErrback(lambda failure: None)  # left pending by the bug, until shutdown
    assert again.called, "the first peer is still connected"


# -- monitor ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_monitor_reports_listening_on_bind_to_callback_and_waitFor(zmq_factory):
    server = ZmqDealerConnection(zmq_factory)
    seen: list[ZmqMonitorEvent] = []
    events = server.monitor(zmq.EVENT_LISTENING, seen.append)
    listening = events.waitFor(zmq.EVENT_LISTENING, timeout=WAIT)
    server.addEndpoints([ZmqEndpoint(bind, TCP)])
    event = await listening
    assert event.event == zmq.EVENT_LISTENING
    assert event.endpoint == server.lastEndpoint
    assert seen == [event]
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_monitor_reports_accepted_on_the_binding_side_and_connected_on_the_other(
    zmq_factory, server
):
    accepted = server.monitor(zmq.EVENT_ACCEPTED).waitFor(zmq.EVENT_ACCEPTED, timeout=WAIT)
    client = ZmqDealerConnection(zmq_factory)
    connected = client.monitor(zmq.EVENT_CONNECTED).waitFor(zmq.EVENT_CONNECTED, timeout=WAIT)
    client.addEndpoints([ZmqEndpoint(connect, server.lastEndpoint)])
    assert (await accepted).endpoint == server.lastEndpoint
    assert (await connected).endpoint == server.lastEndpoint
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_monitor_reports_disconnected_when_the_peer_closes(server, plain_socket):
    events = server.monitor()
    peer = plain_socket(server.lastEndpoint)
    await server.whenConnected(timeout=WAIT)
    peer.close(linger=0)
    event = await events.waitFor(zmq.EVENT_DISCONNECTED, timeout=WAIT)
    assert event.endpoint == server.lastEndpoint


@pytest_twisted.ensureDeferred
async def test_events_outside_the_mask_are_not_delivered(server, plain_socket):
    everything: list[ZmqMonitorEvent] = []
    disconnections: list[ZmqMonitorEvent] = []
    server.monitor(callback=everything.append)
    narrow = server.monitor(zmq.EVENT_DISCONNECTED, disconnections.append)
    peer = plain_socket(server.lastEndpoint)
    await server.whenConnected(timeout=WAIT)
    peer.close(linger=0)
    await narrow.waitFor(zmq.EVENT_DISCONNECTED, timeout=WAIT)
    assert {zmq.EVENT_ACCEPTED, zmq.EVENT_HANDSHAKE_SUCCEEDED} <= {e.event for e in everything}
    assert [event.event for event in disconnections] == [zmq.EVENT_DISCONNECTED]


@pytest_twisted.ensureDeferred
async def test_waitFor_times_out_when_no_matching_event_comes(server):
    with pytest.raises(ZmqTimeoutError):
        await server.monitor().waitFor(zmq.EVENT_ACCEPTED, timeout=SHORT)
    assert timers() == []


@pytest_twisted.ensureDeferred
async def test_stop_fails_pending_waitFor_and_stops_callbacks(server, plain_socket):
    seen: list[ZmqMonitorEvent] = []
    events = server.monitor(callback=seen.append)
    pending = events.waitFor(zmq.EVENT_ACCEPTED, timeout=WAIT)
    events.stop()
    events.stop()  # idempotent
    assert events.stopped
    with pytest.raises(ZmqConnectionClosed):
        await pending
    with pytest.raises(ZmqConnectionClosed):
        await events.waitFor(zmq.EVENT_ACCEPTED)
    plain_socket(server.lastEndpoint)
    await server.whenConnected(timeout=WAIT)
    assert seen == []
    assert timers() == []


@pytest_twisted.ensureDeferred
async def test_several_monitors_on_one_connection_each_get_events(server, plain_socket):
    monitors = [server.monitor(zmq.EVENT_HANDSHAKE_SUCCEEDED) for _ in range(3)]
    waiting = [m.waitFor(zmq.EVENT_HANDSHAKE_SUCCEEDED, timeout=WAIT) for m in monitors]
    plain_socket(server.lastEndpoint)
    first, *others = await gatherResults(waiting, consumeErrors=True)
    assert first.event == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert others == [first, first]


@pytest_twisted.ensureDeferred
async def test_monitors_stop_with_their_connection(server):
    monitors = [server.monitor(), server.monitor(zmq.EVENT_ACCEPTED)]
    pending = monitors[1].waitFor(zmq.EVENT_ACCEPTED, timeout=WAIT)
    server.shutdown()
    assert [m.stopped for m in monitors] == [True, True]
    with pytest.raises(ZmqConnectionClosed):
        await pending
    assert timers() == []


@pytest_twisted.ensureDeferred
async def test_callback_error_is_logged_and_later_events_still_arrive(zmq_factory, plain_socket):
    logged: list[dict[str, Any]] = []
    seen: list[int] = []

    def fragile(event: ZmqMonitorEvent) -> None:
        seen.append(event.event)
        if event.event == zmq.EVENT_LISTENING:
            raise RuntimeError("user bug")

    server = ZmqDealerConnection(zmq_factory)
    events = server.monitor(callback=fragile)
    globalLogPublisher.addObserver(logged.append)
    try:
        server.addEndpoints([ZmqEndpoint(bind, TCP)])
        await events.waitFor(zmq.EVENT_LISTENING, timeout=WAIT)
        plain_socket(server.lastEndpoint)
        await events.waitFor(zmq.EVENT_HANDSHAKE_SUCCEEDED, timeout=WAIT)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    failures = [entry["log_failure"] for entry in logged if "log_failure" in entry]
    assert [failure.type for failure in failures] == [RuntimeError]
    assert seen[0] == zmq.EVENT_LISTENING
    assert zmq.EVENT_HANDSHAKE_SUCCEEDED in seen
    server.shutdown()


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq was built without CURVE")
@pytest_twisted.ensureDeferred
async def test_failed_handshake_is_reported_and_delivers_nothing(zmq_factory, plain_socket):
    received: DeferredQueue[tuple[bytes, ...]] = DeferredQueue()

    class Server(ZmqRouterConnection):
        def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
            received.put(frames)

    serverPublic, serverSecret = zmq.curve_keypair()
    server = Server(zmq_factory)
    # CURVE options only apply to connections made after they are set: before the bind.
    server.socket.setsockopt(zmq.CURVE_SERVER, 1)
    server.socket.setsockopt(zmq.CURVE_SECRETKEY, serverSecret)
    failures = server.monitor(HANDSHAKE_FAILURES)
    connected = server.whenConnected(timeout=WAIT)
    server.addEndpoints([ZmqEndpoint(bind, TCP)])

    stranger = plain_socket(server.lastEndpoint)  # NULL mechanism: the server refuses it
    stranger.send(b"from a stranger", zmq.NOBLOCK)
    refused = await failures.waitFor(HANDSHAKE_FAILURES, timeout=WAIT)
    assert refused.event & HANDSHAKE_FAILURES  # FAILED_PROTOCOL: ZMTP mechanism mismatch
    assert not connected.called

    # A client with the server's key gets through, and only its message is delivered.
    friend = plain_socket()
    friend.curve_serverkey = serverPublic
    friend.curve_publickey, friend.curve_secretkey = zmq.curve_keypair()
    friend.connect(server.lastEndpoint)
    friend.send(b"from a friend", zmq.NOBLOCK)
    assert (await connected).event == zmq.EVENT_HANDSHAKE_SUCCEEDED
    assert await received.get().addTimeout(WAIT, reactor) == (b"from a friend",)
    assert received.pending == []
    server.shutdown()
