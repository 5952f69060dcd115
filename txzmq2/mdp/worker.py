"""
The Majordomo worker: registers one service with a broker, answers its requests with a
handler, heartbeats, and reconnects with backoff when the broker goes away.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from txzmq2._frames import toFrames
from txzmq2._logging import RateLimitedLogger
from txzmq2._reactor import ReactorLike, asReactorTime
from txzmq2.connection import ZmqSecurity
from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqConnectionClosed
from txzmq2.factory import ZmqFactory
from txzmq2.mdp._protocol import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HEARTBEAT_LIVENESS,
    DISCONNECT,
    HEARTBEAT,
    MMI_NAMESPACE,
    READY,
    REPLY,
    REQUEST,
    Malformed,
    commandName,
    parseWorkerCommand,
    serviceName,
    workerCommand,
)
from txzmq2.routerdealer import ZmqDealerConnection

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

__all__ = ["MajordomoWorker"]


class _WorkerConnection(ZmqDealerConnection):
    """One connection of a worker to its broker; the worker makes a new one to reconnect."""

    def __init__(self, worker: MajordomoWorker) -> None:
        self.worker = worker
        super().__init__(worker.factory, worker.endpoint, security=worker.security)

    def gotMessage(self, *frames: bytes) -> None:
        self.worker._received(self, list(frames))

    def connectionClosed(self) -> None:
        self.worker._connectionClosed(self)


class MajordomoWorker:
    """
    A Majordomo (7/MDP) worker for one service.

    It opens a DEALER connection to the broker and sends READY once on it. Each REQUEST's
    body frames go to ``handler(*frames)``, which returns the reply body (``bytes`` or a
    non-empty sequence of ``bytes``), a Deferred of it, or is a coroutine function; the
    result goes back as the REPLY.

    Worker and broker heartbeat each other every ``heartbeatInterval`` seconds. When the
    broker sends DISCONNECT, or is silent for ``heartbeatLiveness`` intervals while the
    worker holds no request, the worker closes its socket and, after a delay, connects on a
    new one and sends READY again. The delay starts at ``reconnectDelay``, doubles with each
    reconnection up to ``maxReconnectDelay``, and starts over once the broker is heard from.
    Before taking the broker for gone, the worker reads what waits in its socket: a reactor
    held up by application code is not a silent broker.

    - While the worker holds a request (its handler runs), the broker's silence does not
      count: the Guide's brokers heartbeat only idle workers. The request's reply is sent
      when the handler finishes, however long it took, and the countdown starts afresh
      from then (a broker that died meanwhile is noticed ``heartbeatLiveness`` intervals
      after the reply).
    - A request being handled when the connection is replaced (DISCONNECT, or the factory
      closed it): the handler runs on, and its reply is dropped (and logged), since the
      broker it came through is gone or has forgotten this worker. The client's timeout and
      retry recover the request.
    - A handler that raises, fails, or returns something that is not a reply: the failure is
      logged with its traceback, the client gets nothing (its timeout and retry apply), and
      the worker sends DISCONNECT and registers afresh on a new socket at once, because a
      broker takes a worker that has not replied for busy and would never give it work
      again.

    :param factory: the factory giving the context and the reactor (timers run on it).
    :param endpoint: the broker's address, usually a connect endpoint; each reconnection
        makes a new socket on it.
    :param service: the service name (``str`` is encoded as UTF-8).
    :param handler: called with each request's body frames; see above.
    :param heartbeatInterval: seconds between heartbeats; the broker must use the same value.
    :param heartbeatLiveness: heartbeat intervals of silence after which the broker is
        taken for gone.
    :param reconnectDelay: seconds before the first reconnection...
    :param maxReconnectDelay: ...doubling each time up to this.
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`) for every
        socket, reconnections included.
    :raises ValueError: for a service in the ``mmi.`` namespace (brokers refuse it), an empty
        one, or non-positive timings.
    :raises zmq.ZMQError: when the endpoint cannot be connected.
    """

    _log = RateLimitedLogger()

    def __init__(
        self,
        factory: ZmqFactory,
        endpoint: ZmqEndpoint,
        service: bytes | str,
        handler: Callable[..., Any],
        *,
        heartbeatInterval: float = DEFAULT_HEARTBEAT_INTERVAL,
        heartbeatLiveness: int = DEFAULT_HEARTBEAT_LIVENESS,
        reconnectDelay: float = DEFAULT_HEARTBEAT_INTERVAL,
        maxReconnectDelay: float = 32.0,
        security: ZmqSecurity | None = None,
    ) -> None:
        self.service = serviceName(service)
        if self.service.startswith(MMI_NAMESPACE):
            raise ValueError(f"{self.service!r}: services named mmi.* belong to the broker")
        if heartbeatInterval <= 0:
            raise ValueError(f"heartbeatInterval must be > 0, not {heartbeatInterval}")
        if heartbeatLiveness < 1:
            raise ValueError(f"heartbeatLiveness must be >= 1, not {heartbeatLiveness}")
        if reconnectDelay < 0 or maxReconnectDelay < reconnectDelay:
            raise ValueError(
                f"need 0 <= reconnectDelay <= maxReconnectDelay, not {reconnectDelay},"
                f" {maxReconnectDelay}"
            )
        self.factory = factory
        self.endpoint = endpoint
        self.security = security
        self.handler = handler
        self.heartbeatInterval = heartbeatInterval
        self.heartbeatLiveness = heartbeatLiveness
        self.reconnectDelay = reconnectDelay
        self.maxReconnectDelay = maxReconnectDelay
        self._reactor: ReactorLike = factory.reactor
        self._connection: _WorkerConnection | None = None
        self._expiresAt = 0.0
        self._sentSinceTick = False
        self._nextDelay = reconnectDelay
        self._reconnectCall: DelayedCall | None = None
        self._handling: set[Deferred[Any]] = set()
        # Requests in hand that came on the current connection: while there are any, the
        # broker's silence is not held against it.
        self._inHand = 0
        self._stopped = False
        self._heartbeat = LoopingCall(self._guardedTick)
        self._heartbeat.clock = asReactorTime(self._reactor)
        self._open()
        self._heartbeat.start(heartbeatInterval, now=False)
        # Also while it waits to reconnect, when it has no connection for the factory's
        # shutdown to close.
        factory.addShutdownHook(self.shutdown)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.service!r} at {self.endpoint.address}>"

    @property
    def connection(self) -> ZmqDealerConnection | None:
        """The current connection to the broker; ``None`` while waiting to reconnect or
        after :meth:`shutdown`."""
        return self._connection

    def shutdown(self) -> None:
        """
        Send the broker DISCONNECT, close the socket (with the factory's linger, so the
        DISCONNECT can leave), stop every timer, and cancel the Deferreds of requests still
        being handled. Idempotent.
        """
        if self._stopped:
            return
        connection, self._connection = self._connection, None
        if connection is not None:
            self._close(connection, goodbye=True)
        self._stop()

    # -- the connection's life ---------------------------------------------------------------

    def _open(self) -> None:
        self._connection = _WorkerConnection(self)
        self._inHand = 0
        self._expiresAt = self._expiry()
        self._send(READY, self.service)
        self._log.info("{worker}: connected, sent READY", worker=self)

    def _reconnectNow(self) -> None:
        self._reconnectCall = None
        try:
            self._open()
        except ZmqConnectionClosed:
            self._stop()  # the factory is shutting down
        except Exception:
            self._log.failure("{worker}: could not reconnect", worker=self)
            self._connection = None
            self._reconnect("reconnecting failed")

    def _reconnect(self, why: str, goodbye: bool = True, immediately: bool = False) -> None:
        """Close the connection (saying DISCONNECT when ``goodbye``), open another later."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._close(connection, goodbye)
        if immediately:
            delay = 0.0
        else:
            delay = self._nextDelay
            self._nextDelay = min(2 * delay, self.maxReconnectDelay)
        self._log.info(
            "{worker}: {why}; reconnecting in {delay:.2f} s", worker=self, why=why, delay=delay
        )
        self._reconnectCall = self._reactor.callLater(delay, self._reconnectNow)

    def _close(self, connection: _WorkerConnection, goodbye: bool) -> None:
        if goodbye and not connection.closed:
            connection.send(workerCommand(DISCONNECT))
        connection.shutdown()

    def _connectionClosed(self, connection: _WorkerConnection) -> None:
        """A connection closed; if by someone else (the factory), act on it."""
        if connection is not self._connection:
            return  # one the worker closed itself
        self._connection = None
        if self.factory.shuttingDown:
            self._stop()
        else:
            self._reconnect("its connection was shut down", goodbye=False)

    def _stop(self) -> None:
        self._stopped = True
        self.factory.removeShutdownHook(self.shutdown)
        if self._heartbeat.running:
            self._heartbeat.stop()
        if self._reconnectCall is not None and self._reconnectCall.active():
            self._reconnectCall.cancel()
        self._reconnectCall = None
        for handling in list(self._handling):
            handling.cancel()

    # -- heartbeats --------------------------------------------------------------------------

    def _expiry(self) -> float:
        """When the broker, heard from now, is taken for gone if it says nothing more."""
        return float(self._reactor.seconds()) + self.heartbeatLiveness * self.heartbeatInterval

    def _send(self, command: bytes, *frames: bytes) -> None:
        if self._connection is not None:
            self._connection.send(workerCommand(command, *frames))
            self._sentSinceTick = True

    def _guardedTick(self) -> None:
        # An exception escaping a LoopingCall stops it for good, and with it every
        # heartbeat and expiry after it: log it, and beat again next time.
        try:
            self._tick()
        except Exception:
            self._log.failure("{worker}: a heartbeat tick failed", worker=self)

    def _silentTooLong(self) -> bool:
        """Whether the broker's silence has outlasted its liveness (not counted while the
        worker holds a request)."""
        return not self._inHand and self._reactor.seconds() >= self._expiresAt

    def _tick(self) -> None:
        connection = self._connection
        if connection is None:
            return  # waiting to reconnect
        if self._silentTooLong():
            # The broker may only look silent: after application code held the reactor
            # longer than the liveness, this tick runs before the reactor has read what the
            # broker sent meanwhile. Read it first (a DISCONNECT or REQUEST in it acts as
            # ever), and judge only once nothing waits unread; if the read budget ran out
            # first, the next tick judges.
            waiting = connection._readWaiting()
            if connection is not self._connection:
                return  # it read a DISCONNECT, or the connection closed
            if not waiting and self._silentTooLong():
                self._reconnect(
                    f"heard nothing from the broker in {self.heartbeatLiveness} heartbeats"
                )
                return
        # The RFC: peers should not send HEARTBEAT while they send other commands.
        if not self._sentSinceTick:
            self._send(HEARTBEAT)
        self._sentSinceTick = False

    # -- requests ----------------------------------------------------------------------------

    def _received(self, connection: _WorkerConnection, frames: list[bytes]) -> None:
        if connection is not self._connection:
            return
        try:
            command = parseWorkerCommand(frames)
        except Malformed as error:
            self._log.warn(
                "{worker}: dropped a malformed message from the broker ({reason})",
                worker=self,
                reason=str(error),
            )
            return
        if command.command == DISCONNECT:
            # The RFC: send nothing more on this socket; reconnect on a new one.
            self._reconnect("the broker sent DISCONNECT", goodbye=False)
            return
        if command.command not in (HEARTBEAT, REQUEST):
            self._log.warn(
                "{worker}: dropped {command} from the broker (only brokers get those)",
                worker=self,
                command=commandName(command.command),
            )
            return
        # Any command is as good as a heartbeat, and proves the broker is back.
        self._expiresAt = self._expiry()
        self._nextDelay = self.reconnectDelay
        if command.command == REQUEST:
            self._handle(connection, command.client, command.body)

    def _handle(self, connection: _WorkerConnection, client: bytes, body: list[bytes]) -> None:
        self._inHand += 1
        result: Deferred[Any] = maybeDeferred(self.handler, *body)
        self._handling.add(result)
        result.addBoth(self._handled, result, connection)
        result.addCallback(self._replyWith, connection, client)
        result.addErrback(self._handlerFailed, connection)

    def _handled(self, outcome: object, result: Deferred[Any], connection: object) -> object:
        self._handling.discard(result)
        if connection is self._connection:
            self._inHand -= 1
            # The broker may have been silent all along (as the Guide's is to busy workers):
            # its countdown starts now, with the reply.
            self._expiresAt = max(self._expiresAt, self._expiry())
        return outcome

    def _replyWith(self, reply: Any, connection: _WorkerConnection, client: bytes) -> None:
        try:
            frames = toFrames(reply)
        except (TypeError, ValueError):
            raise TypeError(
                f"the handler returned {reply!r:.80}; a reply is bytes or a non-empty"
                " sequence of bytes"
            ) from None
        if connection is not self._connection:
            self._log.info(
                "{worker}: reply to {client!r} dropped: the connection its request came on"
                " is gone (the client retries)",
                worker=self,
                client=client,
            )
            return
        self._send(REPLY, client, b"", *frames)

    def _handlerFailed(self, failure: Failure, connection: _WorkerConnection) -> None:
        if self._stopped and isinstance(failure.value, CancelledError):
            return  # shutdown cancelled it
        self._log.failure(
            "{worker}: the handler failed; the request is dropped", failure, worker=self
        )
        if connection is self._connection:
            # The broker holds this worker busy until it replies, which it now never will.
            self._reconnect("re-registering after a handler failure", immediately=True)
