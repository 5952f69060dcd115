"""
Request-reply: ZmqREQConnection keeps many requests outstanding, each ending exactly once
(reply, timeout, cancel or shutdown); ZmqREPConnection answers each request by its envelope.

Peers are txzmq2 connections, or blocking pyzmq sockets in a thread where the test needs
to control the wire exactly (hold a request, answer one copy and not the other, send a
malformed request).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import CancelledError, Deferred, gatherResults, maybeDeferred
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from tests.peers import blockingSocket, inThread
from txzmq2 import (
    ZmqConnection,
    ZmqConnectionClosed,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRequestTimeoutError,
    ZmqUnknownRequestError,
)

Request = tuple[bytes, tuple[bytes, ...]]  # what gotMessage is given: id and frames


class Boom(Exception):
    """Raised by user code under test."""


class Client(ZmqREQConnection):
    """A REQ whose requests give up in the end, so a broken library fails a test, not hangs it."""

    defaultRequestTimeout = 5.0


class Collecting(ZmqREPConnection):
    """A REP that never answers by itself: it keeps each request for the test to answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.requests: list[Request] = []
        self._waiters: list[tuple[int, Deferred[list[Request]]]] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
        self.requests.append((messageId, messageParts))
        self._fireWaiters()

    def received(self, count: int) -> Deferred[list[Request]]:
        """Fires with the first ``count`` requests once that many have arrived."""
        waiter: Deferred[list[Request]] = Deferred()
        self._waiters.append((count, waiter))
        self._fireWaiters()
        return waiter

    def _fireWaiters(self) -> None:
        for count, waiter in list(self._waiters):
            if len(self.requests) >= count:
                self._waiters.remove((count, waiter))
                waiter.callback(self.requests[:count])


class Echo(ZmqREPConnection):
    def handleRequest(self, *messageParts: bytes) -> list[bytes]:
        return list(messageParts)


class Bounded(Collecting):
    """Remembers at most three unanswered requests, and the most it ever held."""

    maxPendingRequests = 3
    peak = 0

    def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
        self.peak = max(self.peak, self.pendingRequests)
        super().gotMessage(messageId, *messageParts)


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def serve(zmq_factory, zmq_address) -> Iterator[Callable[..., tuple[ZmqREQConnection, Any]]]:
    """``serve(serverClass, transport)``: a fresh REP server and a REQ client connected to it,
    both shut down after the test."""
    opened: list[ZmqConnection] = []

    def serve(
        serverClass: type[ZmqREPConnection] = Collecting,
        transport: str = "inproc",
        clientClass: type[ZmqREQConnection] = Client,
    ) -> tuple[ZmqREQConnection, Any]:
        bind = ZmqEndpoint(ZmqEndpointType.bind, zmq_address(transport))
        server = serverClass(zmq_factory, bind)
        connect = ZmqEndpoint(ZmqEndpointType.connect, server.lastEndpoint)
        client = clientClass(zmq_factory, connect)
        opened.extend([client, server])
        return client, server

    yield serve
    for connection in opened:
        connection.shutdown()


@pytest.fixture
def peer(zmq_factory, zmq_address) -> Iterator[Callable[..., tuple[Any, Deferred[Any]]]]:
    """``peer(socketType, script, connectionClass)``: ``script(socket)`` runs in a thread on a
    blocking pyzmq socket bound on inproc; returns a connection to it (shut down after the
    test) and the script's result."""
    opened: list[ZmqConnection] = []

    def start(
        socketType: int, script: Callable[[Any], Any], connectionClass: type[ZmqConnection]
    ) -> tuple[Any, Deferred[Any]]:
        address = zmq_address("inproc")

        def run() -> Any:
            socket = blockingSocket(zmq_factory.context, socketType)
            try:
                socket.bind(address)
                return script(socket)
            finally:
                socket.close()

        done = inThread(run)
        connection = connectionClass(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, address))
        opened.append(connection)
        return connection, done

    yield start
    for connection in opened:
        connection.shutdown()


