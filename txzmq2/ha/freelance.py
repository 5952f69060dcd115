"""
Freelance: brokerless reliable request-reply between clients and any number of servers.

The framing is 10/FLP's: a ping is the one frame ``PING``, answered ``PONG``; a request is a
control frame (our request id) and the body, answered by the same control frame and the
reply. The client keeps one DEALER per server, so it addresses each server without knowing
its identity; a server is a ROUTER, so it answers any number of clients, and FLP's own
ROUTER clients too. The client's invariant: each request is outstanding on one server at
a time, and its Deferred fires once, with the first reply to any of its tries.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from txzmq2._frames import toFrames
from txzmq2._logging import RateLimitedLogger
from txzmq2._reactor import ReactorLike, asReactorTime
from txzmq2.connection import Frame, Message, ZmqSecurity
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import ZmqConnectionClosed, ZmqRequestTimeoutError
from txzmq2.factory import ZmqFactory
from txzmq2.ha._endpoints import asEndpoint
from txzmq2.reqrep import _checkRequestOptions, _pendingResult
from txzmq2.routerdealer import ZmqDealerConnection, ZmqRouterConnection

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

__all__ = ["DEFAULT_MAX_CONCURRENCY", "PING", "PONG", "FreelanceClient", "FreelanceServer"]

PING = b"PING"
"""10/FLP: a client's ping, one frame."""
PONG = b"PONG"
"""10/FLP: a server's answer to a ping, one frame."""

PING_LIVENESS = 3
"""Ping intervals without a word from a server after which the client takes it for gone."""
DEFAULT_MAX_CONCURRENCY = 1000
"""``FreelanceServer``'s default ``maxConcurrency``."""


# -- the server --------------------------------------------------------------------------------


class _ServerConnection(ZmqRouterConnection):
    monitored = False

    def __init__(
        self,
        server: FreelanceServer,
        factory: ZmqFactory,
        bound: ZmqEndpoint,
        identity: bytes | str,
        security: ZmqSecurity | None,
    ) -> None:
        self.server = server
        super().__init__(factory, bound, identity=identity, security=security)

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.server._received(senderId, list(frames))


