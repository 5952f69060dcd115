"""
Socket events (connected, accepted, disconnected, handshake failures...) as callbacks and
Deferreds, read on the reactor.

libzmq reports a socket's events on an inproc PAIR socket (``zmq_socket_monitor``), and only
one such monitor can exist per socket. So each connection has at most one event stream
(:class:`_EventStream`), started on the first ``whenConnected``/``monitor`` call (or at
creation for a connection with ``monitored`` set, so that no early event is missed), and any
number of :class:`ZmqSocketMonitor` views on it. A connection that never asks pays nothing.

inproc connections produce no events; ``whenConnected`` applies to tcp, ipc and the other
network transports.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import zmq
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure
from zmq.utils.monitor import parse_monitor_message

from txzmq2._logging import RateLimitedLogger
from txzmq2.connection import Message, ZmqConnection
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import ZmqConnectionClosed, ZmqTimeoutError

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

__all__ = ["HANDSHAKE_FAILURES", "ZmqMonitorEvent", "ZmqSocketMonitor"]

_addresses = itertools.count(1)

HANDSHAKE_FAILURES = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
"""Mask of every handshake failure event (a refused CURVE key, a wrong PLAIN password...)."""


class ZmqMonitorEvent(NamedTuple):
    """
    One socket event.

    :param event: the event, a ``zmq.Event`` such as ``zmq.EVENT_HANDSHAKE_SUCCEEDED``.
    :param value: the event's value (a file descriptor, an errno, a ZAP status code...).
    :param endpoint: the endpoint it concerns.
    """

    event: int
    value: int
    endpoint: str


class ZmqSocketMonitor:
    """
    A view on one connection's socket events: each event in ``events`` goes to
    ``callback`` (if any) and to the Deferreds of :meth:`waitFor`.

    Get one from :meth:`ZmqConnection.monitor`. It stops with its connection.
    """

    _log = RateLimitedLogger()

    def __init__(
        self,
        stream: _EventStream,
        events: int,
        callback: Callable[[ZmqMonitorEvent], object] | None,
    ) -> None:
        self._stream = stream
        self.events = events
        self.callback = callback
        self._waiters: list[tuple[int, Deferred[ZmqMonitorEvent], DelayedCall | None]] = []
        self.stopped = False

    def waitFor(self, event: int, timeout: float | None = None) -> Deferred[ZmqMonitorEvent]:
        """
        Wait for the next event matching the mask ``event``.

        :return: a Deferred firing with the :class:`ZmqMonitorEvent`; failing with
            :class:`~txzmq2.errors.ZmqTimeoutError` after ``timeout`` seconds, or with
            :class:`~txzmq2.errors.ZmqConnectionClosed` if the monitor stops first.
        """
        if self.stopped:
            return fail(ZmqConnectionClosed("monitor stopped"))
        waiter: Deferred[ZmqMonitorEvent] = Deferred(lambda d: self._forget(d))
        timer = None
        if timeout is not None:
            timer = self._stream.reactor.callLater(timeout, self._timedOut, waiter, event)
        self._waiters.append((event, waiter, timer))
        return waiter

    def stop(self) -> None:
        """Stop delivering events; pending :meth:`waitFor` Deferreds fail. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        self._stream.views.discard(self)
        waiters, self._waiters = self._waiters, []
        for _, waiter, timer in waiters:
            _cancel(timer)
            waiter.errback(ZmqConnectionClosed("monitor stopped"))

    def _deliver(self, event: ZmqMonitorEvent) -> None:
        if self.stopped or not event.event & self.events:
            return
        if self.callback is not None:
            try:
                self.callback(event)
            except Exception:
                self._log.failure("monitor callback failed on {event}", event=event)
        matched = [w for w in self._waiters if w[0] & event.event]
        if matched:
            self._waiters = [w for w in self._waiters if not w[0] & event.event]
            for _, waiter, timer in matched:
                _cancel(timer)
                waiter.callback(event)

    def _forget(self, waiter: Deferred[ZmqMonitorEvent]) -> None:
        for entry in self._waiters:
            if entry[1] is waiter:
                self._waiters.remove(entry)
                _cancel(entry[2])
                return

    def _timedOut(self, waiter: Deferred[ZmqMonitorEvent], event: int) -> None:
        self._waiters = [w for w in self._waiters if w[1] is not waiter]
        waiter.errback(ZmqTimeoutError(f"no socket event {zmq.Event(event)!r} in time"))


