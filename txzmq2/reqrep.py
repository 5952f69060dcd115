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
from typing import TYPE_CHECKING, Any

import zmq
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.python.failure import Failure

from txzmq2.connection import Frame, Message, ZmqConnection, _ownFrames
from txzmq2.errors import ZmqConnectionClosed, ZmqRequestTimeoutError, ZmqUnknownRequestError

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

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
    ``_finish`` takes it out, which also stops its timer.
    """

    __slots__ = ("deferred", "frames", "retriesLeft", "timeout", "timer")

    def __init__(
        self, deferred: Deferred[Message], frames: list[bytes], timeout: float | None, retries: int
    ) -> None:
        self.deferred = deferred
        self.frames = frames
        self.timeout = timeout
        self.retriesLeft = retries
        self.timer: DelayedCall | None = None


class ZmqREQConnection(ZmqConnection):
    """
    The client side of request-reply. A DEALER underneath, so any number of requests may be
    outstanding; each reply is matched to its request by id.

    Talks to REP and ROUTER peers directly, or through ROUTER/DEALER brokers.
    """

    socketType = zmq.DEALER
    defaultRequestTimeout: float | None = None
    """Seconds a request waits for its reply when ``sendMsg`` is given no ``timeout``
    (``None``: forever)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._pending: dict[bytes, _Request] = {}
        self._requestIdPrefix = os.urandom(4)
        self._nextRequestId = 0
        super().__init__(*args, **kwargs)

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
            after the last try, ``CancelledError`` when cancelled, or
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
            frames = _ownFrames([requestId, b"", *parts])
        except Exception:
            return fail()
        # Registered before sending: code running inside send() (a producer) may shut the
        # connection down, and the request must then fail like every other pending one.
        request = _Request(deferred, frames, timeout, retries)
        self._pending[requestId] = request
        try:
            self._sendMessage(frames)
        except Exception:
            self._finish(requestId)
            return fail()
        if timeout is not None and requestId in self._pending:
            self._startTimer(requestId, request)
        return deferred

    def _startTimer(self, requestId: bytes, request: _Request) -> None:
        # Only for a request with a timeout (callers check: a call less on the hot path).
        request.timer = self._reactor.callLater(request.timeout, self._timedOut, requestId)

    def _finish(self, requestId: bytes) -> _Request | None:
        """
        End a request's life: take it out of the pending map, stop its timer, and take it
        out of the outbound queue if it never left (a cancelled request is not sent later).
        """
        request = self._pending.pop(requestId, None)
        if request is not None:
            if request.timer is not None:
                if request.timer.active():
                    request.timer.cancel()
                request.timer = None
            if self._outbound.length:
                self._outbound.discard(request.frames)
        return request

    def _timedOut(self, requestId: bytes) -> None:
        request = self._pending.get(requestId)
        if request is None:
            return
        request.timer = None
        if request.retriesLeft > 0 and not self._closed:
            request.retriesLeft -= 1
            # Same id: a late reply to an earlier try answers the request just as well.
            # A try still waiting in the outbound queue (no server reachable) is not
            # queued twice.
            if self._outbound.find(request.frames) is None:
                self._sendMessage(request.frames)
            if requestId in self._pending:
                self._startTimer(requestId, request)
            return
        self._finish(requestId)
        request.deferred.errback(ZmqRequestTimeoutError(f"no reply within {request.timeout} s"))

    def messageReceived(self, message: Message) -> None:
        if len(message) < 2 or message[1] != b"":
            self._log.debug("{connection}: dropped a reply without envelope", connection=self)
            return
        request = self._finish(message[0])
        if request is None:
            self._log.debug(
                "{connection}: dropped a reply to an unknown, timed-out or cancelled request",
                connection=self,
            )
            return
        request.deferred.callback(message[2:])

    def _connectionClosed(self) -> None:
        for requestId in list(self._pending):
            request = self._finish(requestId)
            if request is not None:
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

    def _connectionClosed(self) -> None:
        self._envelopes.clear()
