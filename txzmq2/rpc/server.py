"""
RPCServer: a ZmqREPConnection that decodes calls, runs a service's exposed methods and
answers with their results or their errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import zmq
from twisted.internet.defer import Deferred
from twisted.logger import LogLevel
from twisted.python.failure import Failure

from txzmq2._echo import boundedRepr, describeError
from txzmq2.errors import ZmqUnknownRequestError
from txzmq2.reqrep import ZmqREPConnection, _pendingResult
from txzmq2.rpc import _wire
from txzmq2.rpc._methods import exposedMethods
from txzmq2.rpc.serializers import MsgpackSerializer, Serializer

if TYPE_CHECKING:
    from txzmq2.connection import ZmqSecurity
    from txzmq2.endpoint import ZmqEndpoint
    from txzmq2.factory import ZmqFactory
    from txzmq2.monitor import ZmqMonitorEvent

__all__ = ["DEFAULT_MAX_CONCURRENCY", "DEFAULT_MAX_MESSAGE_SIZE", "RPCServer"]

DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
"""``RPCServer``'s default ``maxMessageSize``: 1 MiB."""

DEFAULT_MAX_CONCURRENCY = 1000
"""``RPCServer``'s default ``maxConcurrency``: below the REP layer's ``maxPendingRequests``,
so a flood of slow calls pauses reading before any pending call is forgotten."""