class _EventReader(ZmqConnection):
    """The PAIR socket reading a monitored connection's events."""

    socketType = zmq.PAIR
    monitored = False  # no monitor of the monitor
    # libzmq's I/O thread sends events with a blocking send, holding the monitor's lock:
    # an event pipe at its high-water mark (a reactor not reading) would block it, and with
    # it the owner's disable_monitor() and the context's termination. 0: no limit.
    recvHighWaterMark = 0

    def __init__(self, stream: _EventStream, address: str) -> None:
        self._stream = stream
        super().__init__(stream.connection.factory, ZmqEndpoint(ZmqEndpointType.connect, address))
        # Owned by the monitored connection, which must close it only after stopping
        # libzmq's monitor (see ZmqConnection.shutdown); the factory must not close it first.
        self.factory.connections.discard(self)

    def connectionLost(self, reason: Failure) -> None:
        # The reactor closes descriptors in any order when it stops. Closing this reader
        # while libzmq's monitor still sends to it would block libzmq's I/O thread on the
        # next event (and the owner's disable_monitor() behind it): shut the owner down,
        # which stops the monitor first and then closes this reader.
        self._stream.connection.shutdown()

    def messageReceived(self, message: Message) -> None:
        try:
            parsed: Any = parse_monitor_message(message)
            event = ZmqMonitorEvent(
                int(parsed["event"]),
                int(parsed["value"]),
                parsed["endpoint"].decode("utf-8", "replace"),
            )
        except Exception:
            self._log.warn("{connection}: unreadable monitor message dropped", connection=self)
            return
        self._stream.dispatch(event)


class _EventStream:
    """
    The one event stream of a connection: keeps the connected-peer count for
    ``whenConnected`` and fans events out to :class:`ZmqSocketMonitor` views.
    """

    def __init__(self, connection: ZmqConnection) -> None:
        self.connection = connection
        self.reactor = connection.factory.reactor
        self.views: set[ZmqSocketMonitor] = set()
        # Counts, not fds: handshake results carry no fd and need not come in accept order.
        # Every connection that fails its handshake also disconnects, so the disconnects
        # of connected peers are (disconnected - failed).
        self.succeeded = 0
        self.failed = 0
        self.disconnected = 0
        self.lastHandshake: ZmqMonitorEvent | None = None
        address = f"inproc://txzmq2-monitor-{next(_addresses)}-{id(self):x}"
        # Never MONITOR_STOPPED: libzmq sends it with a blocking send, which hangs forever
        # if this reader was closed first (the reactor closes descriptors in any order).
        connection.socket.monitor(address, zmq.EVENT_ALL & ~zmq.EVENT_MONITOR_STOPPED)
        try:
            self.reader = _EventReader(self, address)
        except BaseException:
            connection.socket.disable_monitor()
            raise
        self.connectedView = ZmqSocketMonitor(self, zmq.EVENT_HANDSHAKE_SUCCEEDED, None)
        self.views.add(self.connectedView)

    def dispatch(self, event: ZmqMonitorEvent) -> None:
        kind = event.event
        if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.succeeded += 1
            self.lastHandshake = event
        elif kind & HANDSHAKE_FAILURES:
            self.failed += 1
        elif kind == zmq.EVENT_DISCONNECTED:
            self.disconnected += 1
        for view in list(self.views):
            view._deliver(event)

    @property
    def peers(self) -> int:
        """Peers connected with a completed handshake, as far as the events tell."""
        return self.succeeded - max(0, self.disconnected - self.failed)

    def whenConnected(self, timeout: float | None) -> Deferred[ZmqMonitorEvent]:
        if self.peers > 0 and self.lastHandshake is not None:
            return succeed(self.lastHandshake)
        return self.connectedView.waitFor(zmq.EVENT_HANDSHAKE_SUCCEEDED, timeout)

    def view(
        self, events: int, callback: Callable[[ZmqMonitorEvent], object] | None
    ) -> ZmqSocketMonitor:
        monitor = ZmqSocketMonitor(self, events, callback)
        self.views.add(monitor)
        return monitor

    def close(self) -> None:
        for view in list(self.views):
            view.stop()
        self.reader.shutdown()


def _cancel(timer: DelayedCall | None) -> None:
    if timer is not None and timer.active():
        timer.cancel()


# The connection module does not import this one (no import cycle): it finds the stream here.
ZmqConnection._eventSourceType = _EventStream
