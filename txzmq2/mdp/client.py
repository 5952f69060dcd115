"""
The Majordomo client: requests to named services through a broker, as Deferreds.

MDP/Client 0.1 carries no request id: a client sends ``[b"", MDPC01, service, *body]`` and
the broker's reply ``[b"", MDPC01, service, *body]`` says only which service answered. So a
socket can have one request outstanding at a time (the RFC's REQ-like dialog), and this
client keeps many outstanding by giving each its own DEALER socket, taken from a small pool
of idle ones. A socket whose request timed out or was cancelled is closed, never reused: a
late reply on it could otherwise be taken for the answer to the next request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, fail

from txzmq2._frames import toFrames
from txzmq2._logging import RateLimitedLogger
from txzmq2._reactor import ReactorLike
from txzmq2.connection import Frame, Message, ZmqSecurity
from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqConnectionClosed, ZmqRequestTimeoutError
from txzmq2.factory import ZmqFactory
from txzmq2.mdp._protocol import CLIENT, Malformed, parseClientMessage, serviceName
from txzmq2.reqrep import _checkRequestOptions
from txzmq2.routerdealer import ZmqDealerConnection

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

__all__ = ["MajordomoClient"]


class _RequestConnection(ZmqDealerConnection):
    """One DEALER of a client, carrying one request at a time."""

    # One socket per outstanding request: a monitor socket each would double the count.
    monitored = False

    def __init__(self, client: MajordomoClient) -> None:
        self.client = client
        super().__init__(client.factory, client.endpoint, security=client.security)

    def gotMessage(self, *frames: bytes) -> None:
        self.client._received(self, list(frames))

    def connectionClosed(self) -> None:
        self.client._connectionClosed(self)


class _Request:
    """
    One outstanding request. Its life has one owner, ``MajordomoClient._pending`` (keyed by
    the connection carrying it): it is pending while there, and ends (answered, timed out,
    cancelled or closed) when taken out, which also stops its timer.
    """

    __slots__ = ("connection", "deferred", "frames", "retriesLeft", "service", "timeout", "timer")

    def __init__(
        self,
        deferred: Deferred[Message],
        service: bytes,
        frames: list[bytes],
        timeout: float | None,
        retries: int,
    ) -> None:
        self.deferred = deferred
        self.service = service
        self.frames = frames
        self.timeout = timeout
        self.retriesLeft = retries
        self.connection: _RequestConnection | None = None
        self.timer: DelayedCall | None = None


class MajordomoClient:
    """
    A Majordomo (7/MDP) client: sends requests to services through a broker.

    Each outstanding request has a DEALER socket of its own (MDP/Client has no request id to
    tell replies apart on a shared one); at most :attr:`maxIdleConnections` idle sockets are
    kept for reuse. Every socket connects to ``endpoint``; ZeroMQ reconnects it by itself
    when the broker restarts.

    :param factory: the factory giving the context and the reactor (timers run on it).
    :param endpoint: the broker's address, usually a connect endpoint.
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`) for every socket.
    """

    defaultRequestTimeout: float | None = None
    """Seconds a request waits for its reply when ``request`` is given no ``timeout``
    (``None``: forever)."""
    maxIdleConnections: int = 8
    """Most idle sockets kept for the next requests; others are closed once answered."""

    _log = RateLimitedLogger()

    def __init__(
        self, factory: ZmqFactory, endpoint: ZmqEndpoint, security: ZmqSecurity | None = None
    ) -> None:
        self.factory = factory
        self.security = security
        self.endpoint = ZmqEndpoint(*endpoint)
        # Fail now, not at the first request, on an address that cannot work.
        self.endpoint.validate()
        self._reactor: ReactorLike = factory.reactor
        self._pending: dict[_RequestConnection, _Request] = {}
        self._idle: list[_RequestConnection] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.endpoint.address}>"

    @property
    def pendingRequests(self) -> int:
        """How many requests await their reply."""
        return len(self._pending)

    def request(
        self,
        service: bytes | str,
        *frames: Frame,
        timeout: float | None = None,
        retries: int = 0,
    ) -> Deferred[Message]:
        """
        Send a request of ``frames`` to ``service`` and return a Deferred of the reply.

        A broker holds a request for a service that has no worker yet; ``timeout`` bounds
        the wait. Each retry goes out on a fresh socket (the RFC's advice), so it may reach
        another worker, or a restarted broker.

        :param service: the service name (``str`` is encoded as UTF-8).
        :param frames: the request body, one frame or more.
        :param timeout: seconds to wait for each try (``None``: ``defaultRequestTimeout``).
        :param retries: times to send the request again after a timeout before giving up.
        :return: a Deferred that fires exactly once: with the reply body frames
            (``list[bytes]``), or fails with :class:`~txzmq2.errors.ZmqRequestTimeoutError`
            after the last try, ``CancelledError`` when cancelled, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` when the client or its factory shuts
            down first (or already has).
        :raises ValueError: for no frames, an empty service name, a negative timeout or
            retries, or retries without a timeout.
        :raises TypeError: for frames that are not bytes-like, or a service that is neither
            ``bytes`` nor ``str``.
        """
        name = serviceName(service)
        if not frames:
            raise ValueError("a request needs at least one frame")
        if timeout is None:
            timeout = self.defaultRequestTimeout
        _checkRequestOptions(timeout, retries)
        message = toFrames([b"", CLIENT, name, *frames])
        if self._closed or self.factory.shuttingDown:
            return fail(ZmqConnectionClosed(f"{self!r} is shut down; cannot send a request"))

        def cancel(_: Deferred[Message]) -> None:
            connection = self._end(request)
            if connection is not None:
                self._discard(connection)

        request = _Request(Deferred(cancel), name, message, timeout, retries)
        self._send(request)
        return request.deferred

    def shutdown(self) -> None:
        """
        Close every socket; pending requests fail with
        :class:`~txzmq2.errors.ZmqConnectionClosed`. Idempotent.
        """
        self._closed = True
        for connection in [*self._pending, *self._idle]:
            connection.shutdown()  # connectionClosed fails its request

    # -- one request's life ------------------------------------------------------------------

    def _send(self, request: _Request) -> None:
        """Send a try of ``request`` on an idle or a new socket, and start its timer."""
        try:
            # ZmqConnectionClosed when the factory is shutting down; a ZMQError when, say,
            # the process is out of file descriptors. Either way the request ends here: on a
            # retry there is no caller to raise to.
            connection = self._idle.pop() if self._idle else _RequestConnection(self)
        except Exception:
            request.deferred.errback()  # with the exception being handled
            return
        request.connection = connection
        self._pending[connection] = request
        connection.send(request.frames)
        if request.timeout is not None:
            request.timer = self._reactor.callLater(request.timeout, self._timedOut, request)

    def _end(self, request: _Request) -> _RequestConnection | None:
        """
        End a try of ``request``: out of the pending map, timer stopped. Returns its socket,
        or ``None`` when the request was not pending (it has ended already).
        """
        connection = request.connection
        if connection is None or self._pending.get(connection) is not request:
            return None
        del self._pending[connection]
        request.connection = None
        if request.timer is not None:
            if request.timer.active():
                request.timer.cancel()
            request.timer = None
        return connection

    def _discard(self, connection: _RequestConnection) -> None:
        # A reply that is still on its way must never reach a later request.
        connection.shutdown()

    def _timedOut(self, request: _Request) -> None:
        request.timer = None
        if request.connection is not None:
            # After a reactor stall this timer can run before the reactor has read a reply
            # that came in time: read what waits on the request's socket first (one pass).
            request.connection._readWaiting()
        connection = self._end(request)
        if connection is None:
            return
        self._discard(connection)
        if request.retriesLeft > 0:
            request.retriesLeft -= 1
            self._log.info(
                "{client}: no reply from {service!r} in {timeout} s; retrying on a fresh socket",
                client=self,
                service=request.service,
                timeout=request.timeout,
            )
            self._send(request)
            return
        request.deferred.errback(
            ZmqRequestTimeoutError(
                f"no reply from service {request.service!r} within {request.timeout} s"
            )
        )

    def _received(self, connection: _RequestConnection, frames: list[bytes]) -> None:
        request = self._pending.get(connection)
        if request is None:
            # Only one reply per request reaches an idle socket's owner; a second means a
            # broker out of step with us: take the socket out of service.
            self._log.warn(
                "{client}: a reply came for no request; closing its socket", client=self
            )
            if connection in self._idle:
                self._idle.remove(connection)
            self._discard(connection)
            return
        try:
            service, body = parseClientMessage(frames)
        except Malformed as error:
            self._log.warn(
                "{client}: dropped a malformed reply ({reason})", client=self, reason=str(error)
            )
            return
        if service != request.service:
            self._log.warn(
                "{client}: dropped a reply from {service!r} to a request for {asked!r}",
                client=self,
                service=service,
                asked=request.service,
            )
            return
        self._end(request)
        if len(self._idle) < self.maxIdleConnections and not self._closed:
            self._idle.append(connection)
        else:
            connection.shutdown()
        request.deferred.callback(body)

    def _connectionClosed(self, connection: _RequestConnection) -> None:
        """A socket closed: by us (nothing to do), or by shutdown (fail its request)."""
        if connection in self._idle:
            self._idle.remove(connection)
        request = self._pending.get(connection)
        if request is not None:
            self._end(request)
            request.deferred.errback(
                ZmqConnectionClosed("the client shut down before the reply came")
            )