class RPCServer(ZmqREPConnection):
    """
    Serve the methods of ``service`` marked with :func:`~txzmq2.rpc.expose`.

    A ROUTER underneath that keeps each request's envelope, like its base class
    :class:`~txzmq2.ZmqREPConnection`: it answers :class:`~txzmq2.rpc.RPCClient` directly, or
    behind ROUTER/DEALER queues (:class:`~txzmq2.ZmqProxy`) shared by several servers.

    Every call is answered exactly once: with the method's result, or with an error reply
    the client sees as :class:`~txzmq2.errors.RemoteError` (the method raised, its Deferred
    or coroutine failed, or the call was refused: see ``docs/rpc.md``). Nothing a client
    sends stops the server; what cannot be answered is logged and dropped.

    Calls run concurrently: a method returning a Deferred or a coroutine does not hold up
    the next call. Methods returning a plain value are answered at once.

    :param factory: the factory giving the context and reactor.
    :param endpoint: an endpoint to bind or connect right away (to a queue's backend, say).
    :param service: the object whose exposed methods are served.
    :param serializer: the payload encoding; :class:`~txzmq2.rpc.MsgpackSerializer` when
        ``None``. Clients must use one of the same name.
    :param maxConcurrency: the most calls (and notifies) whose Deferred or coroutine may be
        running at once (default :data:`DEFAULT_MAX_CONCURRENCY`, 1000; ``None``: no
        bound, which lets a flood of slow calls grow memory). At the bound it stops reading, so
        further calls wait in libzmq's queues and backpressure reaches the clients; none
        is dropped.
    :param sendTracebacks: send the remote traceback text with error replies (it reveals
        the server's code: keep it for trusted clients).
    :param maxMessageSize: ``ZMQ_MAXMSGSIZE``, in bytes: libzmq disconnects a peer that sends
        a bigger frame (its calls time out; it reconnects). Default
        :data:`DEFAULT_MAX_MESSAGE_SIZE` (1 MiB); ``None`` for no limit.
    :param identity: the socket's routing id.
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`).
    :raises ValueError: when ``service`` exposes no method, or for a bad ``maxConcurrency``.
    """

    monitored = True
    """Socket events from creation: a disconnect is all the trace a peer dropped for
    ``maxMessageSize`` leaves, and ``whenConnected`` sees the first handshake."""

    def __init__(
        self,
        factory: ZmqFactory,
        endpoint: ZmqEndpoint | None,
        service: object,
        serializer: Serializer | None = None,
        maxConcurrency: int | None = DEFAULT_MAX_CONCURRENCY,
        sendTracebacks: bool = False,
        maxMessageSize: int | None = DEFAULT_MAX_MESSAGE_SIZE,
        identity: bytes | str | None = None,
        security: ZmqSecurity | None = None,
    ) -> None:
        if maxConcurrency is not None and maxConcurrency < 1:
            raise ValueError(f"maxConcurrency must be >= 1 or None, not {maxConcurrency}")
        self.service = service
        self.serializer: Serializer = MsgpackSerializer() if serializer is None else serializer
        _wire.checkSerializerName(self.serializer.name)
        self.maxConcurrency = maxConcurrency
        self.sendTracebacks = sendTracebacks
        # Read by ZmqConnection.__init__, which applies it before any bind or connect.
        self.maxMessageSize = maxMessageSize
        self._methods = exposedMethods(service)
        name = self.serializer.name
        self._requestKinds = {
            _wire.header(_wire.CALL, name): _wire.CALL,
            _wire.header(_wire.NOTIFY, name): _wire.NOTIFY,
        }
        self._replyHeader = _wire.header(_wire.REPLY, name)
        self._errorHeader = _wire.header(_wire.ERROR, name)
        self._running = 0
        self._atLimit = False
        self._pausedByConsumer = False
        super().__init__(factory, endpoint, identity, security)
        if self._events is not None:
            # libzmq disconnects a peer that sends more than maxMessageSize without telling
            # the socket's owner anything else: this line is all the trace there is.
            self.monitor(zmq.EVENT_DISCONNECTED, self._peerDisconnected)

    def _peerDisconnected(self, event: ZmqMonitorEvent) -> None:
        self._log.debug(
            "{server}: a peer disconnected from {endpoint} (libzmq also disconnects peers "
            "sending messages over maxMessageSize, {maxMessageSize} bytes)",
            server=self,
            endpoint=event.endpoint,
            maxMessageSize=self.maxMessageSize,
        )

    @property
    def methodNames(self) -> list[str]:
        """The names of the exposed methods, sorted."""
        return sorted(self._methods)

    @property
    def runningCalls(self) -> int:
        """Calls (and notifies) whose Deferred or coroutine has not finished yet."""
        return self._running

    # -- receiving ---------------------------------------------------------------------------

    def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
        """Decode one request and run it (called by the REP layer with its envelope kept)."""
        kind = self._requestKinds.get(messageParts[0]) if len(messageParts) == 2 else None
        if kind is None:
            refusal, answerable = _wire.diagnose(messageParts, self.serializer.name)
            self._refuse(messageId, refusal, answerable)
            return
        notify = kind == _wire.NOTIFY
        if notify:
            # Never answered: the envelope must not wait for a reply among the pending ones.
            self.forget(messageId)
        try:
            name, args, kwargs = _wire.decodeCall(messageParts[1], self.serializer)
            method = self._methods.get(name)
            if method is None:
                raise _wire.Refusal(_wire.NO_SUCH_METHOD, f"no exposed method {boundedRepr(name)}")
            method.checkArguments(args, kwargs)
        except _wire.Refusal as refusal:
            self._refuse(messageId, refusal, not notify)
            return
        try:
            result = method.function(*args, **kwargs)
        except Exception as error:
            failure = Failure(error)  # type: ignore[no-untyped-call, unused-ignore]
            self._methodFailed(messageId, notify, name, failure)
            return
        pending = _pendingResult(result)
        if pending is not None:
            self._whenDone(pending, messageId, notify, name)
        elif not notify:
            self._replyWithResult(messageId, name, result)

    def _whenDone(self, result: Deferred[Any], messageId: bytes, notify: bool, name: str) -> None:
        self._running += 1
        result.addBoth(self._done, messageId, notify, name)
        # After addBoth: a Deferred that has already fired is done by now.
        if self.maxConcurrency is not None and self._running >= self.maxConcurrency:
            if not self._atLimit:
                self._atLimit = True
                super().pauseProducing()

    def _done(self, result: object, messageId: bytes, notify: bool, name: str) -> None:
        self._running -= 1
        limit = self.maxConcurrency
        if self._atLimit and (limit is None or self._running < limit):
            self._atLimit = False
            if not self._pausedByConsumer:
                super().resumeProducing()
        try:
            if isinstance(result, Failure):
                self._methodFailed(messageId, notify, name, result)
            elif not notify:
                self._replyWithResult(messageId, name, result)
        except Exception:
            self._log.failure("{server}: answering {method}() failed", server=self, method=name)

    # -- answering ---------------------------------------------------------------------------

    def _replyWithResult(self, messageId: bytes, name: str, result: object) -> None:
        try:
            payload = self.serializer.dumps(result)
        except Exception as error:
            message = (
                f"{name}() returned a value {self.serializer.name} cannot encode: "
                f"{type(error).__name__}: {describeError(error)}"
            )
            self._log.warn("{server}: {message}", server=self, message=message)
            self._answerError(messageId, _wire.UNSERIALIZABLE_RESULT, message, None)
            return
        self._answer(messageId, self._replyHeader, payload)

    def _methodFailed(self, messageId: bytes, notify: bool, name: str, failure: Failure) -> None:
        error = cast(BaseException, failure.value)
        self._log.failure(
            "{server}: {method}() raised {error!r}"
            + ("" if notify else "; its caller gets a RemoteError"),
            failure,
            level=LogLevel.info,
            server=self,
            method=name,
            error=error,
        )
        if not notify:
            traceback = failure.getTraceback() if self.sendTracebacks else None
            self._answerError(
                messageId, type(error).__name__, describeError(error, None), traceback
            )

    def _refuse(self, messageId: bytes, refusal: _wire.Refusal, answerable: bool) -> None:
        if answerable:
            self._log.debug(
                "{server}: refused a request: {remoteType}: {message}",
                server=self,
                remoteType=refusal.remoteType,
                message=refusal.message,
            )
            self._answerError(messageId, refusal.remoteType, refusal.message, None)
        else:
            self.forget(messageId)
            self._log.warn(
                "{server}: dropped a notify: {remoteType}: {message}",
                server=self,
                remoteType=refusal.remoteType,
                message=refusal.message,
            )

    def _answerError(
        self, messageId: bytes, remoteType: str, message: str, traceback: str | None
    ) -> None:
        try:
            payload = _wire.encodeError(self.serializer, remoteType, message, traceback)
        except Exception:
            self.forget(messageId)
            self._log.failure("{server}: cannot encode an error reply; dropped", server=self)
            return
        self._answer(messageId, self._errorHeader, payload)

    def _answer(self, messageId: bytes, header: bytes, payload: bytes) -> None:
        if self._closed:
            self._log.debug("{server}: shut down; a reply was dropped", server=self)
            return
        try:
            self.reply(messageId, header, payload)
        except ZmqUnknownRequestError:
            # Evicted beyond maxPendingRequests (already logged by the REP layer).
            self._log.warn("{server}: reply to a forgotten request dropped", server=self)

    # -- flow control ------------------------------------------------------------------------

    def pauseProducing(self) -> None:
        """Stop reading requests (a consumer of this connection asks); see the base class."""
        self._pausedByConsumer = True
        super().pauseProducing()

    def resumeProducing(self) -> None:
        """Read requests again, unless ``maxConcurrency`` calls are running."""
        self._pausedByConsumer = False
        if not self._atLimit:
            super().resumeProducing()
