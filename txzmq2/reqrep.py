"""
Request-reply: ZmqREQConnection (a DEALER that keeps many requests outstanding) and
ZmqREPConnection (a ROUTER that answers each request by its envelope).

A request travels as ``[requestId, b"", *parts]``. A REP peer (or our REP, or any broker in
between) returns everything up to and including the empty delimiter untouched, so the reply
``[requestId, b"", *reply]`` finds its request by id, in any order.
"""

from __future__ import annotations

import os
from types import CoroutineType
from typing import Any

import zmq
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure

from txzmq2._deadlines import _Deadlines
from txzmq2._frames import ownFrames
from txzmq2.connection import Frame, Message, ZmqConnection
from txzmq2.endpoint import ZmqEndpointType
from txzmq2.errors import ZmqConnectionClosed, ZmqRequestTimeoutError, ZmqUnknownRequestError

__all__ = ["ZmqREPConnection", "ZmqREQConnection"]


def _checkRequestOptions(timeout: float | None, retries: int) -> None:
    """
    Validate a request's ``timeout`` and ``retries`` (shared by every client that retries).

    :raises ValueError: for a negative ``timeout`` or ``retries``, or ``retries`` without a
        ``timeout``.
    """
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be >= 0 or None, not {timeout}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, not {retries}")
    if retries and timeout is None:
        raise ValueError("retries need a timeout: a retry is sent when a try times out")


def _pendingResult(result: object) -> Deferred[Any] | None:
    """
    What a request handler's result still waits on: a Deferred as it is, or a coroutine
    (what calling an ``async def`` returns) wrapped in one. ``None`` for a plain value,
    which the caller answers at once, without a Deferred (the common, hot case).
    """
    if isinstance(result, Deferred):
        return result
    if isinstance(result, CoroutineType):
        return Deferred.fromCoroutine(result)
    return None


class _Request:
    """
    One outstanding request. Its life has one owner, ``ZmqREQConnection._pending``: it is
    pending while in that map and ends (answered, timed out, cancelled or closed) when
    ``_finish`` takes it out. While its current try waits for libzmq, ``token`` names it
    in the outbound queue; ``timed`` says whether its current try waits in the
    connection's deadlines.
    """

    __slots__ = ("deferred", "frames", "retriesLeft", "timed", "timeout", "token", "tries")

    def __init__(
        self, deferred: Deferred[Message], frames: list[bytes], timeout: float | None, retries: int
    ) -> None:
        self.deferred = deferred
        self.frames = frames
        self.timeout = timeout
        self.retriesLeft = retries
        self.tries = 0
        self.token: int | None = None
        self.timed = False