def failuresIn(events: list[dict[str, Any]]) -> list[Failure]:
    return [event["log_failure"] for event in events if "log_failure" in event]


def eventsSaying(events: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [event for event in events if text in (event.get("log_format") or "")]


def timersLeft() -> list[Any]:
    """Delayed calls still due in the future (a request timer, say); passes due now excluded."""
    from twisted.internet import reactor

    now = reactor.seconds()
    return [call for call in reactor.getDelayedCalls() if call.active() and call.getTime() > now]


async def fails(deferred: Deferred[Any], errorType: type[BaseException]) -> None:
    with pytest.raises(errorType):
        await deferred


async def cancelAll(requests: list[Deferred[Any]]) -> None:
    for request in requests:
        request.cancel()
        await fails(request, CancelledError)


# -- REQ: replies ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_sendMsg_fires_with_the_reply_frames(serve, transport):
    client, _ = serve(Echo, transport)
    reply = await client.sendMsg(b"a", b"", b"c")
    assert reply == [b"a", b"", b"c"]
    assert all(type(frame) is bytes for frame in reply)


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_replies_in_reverse_order_reach_their_own_requests(serve, transport):
    client, server = serve(Collecting, transport)
    requests = [client.sendMsg(b"%d" % number) for number in range(10)]
    for messageId, (number,) in reversed(await server.received(10)):
        server.reply(messageId, b"reply to " + number)
    replies = await gatherResults(requests)
    assert replies == [[b"reply to %d" % number] for number in range(10)]
    assert client.pendingRequests == 0


# -- REQ: timeouts, retries, cancel ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_unanswered_request_times_out_and_leaves_nothing_pending(serve):
    client, _ = serve()
    await fails(client.sendMsg(b"hello?", timeout=0.2), ZmqRequestTimeoutError)
    assert client.pendingRequests == 0
    assert timersLeft() == []


@pytest_twisted.ensureDeferred
async def test_defaultRequestTimeout_applies_when_no_timeout_is_given(serve):
    class Impatient(ZmqREQConnection):
        defaultRequestTimeout = 0.1

    client, _ = serve(clientClass=Impatient)
    await fails(client.sendMsg(b"hello?"), ZmqRequestTimeoutError)


def holdFirstThenAnswerBoth(socket: Any) -> None:
    """ROUTER peer: keep the first request until the second arrives, then answer both."""
    first, second = socket.recv_multipart(), socket.recv_multipart()
    socket.send_multipart([*first[:3], b"late"])
    socket.send_multipart([*second[:3], b"on time"])


@pytest_twisted.ensureDeferred
async def test_reply_to_timed_out_request_is_dropped(peer, logged):
    client, done = peer(zmq.ROUTER, holdFirstThenAnswerBoth, Client)
    await fails(client.sendMsg(b"first", timeout=0.2), ZmqRequestTimeoutError)
    # The late reply arrives first; it must not answer the request sent after it.
    assert await client.sendMsg(b"second") == [b"on time"]
    await done
    assert failuresIn(logged) == []


@pytest_twisted.ensureDeferred
async def test_cancel_fails_with_cancelled_error_and_leaves_nothing_pending(serve):
    client, _ = serve()
    request = client.sendMsg(b"never mind")
    request.cancel()
    await fails(request, CancelledError)
    assert client.pendingRequests == 0
    assert timersLeft() == []


@pytest_twisted.ensureDeferred
async def test_reply_to_cancelled_request_is_dropped(peer, logged):
    client, done = peer(zmq.ROUTER, holdFirstThenAnswerBoth, Client)
    await cancelAll([client.sendMsg(b"first")])
    assert await client.sendMsg(b"second") == [b"on time"]
    await done
    assert failuresIn(logged) == []


def answerSecondCopyTwice(socket: Any) -> list[list[bytes]]:
    """ROUTER peer: ignore a request, answer its retry, answer again late, then echo one."""
    copies = [socket.recv_multipart(), socket.recv_multipart()]
    envelope = copies[1][:3]
    socket.send_multipart([*envelope, b"answer"])
    socket.send_multipart([*envelope, b"duplicate"])
    socket.send_multipart(socket.recv_multipart())  # echo the request that follows
    return copies


@pytest_twisted.ensureDeferred
async def test_retry_answered_on_second_copy_fires_once(peer, logged):
    client, done = peer(zmq.ROUTER, answerSecondCopyTwice, Client)
    assert await client.sendMsg(b"question", timeout=0.3, retries=3) == [b"answer"]
    # Replies are ordered: once the next request is answered, the duplicate was handled.
    assert await client.sendMsg(b"next") == [b"next"]
    first, retry = await done
    assert first == retry  # same request id: a reply to either copy answers it
    assert client.pendingRequests == 0
    assert timersLeft() == []  # the two unused retries are not scheduled
    assert failuresIn(logged) == []  # no AlreadyCalledError anywhere


@pytest_twisted.ensureDeferred
async def test_request_fails_with_timeout_once_retries_are_exhausted(serve, logged):
    client, server = serve()
    await fails(client.sendMsg(b"anyone?", timeout=0.1, retries=2), ZmqRequestTimeoutError)
    copies = await server.received(3)
    assert [parts for _, parts in copies] == [(b"anyone?",)] * 3
    assert client.pendingRequests == 0
    assert timersLeft() == []
    assert failuresIn(logged) == []


# -- REQ: shutdown ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shutDown",
    [
        pytest.param(ZmqREQConnection.shutdown, id="connection"),
        pytest.param(lambda client: client.factory.shutdown(), id="factory"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_pending_requests_fail_with_connection_closed_on_shutdown(serve, shutDown):
    client, _ = serve()
    requests = [client.sendMsg(b"one"), client.sendMsg(b"two")]
    await maybeDeferred(shutDown, client)
    for request in requests:
        await fails(request, ZmqConnectionClosed)
    assert client.pendingRequests == 0
    assert timersLeft() == []


@pytest_twisted.ensureDeferred
async def test_sendMsg_after_shutdown_fails_with_connection_closed(serve):
    client, _ = serve()
    client.shutdown()
    await fails(client.sendMsg(b"too late"), ZmqConnectionClosed)


# -- REP -------------------------------------------------------------------------------------


def test_reply_to_unknown_request_raises(zmq_factory):
    server = ZmqREPConnection(zmq_factory)
    with pytest.raises(ZmqUnknownRequestError):
        server.reply(b"no such id", b"reply")
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_second_reply_to_the_same_request_raises(serve):
    client, server = serve()
    request = client.sendMsg(b"once")
    [(messageId, _)] = await server.received(1)
    server.reply(messageId, b"first")
    with pytest.raises(ZmqUnknownRequestError):
        server.reply(messageId, b"second")
    assert await request == [b"first"]


@pytest_twisted.ensureDeferred
async def test_forgotten_request_is_never_answered(serve):
    client, server = serve()
    dropped = client.sendMsg(b"no reply wanted", timeout=0.2)
    [(messageId, _)] = await server.received(1)
    assert server.forget(messageId) is True
    assert server.pendingRequests == 0
    assert server.forget(messageId) is False
    with pytest.raises(ZmqUnknownRequestError):
        server.reply(messageId, b"too late")
    await fails(dropped, ZmqRequestTimeoutError)


def sendWithoutThenWithDelimiter(socket: Any) -> list[bytes]:
    """DEALER peer: a message with no empty delimiter, then a well-formed request."""
    socket.send_multipart([b"x"])
    socket.send_multipart([b"", b"good"])
    return socket.recv_multipart()


@pytest_twisted.ensureDeferred
async def test_request_without_empty_delimiter_is_dropped_and_logged(peer, logged):
    server, done = peer(zmq.DEALER, sendWithoutThenWithDelimiter, Collecting)
    [(messageId, parts)] = await server.received(1)
    assert parts == (b"good",)
    server.reply(messageId, b"served")
    assert await done == [b"", b"served"]
    assert len(server.requests) == 1
    assert eventsSaying(logged, "without an empty delimiter")


@pytest_twisted.ensureDeferred
async def test_pending_requests_never_exceed_maxPendingRequests(serve):
    client, server = serve(Bounded)
    requests = [client.sendMsg(b"%d" % number) for number in range(6)]
    await server.received(6)
    assert server.peak == server.pendingRequests == Bounded.maxPendingRequests
    await cancelAll(requests)


@pytest_twisted.ensureDeferred
async def test_oldest_requests_are_forgotten_beyond_maxPendingRequests(serve, logged):
    client, server = serve(Bounded)
    requests = [client.sendMsg(b"%d" % number) for number in range(5)]
    arrived = await server.received(5)
    for messageId, _ in arrived[:2]:
        with pytest.raises(ZmqUnknownRequestError):
            server.reply(messageId, b"forgotten")
    for messageId, parts in arrived[2:]:
        server.reply(messageId, *parts)
    assert await gatherResults(requests[2:]) == [[b"2"], [b"3"], [b"4"]]
    assert len(eventsSaying(logged, "forgot the oldest")) == 2
    await cancelAll(requests[:2])


# -- REP: the handleRequest hook -------------------------------------------------------------


def later(value: Any) -> Deferred[Any]:
    from twisted.internet import reactor

    return deferLater(reactor, 0.05, lambda: value)


class ReturnsBytes(ZmqREPConnection):
    def handleRequest(self, name: bytes) -> bytes:
        return b"hello " + name


class ReturnsDeferred(ZmqREPConnection):
    def handleRequest(self, name: bytes) -> Deferred[list[bytes]]:
        return later([b"hello", name])


class IsCoroutine(ZmqREPConnection):
    async def handleRequest(self, name: bytes) -> list[bytes]:
        return await later([b"hello", name])


@pytest.mark.parametrize(
    ("serverClass", "reply"),
    [
        pytest.param(ReturnsBytes, [b"hello world"], id="bytes"),
        pytest.param(Echo, [b"world"], id="frames"),
        pytest.param(ReturnsDeferred, [b"hello", b"world"], id="deferred"),
        pytest.param(IsCoroutine, [b"hello", b"world"], id="coroutine"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_handleRequest_result_becomes_the_reply(serve, serverClass, reply):
    client, server = serve(serverClass)
    assert await client.sendMsg(b"world") == reply
    assert server.pendingRequests == 0


async def boomThenOk(client: ZmqREQConnection) -> None:
    """Send a request the server fails on, then one it answers; the first is never answered."""
    boom = client.sendMsg(b"boom")
    assert await client.sendMsg(b"ok") == [b"ok"]
    await cancelAll([boom])


@pytest_twisted.ensureDeferred
async def test_failing_handleRequest_is_logged_and_next_request_served(serve, logged):
    class Failing(ZmqREPConnection):
        def handleRequest(self, *messageParts: bytes) -> list[bytes]:
            if messageParts == (b"boom",):
                raise Boom()
            return list(messageParts)

    client, server = serve(Failing)
    await boomThenOk(client)
    assert [failure.type for failure in failuresIn(logged)] == [Boom]
    assert server.pendingRequests == 0  # the failed request is forgotten


@pytest_twisted.ensureDeferred
async def test_unusable_handleRequest_result_is_logged_and_request_forgotten(serve, logged):
    class ReturnsNothing(ZmqREPConnection):
        def handleRequest(self, *messageParts: bytes) -> Any:
            return None if messageParts == (b"boom",) else list(messageParts)

    client, server = serve(ReturnsNothing)
    await boomThenOk(client)
    assert [failure.type for failure in failuresIn(logged)] == [TypeError]
    assert server.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_exception_in_gotMessage_is_logged_and_next_message_delivered(serve, logged):
    class Fragile(ZmqREPConnection):
        def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
            if messageParts == (b"boom",):
                raise Boom()
            self.reply(messageId, *messageParts)

    client, _ = serve(Fragile)
    await boomThenOk(client)
    [failure] = failuresIn(logged)
    assert failure.type is Boom
    assert "in gotMessage" in failure.getTraceback()
