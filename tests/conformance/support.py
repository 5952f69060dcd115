"""
Reference peers and helpers for the conformance tests.

A reference peer is a plain pyzmq socket on the factory's context (inproc needs the same
one). It is created, bound or connected on the reactor thread, so the address is live (and
``last_endpoint`` known) as soon as the test goes on; then a thread runs a blocking script on
it. A socket moves between threads only across ``Thread.start`` and ``Thread.join``, the full
memory barriers ZeroMQ asks for. Threads never close their sockets: a zero-linger close could
drop what libzmq has not delivered yet, so the ``peers`` fixture closes every socket after
the test, once every thread has ended.

Nothing here sleeps: the reactor side waits on Deferreds (bounded by ``WAIT``), a peer thread
on its sockets (bounded by ``PEER_TIMEOUT_MS``) or on a ``threading.Event``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from time import monotonic
from typing import Any, TypeVar

import zmq
from twisted.internet.defer import Deferred, DeferredList, DeferredQueue
from twisted.logger import globalLogPublisher

from tests.peers import PEER_TIMEOUT_MS, blockingSocket, inThread
from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
)

T = TypeVar("T")

WAIT = PEER_TIMEOUT_MS / 2000
"""Seconds the reactor side waits for anything: less than a peer socket's timeout, so the
test reports what it was waiting for, not the peer's ``zmq.Again``."""

_controlNames = itertools.count(1)


def within(deferred: Deferred[T]) -> Deferred[T]:
    """``deferred``, failing with ``TimeoutError`` if it has not fired in ``WAIT`` seconds."""
    from twisted.internet import reactor

    return deferred.addTimeout(WAIT, reactor)


def bound(address: str) -> ZmqEndpoint:
    return ZmqEndpoint(ZmqEndpointType.bind, address)


def connected(address: str) -> ZmqEndpoint:
    return ZmqEndpoint(ZmqEndpointType.connect, address)


class Signal:
    """
    A one-shot word from a peer thread to the test: the thread calls it, the test awaits
    :attr:`fired` (which fires on the reactor thread with the value given).
    """

    def __init__(self) -> None:
        self.fired: Deferred[Any] = Deferred()

    def __call__(self, value: Any = None) -> None:
        from twisted.internet import reactor

        reactor.callFromThread(self.fired.callback, value)


class Peers:
    """
    Reference sockets and the threads running scripts on them; see the module docstring.
    The ``peers`` fixture makes one per test and calls :meth:`close` after it.
    """

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.context = context
        self._sockets: list[Any] = []
        self._threads: list[Deferred[Any]] = []
        self._controls: list[Any] = []

    def socket(
        self,
        socketType: int,
        *,
        bind: str | None = None,
        connect: str | Sequence[str] = (),
        **options: Any,
    ) -> Any:
        """
        A blocking pyzmq socket with bounded timeouts and the given options (by name, such as
        ``routing_id=b"X"``), bound to ``bind`` and connected to ``connect``, in that order.
        Read a bound address back from ``socket.last_endpoint``.
        """
        socket = blockingSocket(self.context, socketType, **options)
        self._sockets.append(socket)
        if bind is not None:
            socket.bind(bind)
        for address in [connect] if isinstance(connect, str) else connect:
            socket.connect(address)
        return socket

    def run(self, script: Callable[..., T], *args: Any) -> Deferred[T]:
        """
        Run ``script(*args)`` in a new thread; the Deferred fires with its result (or
        failure) on the reactor thread once the thread has ended.
        """
        done = inThread(script, *args)
        self._threads.append(done)
        return done

    def proxy(self, frontend: Any, backend: Any) -> None:
        """
        Run libzmq's own proxy between two of these sockets in a thread, until the test
        ends: ``zmq.proxy_steerable`` returns when its control socket says ``TERMINATE``.
        """
        address = f"inproc://conformance-proxy-control-{next(_controlNames)}"
        inside = self.socket(zmq.PAIR, bind=address)
        # Connected to an already bound inproc address, the pipe exists at once, so the
        # TERMINATE sent at the end never waits for a handshake.
        self._controls.append(self.socket(zmq.PAIR, connect=address))
        self.run(zmq.proxy_steerable, frontend, backend, None, inside)

    def close(self) -> Deferred[Any]:
        """
        Stop the proxies, wait for every thread, then close every socket with zero linger.
        """
        for control in self._controls:
            control.send(b"TERMINATE")
        done = DeferredList(self._threads, consumeErrors=True)

        def closeSockets(result: Any) -> Any:
            for socket in self._sockets:
                socket.close(linger=0)
            return result

        return done.addBoth(closeSockets)


# -- peer scripts (they run in a peer thread) ---------------------------------------------------


def receive(socket: Any, count: int = 1) -> list[list[bytes]]:
    """Receive ``count`` messages and return them."""
    return [socket.recv_multipart() for _ in range(count)]


def receiveWaiting(socket: Any) -> list[list[bytes]]:
    """
    Receive, without blocking, every message already waiting. For inproc peers only: there a
    message libzmq accepted is already in the receiver's pipe, so nothing is in flight.
    """
    messages: list[list[bytes]] = []
    for _ in range(100_000):
        try:
            messages.append(socket.recv_multipart(zmq.NOBLOCK))
        except zmq.Again:
            return messages
    raise AssertionError("more than 100 000 messages waiting")


def request(socket: Any, *messages: list[bytes]) -> list[list[bytes]]:
    """Lock-step: send each message and receive its reply; return the replies."""
    replies = []
    for message in messages:
        socket.send_multipart(message)
        replies.append(socket.recv_multipart())
    return replies


