"""
ZmqSocket: any socket type, read by asking (``await sock.receive()``, ``async for``).

Invariant: a message read from libzmq goes to exactly one place: the oldest pending
:meth:`ZmqSocket.receive`, or the buffer, and the buffer never holds more than
``receiveBufferSize`` messages (reading pauses instead, so libzmq's own queues and then the
sender hold the rest).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.python.failure import Failure

from txzmq2._capabilities import creatingSocketOfType
from txzmq2._reactor import asReactorTime
from txzmq2.connection import Message, ZmqConnection, ZmqSecurity
from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqConnectionClosed, ZmqTimeoutError
from txzmq2.factory import ZmqFactory

__all__ = ["ZmqSocket"]


class ZmqSocket(ZmqConnection):
    """
    A socket of any type whose messages are asked for, for ``async def`` code::

        sock = ZmqSocket(factory, zmq.PULL, ZmqEndpoint("bind", "tcp://127.0.0.1:*"))
        async for message in sock:        # each message: list[bytes]
            ...

    ``send`` works as on every connection. Messages that arrive while no :meth:`receive`
    waits are buffered, up to :attr:`receiveBufferSize`; then reading pauses, so libzmq's
    queues fill and backpressure reaches the sender, until :meth:`receive` takes one.

    :param factory: the factory giving the context and reactor.
    :param socketType: the ZeroMQ socket type, such as ``zmq.PULL`` or ``zmq.DEALER``
        (a draft type gives each message's data only: its routing id or group needs the
        classes of :mod:`txzmq2.draft`).
    :param endpoint: an endpoint to bind or connect right away.
    :param identity: the socket's routing id (``ZMQ_ROUTING_ID``).
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.connection.ZmqSecurity`).
    :raises ZmqUnsupportedError: for a draft socket type without pyzmq's draft API.
    """

    receiveBufferSize: int = 1000
    """Most messages kept while no :meth:`receive` waits; beyond it reading pauses."""

    def __init__(
        self,
        factory: ZmqFactory,
        socketType: int,
        endpoint: ZmqEndpoint | None = None,
        identity: bytes | str | None = None,
        security: ZmqSecurity | None = None,
    ) -> None:
        # The base class reads it as a class attribute; here it is per instance (setattr:
        # it is a ClassVar there, as for every fixed-type connection). Whether the socket
        # reads follows from it.
        setattr(self, "socketType", socketType)  # noqa: B010
        self._buffer: deque[Message] = deque()
        self._waiters: deque[Deferred[Message]] = deque()
        # Reading is paused by a full buffer, by the user (pauseProducing), or both; it
        # resumes only when neither holds it.
        self._bufferFull = False
        self._userPaused = False
        with creatingSocketOfType(socketType):
            super().__init__(factory, endpoint, identity, security)

    def receive(self, timeout: float | None = None) -> Deferred[Message]:
        """
        The next message: at once if one is buffered, else when it arrives. Cancelling the
        Deferred loses no message (the next one goes to the next :meth:`receive`).

        :param timeout: seconds to wait, or ``None`` to wait until shutdown.
        :return: a Deferred firing with the message's frames; failing with
            :class:`~txzmq2.errors.ZmqTimeoutError` after ``timeout`` seconds, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` once the socket is shut down
            (messages still buffered then are dropped with it).
        """
        if self.closed:
            return fail(ZmqConnectionClosed(f"{self!r} is shut down"))
        if self._buffer:
            message = self._buffer.popleft()
            if self._bufferFull and len(self._buffer) < self.receiveBufferSize:
                self._bufferFull = False
                self._resumeReading()
            return succeed(message)
        waiter: Deferred[Message] = Deferred(self._waiters.remove)
        self._waiters.append(waiter)
        if timeout is not None:

            def timedOut(failure: Failure) -> Failure:
                if isinstance(failure.value, DeferredTimeout):
                    raise ZmqTimeoutError(f"no message within {timeout} s")
                return failure

            waiter.addTimeout(timeout, asReactorTime(self.factory.reactor)).addErrback(timedOut)
        return waiter

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        while True:
            try:
                yield await self.receive()
            except ZmqConnectionClosed:
                return

    def messageReceived(self, message: Message) -> None:
        if self._waiters:
            self._waiters.popleft().callback(message)
            return
        self._buffer.append(message)
        if len(self._buffer) >= self.receiveBufferSize and not self._bufferFull:
            self._bufferFull = True
            # The base class stops its read pass right after this message.
            super().pauseProducing()

    def pauseProducing(self) -> None:
        """Stop reading until :meth:`resumeProducing` (buffered messages stay)."""
        self._userPaused = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        """Read again, unless the buffer is full."""
        self._userPaused = False
        self._resumeReading()

    def _resumeReading(self) -> None:
        if not self._userPaused and not self._bufferFull:
            super().resumeProducing()

    def connectionClosed(self) -> None:
        self._buffer.clear()
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            waiter.errback(ZmqConnectionClosed(f"{self!r} shut down"))
        super().connectionClosed()
