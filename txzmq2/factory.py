"""
The factory: one ZeroMQ context, one reactor, and the connections made on them.

Invariant: once :meth:`ZmqFactory.shutdown` has started, it ends with every connection shut
down, the context terminated (when the factory made it) and every waiter fired, whatever a
hook or a connection raises on the way.
"""

from __future__ import annotations

import errno
import resource
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import zmq
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from txzmq2.errors import ZmqError

if TYPE_CHECKING:
    from txzmq2._reactor import ReactorLike
    from txzmq2.connection import ZmqConnection

__all__ = ["ZmqFactory"]


class _GlobalReactor:
    """
    The default of :attr:`ZmqFactory.reactor`: the global reactor, imported when first read.

    Only ``__get__``: an instance's own ``reactor``, or a plain class attribute a txZMQ
    program assigns, takes precedence without replacing anything else.
    """

    def __get__(self, instance: object, owner: type | None = None) -> ReactorLike:
        from twisted.internet import reactor

        return cast("ReactorLike", reactor)


class ZmqFactory:
    """
    Owns a :class:`zmq.Context` and tracks the connections created with it.

    :param reactor: the reactor connections register with. ``None`` means the global
        ``twisted.internet.reactor``, imported the first time it is needed (never at import
        time, so importing txzmq2 leaves the choice of reactor to the application).
    :param context: a context to use. When given, :meth:`shutdown` leaves it to its owner;
        when ``None``, the factory creates one and terminates it on shutdown.
    :param ioThreads: number of libzmq I/O threads of the context the factory creates
        (default 1, or the class attribute of a subclass, as txZMQ had it).
    :param lingerPeriod: milliseconds a closed socket keeps trying to deliver queued
        messages (default 100, or the class attribute); set on every socket, so shutdown
        never waits forever.
    :param maxSockets: ZeroMQ sockets the context the factory creates may hold at once
        (``ZMQ_MAX_SOCKETS``; default :attr:`maxSockets`). A connection is one socket; one
        whose socket events are watched is three.
    """

    _log = Logger()
    reactor: ReactorLike = _GlobalReactor()  # type: ignore[assignment]
    """
    The reactor of this factory's connections: the one given, else a class attribute a
    txZMQ program set (``ZmqFactory.reactor = r`` or on a subclass), else the global one,
    imported on first use. Assignable on the instance (``factory.reactor = r``) as in txZMQ.
    """
    ioThreads: int = 1
    """libzmq I/O threads of the context the factory creates."""
    lingerPeriod: int = 100
    """Milliseconds a closed socket keeps trying to deliver what it still holds."""
    maxSockets: int = 16_384
    """``ZMQ_MAX_SOCKETS`` of the context the factory creates (libzmq's own default is
    1023). Each socket also holds a file descriptor: the process's open-file limit
    (``ulimit -n``) must allow as many."""

    def __init__(
        self,
        reactor: ReactorLike | None = None,
        context: zmq.Context[Any] | None = None,
        ioThreads: int | None = None,
        lingerPeriod: int | None = None,
        maxSockets: int | None = None,
    ) -> None:
        # None: the class attribute, which txZMQ users set on a subclass.
        if ioThreads is not None:
            self.ioThreads = ioThreads
        if lingerPeriod is not None:
            self.lingerPeriod = lingerPeriod
        if maxSockets is not None:
            self.maxSockets = maxSockets
        if reactor is not None:
            self.reactor = reactor
        self._ownsContext = context is None
        if context is None:
            context = zmq.Context(self.ioThreads)
            # Before the first socket: libzmq sizes its socket table when that is made.
            context.set(zmq.MAX_SOCKETS, min(self.maxSockets, context.get(zmq.SOCKET_LIMIT)))
        self.context: zmq.Context[Any] = context
        self.connections: set[ZmqConnection] = set()
        self._shutdownWaiters: list[Deferred[None]] | None = None
        self._shutdownDone = False
        self._shutdownTrigger: Any = None
        self._shutdownHooks: list[Callable[[], object]] = []

    @property
    def shuttingDown(self) -> bool:
        """True from the first :meth:`shutdown` on: new connections are refused."""
        return self._shutdownWaiters is not None or self._shutdownDone

    def _newSocket(self, socketType: int) -> zmq.Socket[bytes]:
        """
        A new socket of the context, or an error that names the limit that refused it.

        :raises ZmqError: when the context's ``MAX_SOCKETS`` or the process's open-file
            limit is reached.
        """
        try:
            return cast("zmq.Socket[bytes]", self.context.socket(socketType))
        except zmq.ZMQError as error:
            if error.errno != errno.EMFILE:
                raise
            limit = self.context.get(zmq.MAX_SOCKETS)
            files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            raise ZmqError(
                f"{self!r}: no new ZeroMQ socket: the context's MAX_SOCKETS ({limit}; "
                f"ZmqFactory(maxSockets=...)) or the process's open-file limit ({files}; "
                "ulimit -n) is reached. A connection costs one socket and file, three while "
                "its socket events are watched."
            ) from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} with {len(self.connections)} connection(s)>"

    def addShutdownHook(self, hook: Callable[[], object]) -> None:
        """
        Call ``hook()`` when :meth:`shutdown` starts, before the connections close: for
        objects that own connections and timers of their own (a worker waiting to
        reconnect has no connection for the shutdown to close). An exception it raises is
        logged.
        """
        self._shutdownHooks.append(hook)

    def removeShutdownHook(self, hook: Callable[[], object]) -> None:
        """Forget a hook given to :meth:`addShutdownHook` (its object shut down first)."""
        if hook in self._shutdownHooks:
            self._shutdownHooks.remove(hook)

    def registerForShutdown(self) -> None:
        """
        Shut the factory down in the reactor's ``before shutdown`` phase; the reactor waits
        for the context to finish terminating.
        """
        if self._shutdownTrigger is None:
            self._shutdownTrigger = self.reactor.addSystemEventTrigger(
                "before", "shutdown", self._shutdownFromTrigger
            )

    def _shutdownFromTrigger(self) -> Deferred[None]:
        # The trigger is being consumed; removing it now would warn.
        self._shutdownTrigger = None
        return self.shutdown()

    def shutdown(self) -> Deferred[None]:
        """
        Shut down every connection, then terminate the context if the factory created it.

        Idempotent: every call returns a new Deferred that fires (with ``None``) once the
        context is terminated. Termination waits up to ``lingerPeriod`` for queued messages
        to leave, so it runs in a short-lived thread while the reactor is running, and
        inline when it is not.
        """
        if self._shutdownDone:
            return succeed(None)
        if self._shutdownWaiters is not None:
            waiter: Deferred[None] = Deferred()
            self._shutdownWaiters.append(waiter)
            return waiter
        self._shutdownWaiters = []
        hooks, self._shutdownHooks = self._shutdownHooks, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                self._log.failure("{factory}: a shutdown hook failed", factory=self)
        first: Deferred[None] = Deferred()
        self._shutdownWaiters.append(first)
        # Errbacks fired by a closing connection may try to open new ones (a reconnect on
        # ZmqConnectionClosed): shuttingDown refuses them, and the loop catches any straggler.
        while self.connections:
            connection = self.connections.pop()
            try:
                connection.shutdown()
            except Exception:
                # Its socket is closed whatever its hooks raised (ZmqConnection.shutdown):
                # go on, so the context still terminates and every waiter fires.
                self._log.failure(
                    "{factory}: {connection!r} failed to shut down",
                    factory=self,
                    connection=connection,
                )
        if not self._ownsContext:
            self._finishShutdown()
        elif not getattr(self.reactor, "running", False):
            # Nothing to block: terminate here (a script after reactor.run() returned).
            try:
                self.context.term()
            finally:
                self._finishShutdown()
        else:
            self._termInThread()
        return first

    def _termInThread(self) -> None:
        # context.term() blocks until every socket's linger expires; keep that off the
        # reactor thread and come back to it when done.
        reactor = self.reactor

        def term() -> None:
            try:
                self.context.term()
            finally:
                reactor.callFromThread(done)

        def done() -> None:
            thread.join()
            self._finishShutdown()

        thread = threading.Thread(target=term, name="txzmq2-context-term")
        thread.start()

    def _finishShutdown(self) -> None:
        self._shutdownDone = True
        waiters, self._shutdownWaiters = self._shutdownWaiters or [], None
        if self._shutdownTrigger is not None:
            self.reactor.removeSystemEventTrigger(self._shutdownTrigger)
            self._shutdownTrigger = None
        for waiter in waiters:
            waiter.callback(None)  # a raising callback is the Deferred's to log, not ours