class FreelanceServer:
    """
    A Freelance (10/FLP) server: answers pings, and each request with ``handler``.

    ``handler(*body)`` returns the reply (``bytes`` or a non-empty sequence of ``bytes``),
    a Deferred of it, or is a coroutine function. A handler that fails is logged and its
    request dropped: the client's timeout sends it to another server. Requests are handled
    concurrently; a client that retries may have one request handled by several servers
    (at-least-once: make handlers idempotent).

    :param factory: the factory giving the context and the reactor.
    :param endpoint: where clients reach this server (a string is bound).
    :param handler: computes each reply; see above.
    :param identity: the ROUTER's identity; FLP's own clients address a server by its
        public endpoint, the default (our :class:`FreelanceClient` does not need it).
    :param maxConcurrency: the most handlers whose Deferred or coroutine may be running at
        once (default :data:`DEFAULT_MAX_CONCURRENCY`; ``None``: no bound). At the bound
        the server stops reading: requests and pings wait in libzmq's queues, its clients
        time out and go to other servers. None is dropped.
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`).
    :raises ValueError: for a ``maxConcurrency`` below 1.
    """

    _log = RateLimitedLogger()

    def __init__(
        self,
        factory: ZmqFactory,
        endpoint: str | ZmqEndpoint,
        handler: Callable[..., Any],
        *,
        identity: bytes | str | None = None,
        maxConcurrency: int | None = DEFAULT_MAX_CONCURRENCY,
        security: ZmqSecurity | None = None,
    ) -> None:
        if maxConcurrency is not None and maxConcurrency < 1:
            raise ValueError(f"maxConcurrency must be >= 1 or None, not {maxConcurrency}")
        bound = asEndpoint(endpoint, ZmqEndpointType.bind)
        self.handler = handler
        self.maxConcurrency = maxConcurrency
        self._running: set[Deferred[Any]] = set()
        self.connection: ZmqRouterConnection = _ServerConnection(
            self, factory, bound, bound.address if identity is None else identity, security
        )
        """The server's ROUTER connection (``lastEndpoint``, ``monitor``, options)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.connection!r}>"

    @property
    def lastEndpoint(self) -> str:
        """The address last bound, with the port the OS chose for ``*``."""
        return self.connection.lastEndpoint

    @staticmethod
    def isRequest(message: Message) -> bool:
        """Whether a message read by a server's ROUTER is a request (not a ping)."""
        return not (len(message) == 2 and message[1] == PING)

    def shutdown(self) -> None:
        """Close the socket and cancel the handlers still running. Idempotent."""
        self.connection.shutdown()
        for running in list(self._running):
            running.cancel()

    def _received(self, client: bytes, frames: list[bytes]) -> None:
        if frames == [PING]:
            self.connection.send([client, PONG])
            return
        if len(frames) < 2:
            self._log.warn(
                "{server}: dropped a {count}-frame message that is neither PING nor a request",
                server=self,
                count=len(frames),
            )
            return
        control, body = frames[0], frames[1:]
        try:
            result = self.handler(*body)
        except Exception:
            self._log.failure("{server}: the handler failed; request dropped", server=self)
            return
        pending = _pendingResult(result)
        if pending is None:
            self._reply(result, client, control)
            return
        self._running.add(pending)
        if self.maxConcurrency is not None and len(self._running) >= self.maxConcurrency:
            self.connection.pauseProducing()
        pending.addCallback(self._reply, client, control)
        pending.addErrback(self._failed)
        pending.addBoth(self._ended, pending)

    def _reply(self, result: Any, client: bytes, control: bytes) -> None:
        if self.connection.closed:
            return
        try:
            frames = toFrames(result)
        except (TypeError, ValueError):
            raise TypeError(
                f"the handler returned {result!r:.80}; a reply is bytes or a non-empty"
                " sequence of bytes"
            ) from None
        self.connection.send([client, control, *frames])

    def _failed(self, failure: Failure) -> None:
        if not isinstance(failure.value, CancelledError):
            self._log.failure(
                "{server}: the handler failed; request dropped", failure, server=self
            )

    def _ended(self, _: object, pending: Deferred[Any]) -> None:
        self._running.discard(pending)
        if (
            self.maxConcurrency is not None
            and len(self._running) == self.maxConcurrency - 1
            and not self.connection.closed
        ):
            self.connection.resumeProducing()


# -- the client --------------------------------------------------------------------------------


class _ServerLink(ZmqDealerConnection):
    """The client's DEALER to one server, and what the client knows of that server."""

    # One per server; the pings tell whether it is there.
    monitored = False

    def __init__(self, client: FreelanceClient, server: ZmqEndpoint) -> None:
        self.client = client
        self.aliveUntil = 0.0
        """Until when the server counts as alive (it answered something recently)."""
        super().__init__(client.factory, server, security=client.security)

    def gotMessage(self, *frames: bytes) -> None:
        self.client._received(self, list(frames))

    def connectionClosed(self) -> None:
        super().connectionClosed()
        self.client._linkClosed()


class _Request:
    """
    One outstanding request; it is pending while in ``FreelanceClient._pending`` and ends
    (answered, timed out, cancelled, closed) when ``_finish`` takes it out.
    """

    __slots__ = ("deferred", "frames", "retriesLeft", "timeout", "timer", "tried")

    def __init__(
        self, deferred: Deferred[Message], frames: list[bytes], timeout: float, retries: int
    ) -> None:
        self.deferred = deferred
        self.frames = frames
        self.timeout = timeout
        self.retriesLeft = retries
        self.tried: list[_ServerLink] = []
        self.timer: DelayedCall | None = None