class ZmqREQConnection(ZmqConnection):
    """
    The client side of request-reply. A DEALER underneath; each reply is matched to its
    request.

    With :attr:`requestIds` (the default) any number of requests may be outstanding: each
    travels as ``[requestId, b"", *parts]`` and its reply comes back by id, in any order.
    Talks to REP and ROUTER peers directly, or through ROUTER/DEALER brokers.

    With ``requestIds = False`` it speaks exactly a libzmq REQ socket's framing,
    ``[b"", *parts]``, for peers that count frames (the ZeroMQ Guide's workers and
    brokers): one request is on the wire at a time and the others wait in order; a retry,
    or a request that ends without its reply, reconnects the socket (as the Lazy Pirate
    pattern does), so a late reply can never answer another request.

    Socket events are watched from creation (:attr:`monitored`), so that a timeout can say
    whether any peer ever connected.
    """

    socketType = zmq.DEALER
    monitored = True
    requestIds: bool = True
    """Prefix each request with an id (many in flight), or not (a libzmq REQ's framing,
    one in flight); see the class docstring."""
    defaultRequestTimeout: float | None = None
    """Seconds a request waits for its reply when ``sendMsg`` is given no ``timeout``
    (``None``: forever)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pending: dict[bytes, _Request] = {}
        self._requestIdPrefix = os.urandom(4)
        self._nextRequestId = 0
        # Without request ids: the request on the wire, and the others in order.
        self._onWire: bytes | None = None
        self._deadlines: _Deadlines[bytes] | None = None
        super().__init__(*args, **kwargs)
        # Replies waiting unread when the deadline timer runs (after a reactor stall) came
        # in time: the timer reads them first.
        self._deadlines = _Deadlines(self._reactor, self._timedOut, self._readWaiting)

    @property
    def pendingRequests(self) -> int:
        """How many requests await their reply."""
        return len(self._pending)

    def sendMsg(
        self, *parts: Frame, timeout: float | None = None, retries: int = 0
    ) -> Deferred[Message]:
        """
        Send a request made of ``parts`` and return a Deferred of its reply.

        :param timeout: seconds to wait for each try (``None``: ``defaultRequestTimeout``).
        :param retries: times to send the request again after a timeout before giving up
            (the Lazy Pirate pattern: a retry may reach another server).
        :return: a Deferred that fires exactly once: with the reply frames
            (``list[bytes]``), or fails with :class:`~txzmq2.errors.ZmqRequestTimeoutError`
            after the last try, ``CancelledError`` when cancelled,
            :class:`~txzmq2.errors.ZmqSendQueueFull` past :attr:`sendQueueLimit`, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` when the connection shuts down
            first (or already has).
        """
        if self._closed:
            return fail(ZmqConnectionClosed(f"{self!r} is shut down; cannot send a request"))
        if timeout is None:
            timeout = self.defaultRequestTimeout
        if timeout is not None or retries:
            _checkRequestOptions(timeout, retries)
        if not parts:
            raise ValueError("a request needs at least one frame")
        self._nextRequestId += 1
        # A random per-connection prefix: a reopened connection (same identity) must never
        # take a late reply meant for its predecessor's request of the same number.
        requestId = self._requestIdPrefix + self._nextRequestId.to_bytes(8, "big")

        def cancel(_: Deferred[Message]) -> None:
            self._finish(requestId)

        deferred: Deferred[Message] = Deferred(cancel)
        try:
            if self.requestIds:
                frames = ownFrames([requestId, b"", *parts])
            else:
                frames = ownFrames([b"", *parts])
        except Exception:
            return fail()
        # Registered before sending: code running inside send() (a producer) may shut the
        # connection down, and the request must then fail like every other pending one.
        request = _Request(deferred, frames, timeout, retries)
        self._pending[requestId] = request
        if timeout is None and self.requestIds:
            # The hot path: no deadline, nothing to wait for; _put's work inline.
            request.tries = 1
            try:
                request.token = self._sendMessage(frames)
            except Exception:
                self._finish(requestId)
                return fail()
        elif self.requestIds or self._onWire is None:
            try:
                self._put(requestId, request)
            except Exception:
                self._finish(requestId)
                return fail()
        return deferred

    def _put(self, requestId: bytes, request: _Request) -> None:
        """Send a try of the request and start its deadline."""
        if not self.requestIds:
            self._onWire = requestId
        request.tries += 1
        request.token = self._sendMessage(request.frames)
        if request.timeout is not None and requestId in self._pending:
            assert self._deadlines is not None
            self._deadlines.add(requestId, request.timeout)
            request.timed = True

    def _finish(self, requestId: bytes, answered: bool = False) -> _Request | None:
        """
        End a request's life, in O(1): take it out of the pending map, mark its deadline
        stale, and take it out of the outbound queue if it never left (a cancelled request
        is not sent later). Without request ids, the next request goes on the wire.
        """
        request = self._pending.pop(requestId, None)
        if request is None:
            return None
        if request.timed and self._deadlines is not None:
            assert request.timeout is not None
            self._deadlines.cancel(requestId, request.timeout)
            request.timed = False
        stillQueued = request.token is not None and self._outbound.remove(
            request.frames, request.token
        )
        request.token = None
        if self._onWire == requestId:
            self._onWire = None
            if not self._closed:
                if request.tries and not stillQueued and not answered:
                    # Ended without its reply: a late one must not answer the next request.
                    self._reconnect()
                self._putNext()
        return request

    def _putNext(self) -> None:
        for requestId, request in self._pending.items():
            if not request.tries:
                self._putOrFail(requestId, request)
                return

    def _putOrFail(self, requestId: bytes, request: _Request) -> None:
        """:meth:`_put`, ending the request with the error if sending it fails."""
        try:
            self._put(requestId, request)
        except Exception:
            self._finish(requestId)
            request.deferred.errback()

    def _reconnect(self) -> None:
        """Drop the connections to our connect endpoints and make new ones (Lazy Pirate)."""
        for endpoint in self.endpoints:
            if endpoint.type == ZmqEndpointType.connect:
                try:
                    self.socket.disconnect(endpoint.address)
                    self.socket.connect(endpoint.address)
                except zmq.ZMQError:
                    self._log.failure("{connection}: reconnect failed", connection=self)
        self._schedulePass()

    def _timedOut(self, requestId: bytes) -> None:
        request = self._pending[requestId]
        request.timed = False
        if request.retriesLeft > 0 and not self._closed:
            request.retriesLeft -= 1
            queued = request.token is not None and self._outbound.holds(
                request.frames, request.token
            )
            if not self.requestIds and not queued:
                self._reconnect()
            if queued:
                # The try never left (no server reachable): it is not queued twice.
                request.tries += 1
                assert self._deadlines is not None and request.timeout is not None
                self._deadlines.add(requestId, request.timeout)
                request.timed = True
            else:
                # Same id: a late reply to an earlier try answers the request just as well.
                self._putOrFail(requestId, request)
            return
        self._finish(requestId)
        request.deferred.errback(ZmqRequestTimeoutError(self._timeoutMessage(request)))

    def _timeoutMessage(self, request: _Request) -> str:
        tries = "1 try" if request.tries == 1 else f"{request.tries} tries"
        text = f"no reply within {request.timeout} s ({tries})"
        if not self._engine.received and self.everConnected is False:
            text += f"; no peer ever connected to {self!r}"
        return text

    def messageReceived(self, message: Message) -> None:
        if self.requestIds:
            if len(message) < 2 or message[1] != b"":
                self._log.debug("{connection}: dropped a reply without envelope", connection=self)
                return
            requestId = message[0]
            body = message[2:]
        else:
            if not message or message[0] != b"" or self._onWire is None:
                self._log.debug("{connection}: dropped an unexpected reply", connection=self)
                return
            requestId = self._onWire
            body = message[1:]
        request = self._finish(requestId, answered=True)
        if request is None:
            self._log.debug(
                "{connection}: dropped a reply to an unknown, timed-out or cancelled request",
                connection=self,
            )
            return
        request.deferred.callback(body)

    def connectionClosed(self) -> None:
        super().connectionClosed()
        if self._deadlines is not None:
            self._deadlines.stop()
        for requestId in list(self._pending):
            request = self._pending.pop(requestId)
            request.timed = False
            request.deferred.errback(
                ZmqConnectionClosed("connection shut down before the reply came")
            )


class ZmqREPConnection(ZmqConnection):
    """
    The server side of request-reply. A ROUTER underneath: requests arrive with their whole
    envelope, which :meth:`reply` sends back, so it answers REQ peers, DEALER peers that
    send ``[b"", *parts]``, and requests that crossed any number of brokers.

    Answer either by overriding :meth:`gotMessage` and calling :meth:`reply`, or by
    overriding :meth:`handleRequest` and returning the reply.
    """

    socketType = zmq.ROUTER
    maxPendingRequests: int = 10_000
    """Most requests remembered while unanswered. Beyond it the oldest is forgotten (and
    logged); its client times out. Bounds memory when a handler never answers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._envelopes: dict[bytes, list[bytes]] = {}
        self._nextMessageId = 0
        super().__init__(*args, **kwargs)

    @property
    def pendingRequests(self) -> int:
        """How many requests are waiting for :meth:`reply`."""
        return len(self._envelopes)

    def messageReceived(self, message: Message) -> None:
        try:
            delimiter = message.index(b"", 1)
        except ValueError:
            self._log.warn(
                "{connection}: dropped a request without an empty delimiter frame",
                connection=self,
            )
            return
        if delimiter == len(message) - 1:
            # An envelope with no body (a PROBE_ROUTER probe, say): libzmq's REP drops it.
            self._log.debug("{connection}: dropped a request with no body", connection=self)
            return
        self._nextMessageId += 1
        messageId = self._nextMessageId.to_bytes(8, "big")
        envelopes = self._envelopes
        envelopes[messageId] = message[: delimiter + 1]
        if len(envelopes) > self.maxPendingRequests:
            del envelopes[next(iter(envelopes))]
            self._log.warn(
                "{connection}: more than {bound} unanswered requests; forgot the oldest",
                connection=self,
                bound=self.maxPendingRequests,
            )
        self.gotMessage(messageId, *message[delimiter + 1 :])

    def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
        """
        Called with an opaque ``messageId`` and the request's frames; answer with
        :meth:`reply`. The default passes the frames to :meth:`handleRequest` and replies
        with what it returns.
        """
        try:
            result = self.handleRequest(*messageParts)
            pending = _pendingResult(result)
            if pending is None:
                self._replyWith(result, messageId)
                return
            pending.addCallback(self._replyWith, messageId)
            pending.addErrback(self._handlerFailed, messageId)
        except Exception:
            self._handlerFailed(None, messageId)

    def handleRequest(self, *messageParts: bytes) -> Any:
        """
        Compute the reply to a request. Return the reply frames (``bytes`` or a sequence of
        ``bytes``), a Deferred of them, or make this a coroutine. A failure is logged and the
        request forgotten (its client times out).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must override handleRequest or gotMessage"
        )

    def _replyWith(self, result: Any, messageId: bytes) -> None:
        if self._closed:
            return
        parts = [result] if isinstance(result, (bytes, bytearray, memoryview)) else list(result)
        try:
            self.reply(messageId, *parts)
        except ZmqUnknownRequestError:
            self._log.warn("{connection}: reply to a forgotten request dropped", connection=self)

    def _handlerFailed(self, failure: Failure | None, messageId: bytes) -> None:
        """Forget the request and log why; ``None`` means the exception being handled."""
        self.forget(messageId)
        if failure is None or not isinstance(failure.value, CancelledError):
            self._log.failure(
                "{connection}: request handler failed; request dropped",
                failure,
                connection=self,
            )

    def forget(self, messageId: bytes) -> bool:
        """
        Drop the request ``messageId`` without replying: for requests that expect no reply
        (a notification) or will never get one. Its client, if it waits, times out.

        :return: whether ``messageId`` was an outstanding request.
        """
        return self._envelopes.pop(messageId, None) is not None

    def reply(self, messageId: bytes, *messageParts: Frame) -> None:
        """
        Send the reply to the request ``messageId``.

        :raises ZmqUnknownRequestError: when ``messageId`` is not an outstanding request
            (already answered, forgotten, or never received).
        :raises ZmqConnectionClosed: after shutdown.
        """
        if self._closed:
            raise ZmqConnectionClosed(f"{self!r} is shut down; cannot reply")
        try:
            envelope = self._envelopes.pop(messageId)
        except KeyError:
            raise ZmqUnknownRequestError(
                f"{messageId!r} is not an outstanding request (answered already?)"
            ) from None
        self.send([*envelope, *messageParts])

    def connectionClosed(self) -> None:
        super().connectionClosed()
        self._envelopes.clear()