def serve(
    sockets: Sequence[Any],
    total: int,
    answer: Callable[[int, list[bytes]], list[bytes] | None],
) -> list[list[list[bytes]]]:
    """
    Take ``total`` messages, whichever of ``sockets`` (REP or ROUTER) they arrive on, and
    send back on the same socket what ``answer(socketIndex, message)`` returns (nothing for
    ``None``). Returns the messages each socket took.
    """
    poller = zmq.Poller()
    for socket in sockets:
        poller.register(socket, zmq.POLLIN)
    taken: list[list[list[bytes]]] = [[] for _ in sockets]
    deadline = monotonic() + PEER_TIMEOUT_MS / 1000
    while sum(map(len, taken)) < total:
        remaining = deadline - monotonic()
        if remaining <= 0:
            raise TimeoutError(f"served {sum(map(len, taken))} of {total} messages: {taken}")
        for socket, _ in poller.poll(remaining * 1000):
            index = sockets.index(socket)
            message = socket.recv_multipart(zmq.NOBLOCK)
            taken[index].append(message)
            reply = answer(index, message)
            if reply is not None:
                socket.send_multipart(reply)
    return taken


def envelopeOf(message: list[bytes]) -> list[bytes]:
    """A request's routing frames up to and including the empty delimiter."""
    return message[: message.index(b"") + 1]


def dataOf(message: list[bytes]) -> list[bytes]:
    """A request's data frames: everything after the empty delimiter."""
    return message[message.index(b"") + 1 :]


# -- our connections, instrumented ------------------------------------------------------------


class Recording:
    """Mixin: each ``gotMessage`` call's arguments, as a tuple, in a queue."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inbox: DeferredQueue[tuple[bytes, ...]] = DeferredQueue()
        self.received: list[tuple[bytes, ...]] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, *arguments: bytes) -> None:
        self.received.append(arguments)
        self.inbox.put(arguments)

    def next(self) -> Deferred[tuple[bytes, ...]]:
        """The next message's arguments (once it has come)."""
        return within(self.inbox.get())


class Router(Recording, ZmqRouterConnection):
    """A ROUTER recording ``(senderId, *frames)`` for each message."""


class Dealer(Recording, ZmqDealerConnection):
    """A DEALER recording the frames of each message."""


class Client(ZmqREQConnection):
    """A REQ whose requests give up in the end, so a broken library fails a test, not hangs it."""

    defaultRequestTimeout = WAIT


class Answering(ZmqREPConnection):
    """
    A REP answering ``b"re"`` then the request's frames, and recording each request's frames
    (what the application is given), in order, in :attr:`requests`.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.requests: list[tuple[bytes, ...]] = []
        super().__init__(*args, **kwargs)

    def handleRequest(self, *parts: bytes) -> list[bytes]:
        self.requests.append(parts)
        return [b"re", *parts]


class Holding(ZmqREPConnection):
    """
    A REP that answers nothing by itself: it keeps ``(messageId, frames)`` of each request in
    :attr:`held` for the test to answer with ``reply``; :meth:`holding` waits for them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.held: list[tuple[bytes, tuple[bytes, ...]]] = []
        self._waiters: list[tuple[int, Deferred[list[tuple[bytes, tuple[bytes, ...]]]]]] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, messageId: bytes, *parts: bytes) -> None:
        self.held.append((messageId, parts))
        for waiter in list(self._waiters):
            count, deferred = waiter
            if len(self.held) >= count:
                self._waiters.remove(waiter)
                deferred.callback(self.held[:count])

    def holding(self, count: int) -> Deferred[list[tuple[bytes, tuple[bytes, ...]]]]:
        """Fires with the first ``count`` requests once that many have come."""
        deferred: Deferred[list[tuple[bytes, tuple[bytes, ...]]]] = Deferred()
        if len(self.held) >= count:
            deferred.callback(self.held[:count])
        else:
            self._waiters.append((count, deferred))
        return within(deferred)


@contextmanager
def loggedFailures() -> Iterator[list[Any]]:
    """The Failures logged (through ``twisted.logger``) inside the block."""
    failures: list[Any] = []

    def observe(event: dict[str, Any]) -> None:
        if "log_failure" in event:
            failures.append(event["log_failure"])

    globalLogPublisher.addObserver(observe)
    try:
        yield failures
    finally:
        globalLogPublisher.removeObserver(observe)


def twoBrokers(peers: Peers, transport: str, address: Callable[[str], str]) -> tuple[str, str]:
    """
    Two chained libzmq proxies, each a ROUTER frontend and a DEALER backend: clients connect
    to the first address, servers to the second. Each hop's ROUTER adds one routing frame to a
    request's envelope, and takes it off the reply.
    """
    firstFront = peers.socket(zmq.ROUTER, bind=address(transport))
    firstBack = peers.socket(zmq.DEALER, bind=address(transport))
    secondFront = peers.socket(zmq.ROUTER, connect=firstBack.last_endpoint.decode())
    secondBack = peers.socket(zmq.DEALER, bind=address(transport))
    peers.proxy(firstFront, firstBack)
    peers.proxy(secondFront, secondBack)
    return firstFront.last_endpoint.decode(), secondBack.last_endpoint.decode()


def released(event: threading.Event) -> None:
    """Wait (bounded) until the test sets ``event``."""
    if not event.wait(PEER_TIMEOUT_MS / 1000):
        raise TimeoutError("the test never released this peer")