class FreelanceClient:
    """
    A Freelance (10/FLP) client of several servers, each able to answer any request.

    Every ``pingInterval`` seconds it pings every server; a server that has answered
    something within ``PING_LIVENESS`` intervals counts as alive. A request goes to one
    server: the one that answered the last request, else the first alive one in the order
    of ``endpoints`` (so the first is preferred: a Binary Star pair's primary goes first),
    else the first not yet tried. When no reply comes within ``timeout``, the request is
    sent again (same id) to the next server, up to ``retries`` times; the first reply to
    any try answers it, later ones are dropped.

    :param factory: the factory giving the context and the reactor (timers run on it).
    :param endpoints: the servers, in order of preference (strings are connected).
    :param timeout: seconds each try waits for its reply.
    :param retries: tries after the first, each to the next server.
    :param pingInterval: seconds between pings to each server.
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`) for every socket.
    :raises ValueError: for no endpoints, a malformed one, or bad timings.
    """

    _log = RateLimitedLogger()

    def __init__(
        self,
        factory: ZmqFactory,
        endpoints: Iterable[str | ZmqEndpoint],
        timeout: float = 1.0,
        retries: int = 3,
        *,
        pingInterval: float = 1.0,
        security: ZmqSecurity | None = None,
    ) -> None:
        servers = [asEndpoint(address, ZmqEndpointType.connect) for address in endpoints]
        if not servers:
            raise ValueError("a Freelance client needs at least one server")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        _checkRequestOptions(timeout, retries)
        if pingInterval <= 0:
            raise ValueError(f"pingInterval must be > 0, not {pingInterval}")
        self.factory = factory
        self.security = security
        self.timeout = timeout
        self.retries = retries
        self.pingInterval = pingInterval
        self._reactor: ReactorLike = factory.reactor
        self._pending: dict[bytes, _Request] = {}
        self._requestIdPrefix = os.urandom(4)
        self._nextRequestId = 0
        self._current: _ServerLink | None = None
        self._closed = False
        self._pinger = LoopingCall(self._ping)
        self._pinger.clock = asReactorTime(self._reactor)
        self._links: list[_ServerLink] = []
        try:
            for server in servers:
                self._links.append(_ServerLink(self, server))
        except BaseException:
            self.shutdown()
            raise
        self._pinger.start(pingInterval, now=True)
        factory.addShutdownHook(self.shutdown)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {len(self._links)} server(s)>"

    @property
    def pendingRequests(self) -> int:
        """How many requests await their reply."""
        return len(self._pending)

    @property
    def aliveServers(self) -> list[str]:
        """The addresses of the servers that count as alive now, in order of preference."""
        now = self._reactor.seconds()
        return [link.endpoints[0].address for link in self._links if link.aliveUntil > now]

    def request(
        self, *parts: Frame, timeout: float | None = None, retries: int | None = None
    ) -> Deferred[Message]:
        """
        Send a request of ``parts`` to one server and return a Deferred of its reply.

        :param timeout: seconds per try (``None``: the client's ``timeout``).
        :param retries: tries after the first (``None``: the client's ``retries``).
        :return: a Deferred that fires exactly once: with the reply frames
            (``list[bytes]``), or fails with :class:`~txzmq2.errors.ZmqRequestTimeoutError`
            after the last try, ``CancelledError`` when cancelled, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` when the client shuts down first.
        :raises ValueError: for no parts, or a bad timeout or retries.
        :raises TypeError: for parts that are not bytes-like.
        """
        if not parts:
            raise ValueError("a request needs at least one frame")
        timeout = self.timeout if timeout is None else timeout
        retries = self.retries if retries is None else retries
        _checkRequestOptions(timeout, retries)
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0, not {timeout}")
        self._nextRequestId += 1
        # A random prefix per client: a late reply meant for another client's request of
        # the same number (through a reused identity) is never taken for ours.
        requestId = self._requestIdPrefix + self._nextRequestId.to_bytes(8, "big")
        frames = toFrames([requestId, *parts])
        if self._closed:
            return fail(ZmqConnectionClosed(f"{self!r} is shut down; cannot send a request"))

        def cancel(_: Deferred[Message]) -> None:
            self._finish(requestId)

        request = _Request(Deferred(cancel), frames, timeout, retries)
        self._pending[requestId] = request
        self._try(requestId, request)
        return request.deferred

    def shutdown(self) -> None:
        """
        Stop pinging and close every socket; pending requests fail with
        :class:`~txzmq2.errors.ZmqConnectionClosed`. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self.factory.removeShutdownHook(self.shutdown)
        if self._pinger.running:
            self._pinger.stop()
        for link in self._links:
            link.shutdown()
        for requestId in list(self._pending):
            request = self._finish(requestId)
            if request is not None:
                request.deferred.errback(
                    ZmqConnectionClosed("the client shut down before the reply came")
                )

    # -- one request's life ------------------------------------------------------------------

    def _choose(self, request: _Request) -> _ServerLink:
        """The server for the next try of ``request``."""
        now = self._reactor.seconds()
        order = self._links
        if self._current is not None:
            order = [self._current, *(link for link in order if link is not self._current)]
        untried = [link for link in order if link not in request.tried]
        if not untried:
            # Every server has had a try: start another round (a passive Binary Star node
            # may have become active, a restarted server come back).
            request.tried.clear()
            untried = order
        for link in untried:
            if link.aliveUntil > now:
                return link
        return untried[0]

    def _try(self, requestId: bytes, request: _Request) -> None:
        link = self._choose(request)
        request.tried.append(link)
        try:
            link.send(request.frames)
        except ZmqConnectionClosed:
            pass  # shutting down: the request fails with the rest
        if requestId in self._pending:
            request.timer = self._reactor.callLater(request.timeout, self._timedOut, requestId)

    def _finish(self, requestId: bytes) -> _Request | None:
        request = self._pending.pop(requestId, None)
        if request is not None and request.timer is not None:
            if request.timer.active():
                request.timer.cancel()
            request.timer = None
        return request

    def _timedOut(self, requestId: bytes) -> None:
        request = self._pending.get(requestId)
        if request is None:
            return
        request.timer = None
        silent = request.tried[-1]
        # After a reactor stall this timer can run before the reactor has read a reply that
        # came in time: read what waits from the server first (one pass, the usual budget).
        silent._readWaiting()
        if requestId not in self._pending:
            return  # answered
        # It did not answer in time: not the first choice again until it answers something.
        silent.aliveUntil = 0.0
        if silent is self._current:
            self._current = None
        if request.retriesLeft > 0 and not self._closed:
            request.retriesLeft -= 1
            self._try(requestId, request)
            return
        self._finish(requestId)
        request.deferred.errback(
            ZmqRequestTimeoutError(f"no reply within {request.timeout} s from any server")
        )

    def _received(self, link: _ServerLink, frames: list[bytes]) -> None:
        link.aliveUntil = self._reactor.seconds() + PING_LIVENESS * self.pingInterval
        if frames == [PONG]:
            return
        request = self._finish(frames[0]) if len(frames) > 1 else None
        if request is None:
            self._log.debug(
                "{client}: dropped a reply to an unknown, answered or timed-out request",
                client=self,
            )
            return
        self._current = link
        request.deferred.callback(frames[1:])

    def _linkClosed(self) -> None:
        # Closed by the factory's shutdown (ours closes them itself): close the rest.
        if not self._closed:
            self.shutdown()

    def _ping(self) -> None:
        for link in self._links:
            # A server that is down holds our pings in libzmq's queue; never stack more in
            # ours on top of them.
            if not link.closed and not link.sendQueueLength:
                link.send([PING])
