"""
ZmqConnection: one ZeroMQ socket on the reactor, the public face of a connection.

Behind it, one owner per invariant: the FD engine (:mod:`txzmq2._engine`, the only code that
reads the socket and its ``EVENTS``), the outbound side (:mod:`txzmq2._outbound`: what libzmq
refused for now, bounded, with flush, retry, drain waiters and producer pacing), the socket
options (:mod:`txzmq2._options`) and the security set-up (:mod:`txzmq2._security`). Socket
types subclass this and keep to framing: they never touch the FD, ``EVENTS`` or the queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast

import zmq
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPushProducer, IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zmq.backend import Socket as _BaseSocket
from zope.interface import implementer

from txzmq2._engine import _Engine
from txzmq2._fastpath import nativeSocket
from txzmq2._frames import Frame, Message, MessageLike, toFrames
from txzmq2._logging import RateLimitedLogger
from txzmq2._options import applyOptions
from txzmq2._outbound import _Outbound
from txzmq2._security import ZmqSecurity
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import (
    ZmqConnectionClosed,
    ZmqEndpointError,
    ZmqStateError,
    ZmqUnroutableError,
)

if TYPE_CHECKING:
    from txzmq2._reactor import ReactorLike
    from txzmq2.factory import ZmqFactory
    from txzmq2.monitor import ZmqMonitorEvent, ZmqSocketMonitor

__all__ = [
    "Frame",
    "Message",
    "MessageLike",
    "ZmqConnection",
    "ZmqConnectionStats",
    "ZmqEndpoint",
    "ZmqEndpointType",
    "ZmqSecurity",
]

_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
# Below this size pyzmq copies a frame anyway; above it, zero-copy sends pay off.
_ZERO_COPY_MIN = zmq.COPY_THRESHOLD
_EHOSTUNREACH = zmq.EHOSTUNREACH

# Socket types that refuse (EAGAIN) per peer, named by a message's first frame: their
# outbound queues are kept per peer (the draft SERVER's first frame is its routing id).
_ROUTED = frozenset({int(zmq.ROUTER), int(zmq.STREAM), int(zmq.SERVER)})

# Socket types whose sockets refuse recv: a connection of these never reads.
_SEND_ONLY = frozenset(
    int(getattr(zmq, name)) for name in ("PUB", "PUSH", "RADIO", "SCATTER") if hasattr(zmq, name)
)


class _EventSource(Protocol):
    """What a connection needs of its socket-event stream (:mod:`txzmq2.monitor`)."""

    def whenConnected(self, timeout: float | None) -> Deferred[ZmqMonitorEvent]: ...

    def view(
        self, events: int, callback: Callable[[ZmqMonitorEvent], object] | None
    ) -> ZmqSocketMonitor: ...

    def close(self) -> None: ...

    @property
    def succeeded(self) -> int:
        """Handshakes completed so far."""
        ...


class ZmqConnectionStats:
    """
    Message counts of one connection, from :meth:`ZmqConnection.stats`.

    :ivar sent: messages handed to libzmq.
    :ivar received: whole messages read from libzmq.
    :ivar queued: messages waiting in the outbound queue now.
    :ivar dropped: outbound messages dropped: past ``sendQueueLimit`` (ROUTER), to a peer
        that vanished, or still queued at shutdown.
    :ivar discarded: inbound messages dropped whole for having more than
        ``maxFramesPerMessage`` frames.
    """

    __slots__ = ("discarded", "dropped", "queued", "received", "sent")

    def __init__(self, sent: int, received: int, queued: int, dropped: int, discarded: int):
        self.sent = sent
        self.received = received
        self.queued = queued
        self.dropped = dropped
        self.discarded = discarded

    def __repr__(self) -> str:
        return (
            f"<ZmqConnectionStats sent={self.sent} received={self.received} "
            f"queued={self.queued} dropped={self.dropped} discarded={self.discarded}>"
        )


@implementer(IReadDescriptor, IConsumer, IPushProducer)
class ZmqConnection:
    """
    One ZeroMQ socket driven by the factory's reactor.

    Subclasses set :attr:`socketType` and turn whole messages into their own callbacks by
    overriding :meth:`messageReceived`; objects that compose a connection instead give a
    ``receiver``. Socket options are class attributes; one left as ``None`` keeps libzmq's
    default.

    Flow control speaks Twisted's language. As an ``IConsumer`` the connection accepts a
    producer (:meth:`registerProducer`) and pauses it while more than
    :attr:`sendQueueHighWater` messages wait in its outbound queue. As an ``IPushProducer``
    of what it reads, :meth:`pauseProducing` stops delivery (libzmq's queues then fill and
    backpressure reaches the sender) and :meth:`resumeProducing` continues.

    The pyzmq socket is ``socket``, for options txzmq2 has no attribute for. Do not send,
    receive or read ``zmq.EVENTS`` on it directly: each of those can consume the FD's edge
    without the connection knowing, and strand messages. Use :meth:`send` and
    :meth:`setSocketOption`.

    :param factory: the factory giving the context and reactor.
    :param endpoint: an endpoint to bind or connect right away.
    :param identity: the socket's routing id (``ZMQ_ROUTING_ID``), for ROUTER peers.
    :param security: the CURVE or PLAIN set-up (:class:`ZmqSecurity`).
    :param receiver: called with each whole message instead of :meth:`messageReceived`
        (for objects that compose connections, such as :class:`~txzmq2.proxy.ZmqProxy`).
    :param monitored: watch socket events from creation (default: the class attribute
        :attr:`monitored`).
    :raises ZmqEndpointError: when binding or connecting ``endpoint`` fails.
    """

    socketType: ClassVar[int] = zmq.PAIR
    """The ZeroMQ socket type, such as ``zmq.DEALER``; set by each subclass (txZMQ's
    name; PAIR when a subclass sets none)."""
    receives: ClassVar[bool | None] = None
    """Whether the connection reads its socket. ``None`` (the default) follows
    :attr:`socketType`: PUB, PUSH, RADIO and SCATTER sockets refuse ``recv``, so
    connections of those types never read."""
    _readsFrames: ClassVar[bool] = False
    # Messages are read as zmq.Frame objects, on the pure-Python path: draft sockets read
    # a routing id or a group from the delivering frame, which the native path has not.
    monitored: ClassVar[bool] = False
    """Watch the socket's events from creation. Otherwise they are watched from the first
    call of :meth:`whenConnected` or :meth:`monitor` on: a connection that never asks costs
    no monitor sockets (a monitor costs two of the context's ``MAX_SOCKETS``)."""

    highWaterMark: int | None = None
    """Both high-water marks at once (messages); ``sendHighWaterMark`` and
    ``recvHighWaterMark`` override it for one direction."""
    sendHighWaterMark: int | None = None
    recvHighWaterMark: int | None = None
    maxMessageSize: int | None = None
    """``ZMQ_MAXMSGSIZE`` in bytes: a peer sending a bigger *frame* is disconnected (the
    limit is per frame, and inproc peers are not checked)."""
    tcpKeepalive: int | None = None
    tcpKeepaliveCount: int | None = None
    tcpKeepaliveIdle: int | None = None
    tcpKeepaliveInterval: int | None = None
    reconnectInterval: int | None = None
    reconnectIntervalMax: int | None = None
    allowLoopbackMulticast: int | None = None
    multicastRate: int | None = None
    immediate: int | None = None
    heartbeatInterval: int | None = None
    """Milliseconds between ZMTP heartbeats (``ZMQ_HEARTBEAT_IVL``). A cut link does not end
    a TCP connection for minutes; heartbeats notice a silent peer and disconnect it."""
    heartbeatTimeout: int | None = None
    """Milliseconds without traffic after a heartbeat before the peer counts as gone
    (``ZMQ_HEARTBEAT_TIMEOUT``; libzmq's default: the interval)."""
    heartbeatTtl: int | None = None
    """Milliseconds the *peer* should wait for our heartbeats (``ZMQ_HEARTBEAT_TTL``)."""
    zapDomain: str | bytes | None = None
    """ZAP domain for the authenticator (``ZMQ_ZAP_DOMAIN``); with the NULL mechanism, the
    authenticator is consulted only when one is set."""

    readBatchSize: int = 1000
    """Most messages one read pass delivers before yielding to the reactor."""
    readBatchSeconds: float = 0.004
    """Longest a read pass runs before yielding to the reactor (checked between messages
    and every 128 frames inside a long one)."""
    maxFramesPerMessage: int = 10_000
    """Most frames a message received may have; a longer one is read (within the read
    budget) and dropped whole, counted in ``stats().discarded`` and logged."""
    sendQueueHighWater: int = 1000
    """Outbound queue length above which a registered producer is paused."""
    sendQueueLowWater: int = 250
    """Outbound queue length at or below which a paused producer is resumed."""
    sendQueueLimit: int | None = None
    """Most messages the outbound queue holds per destination while libzmq refuses them.
    ``None`` (the default): for a ROUTER, the socket's send high-water mark, per peer, past
    which a message is dropped (counted and logged), as libzmq's ROUTER drops at its own;
    for every other type, no bound (``send`` never loses a message). Set on a non-ROUTER,
    ``send`` past it raises :class:`~txzmq2.errors.ZmqSendQueueFull`."""

    receiver: Callable[[Message], object] | None = None
    """Called with each whole message instead of :meth:`messageReceived` when set."""

    _log: ClassVar[Logger] = RateLimitedLogger()
    # Set by txzmq2.monitor when it is imported (it imports this module, not the reverse).
    _eventSourceType: ClassVar[Callable[[ZmqConnection], _EventSource] | None] = None

    def __init__(
        self,
        factory: ZmqFactory,
        endpoint: ZmqEndpoint | None = None,
        identity: bytes | str | None = None,
        security: ZmqSecurity | None = None,
        receiver: Callable[[Message], object] | None = None,
        monitored: bool | None = None,
    ) -> None:
        if factory.shuttingDown:
            raise ZmqConnectionClosed(f"{factory!r} is shutting down; no new connections")
        self.factory = factory
        self.endpoints: list[ZmqEndpoint] = []
        """What is bound and connected now; a bind is listed resolved (``tcp://127.0.0.1:*``
        with the port the OS chose)."""
        self.identity = identity.encode() if isinstance(identity, str) else identity
        self.security = security
        if receiver is not None:
            self.receiver = receiver
        self._reactor: ReactorLike = factory.reactor
        self.socket: zmq.Socket[bytes] = factory._newSocket(self.socketType)
        self._closed = False
        self._closing = False
        self._readPaused = False
        self._events: _EventSource | None = None
        try:
            applyOptions(self, self.socket)
            self.fd: int = cast(int, self.socket.get(zmq.FD))
            # pyzmq's Cython send, past the Python wrapper (which only adds DRAFT routing_id
            # and group handling): a third of the per-frame cost on the hot path.
            self._send = _BaseSocket.send.__get__(self.socket)
            # The native path's view of the socket (None on the pure-Python path).
            self._native = nativeSocket(self.socket)
            # send()'s shortcut for a one-frame message: only where frames go to libzmq as
            # they are (a subclass with its own _sendFrames, a draft type, gets every call).
            self._nativeSend = None
            # sendMany's loop over the messages libzmq takes as they are (the same rule).
            self._sendRun: Callable[[list[Any], int, _Outbound], int] | None = None
            if type(self)._sendFrames is ZmqConnection._sendFrames:
                if self._native is not None:
                    self._nativeSend = self._native.sendOne
                    self._sendRun = self._native.sendMany
                else:
                    self._sendRun = self._sendManyPure
            routed = self.socketType in _ROUTED
            limit = self.sendQueueLimit
            if limit is None and routed:
                limit = cast(int, self.socket.get(zmq.SNDHWM)) or None
            self._outbound = _Outbound(
                self, self._sendFrames, self._sendRun, routed, limit, routed
            )
            reads = self.receives
            if reads is None:
                reads = self.socketType not in _SEND_ONLY
            self._engine = _Engine(self, reads)
        except BaseException:
            self.socket.close(linger=0)
            raise
        factory.connections.add(self)
        self._reactor.addReader(self)
        # Messages may already be waiting (an inproc peer): look once, whatever the FD says.
        self._engine.schedulePass()
        try:
            if monitored or (monitored is None and self.monitored):
                # Before any bind or connect: a handshake can complete before the next line.
                self._eventSource()
            if endpoint is not None:
                self.addEndpoints([endpoint])
        except BaseException:
            # The caller gets no reference to a connection whose constructor raised.
            self.shutdown()
            raise

    def applySocketOptions(self) -> None:
        """
        Hook for socket types with options of their own: called once, before any bind or
        connect, after the common options are set. Set them on ``self.socket``.
        """

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        else:
            state = ", ".join(f"{e.type.value} {e.address}" for e in self.endpoints)
        return f"<{type(self).__name__} {state or 'unbound'}>"

    def stats(self) -> ZmqConnectionStats:
        """This connection's message counts so far (a snapshot)."""
        outbound = self._outbound
        return ZmqConnectionStats(
            outbound.sent,
            self._engine.received,
            outbound.length,
            outbound.dropped,
            self._engine.discarded,
        )

    # -- endpoints ---------------------------------------------------------------------------

    def addEndpoints(self, endpoints: Iterable[ZmqEndpoint]) -> None:
        """
        Bind or connect to each endpoint, in order.

        :raises ValueError: for a malformed endpoint (nothing after it is attempted).
        :raises ZmqEndpointError: when libzmq refuses the address (in use, unresolvable,
            unreachable...); it is also a ``zmq.ZMQError``.
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        self._checkOpen()
        try:
            for endpoint in endpoints:
                endpoint = ZmqEndpoint(*endpoint)
                endpoint.validate()
                endpoint = ZmqEndpoint(ZmqEndpointType(endpoint.type), endpoint.address)
                try:
                    if endpoint.type == ZmqEndpointType.bind:
                        self.socket.bind(endpoint.address)
                        # Recorded resolved ("tcp://127.0.0.1:*" as the port chosen): unbind
                        # accepts nothing else. (libzmq 4.3 gives udp's without the "udp://".)
                        resolved = self.socket.get_string(zmq.LAST_ENDPOINT)
                        if "://" in resolved:
                            endpoint = endpoint._replace(address=resolved)
                    else:
                        self.socket.connect(endpoint.address)
                except zmq.ZMQError as error:
                    raise self._endpointError(endpoint, error) from None
                self.endpoints.append(endpoint)
        finally:
            # bind() and connect() process pending commands and can consume the FD's edge.
            self._engine.schedulePass()

    def _endpointError(self, endpoint: ZmqEndpoint, error: zmq.ZMQError) -> ZmqEndpointError:
        """
        A one-line error naming the endpoint and libzmq's real reason. With a monitor on
        the socket, libzmq's failed bind or connect reports an event, which overwrites errno
        with EAGAIN: then the same call on a throwaway socket of the same type tells the
        real reason.
        """
        number = error.errno
        if number == zmq.EAGAIN:
            probe = self.factory.context.socket(self.socketType)
            try:
                probe.set(zmq.LINGER, 0)
                if endpoint.type == ZmqEndpointType.bind:
                    probe.bind(endpoint.address)
                else:
                    probe.connect(endpoint.address)
            except zmq.ZMQError as real:
                number = real.errno
            finally:
                probe.close(linger=0)
        reason = zmq.strerror(number) if number is not None else str(error)
        return ZmqEndpointError(
            endpoint.address, f"cannot {endpoint.type.value} {endpoint.address}: {reason}", number
        )

    def removeEndpoints(self, endpoints: Iterable[ZmqEndpoint]) -> None:
        """
        Unbind or disconnect each endpoint, in order: the inverse of :meth:`addEndpoints`.
        After an unbind no new peer can connect there; after a disconnect no more messages
        go to that peer. libzmq closes a listener on its I/O thread a moment after this
        returns: a monitor's ``EVENT_CLOSED`` says when. Give each endpoint as
        :attr:`endpoints` lists it (a bind to ``tcp://127.0.0.1:*`` is listed with the
        port the OS chose).

        :raises ValueError: for an endpoint this connection has not bound or connected
            (nothing after it is attempted).
        :raises ZmqEndpointError: when libzmq refuses to unbind or disconnect.
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        self._checkOpen()
        try:
            for endpoint in endpoints:
                endpoint = ZmqEndpoint(*endpoint)
                if endpoint not in self.endpoints:
                    raise ValueError(f"{self!r} has no endpoint {endpoint!r}")
                try:
                    if endpoint.type == ZmqEndpointType.bind:
                        self.socket.unbind(endpoint.address)
                    else:
                        self.socket.disconnect(endpoint.address)
                except zmq.ZMQError as error:
                    raise ZmqEndpointError(endpoint.address, str(error), error.errno) from error
                self.endpoints.remove(endpoint)
        finally:
            # As bind() and connect(): pending commands run, the FD's edge may be consumed.
            self._engine.schedulePass()

    @property
    def lastEndpoint(self) -> str:
        """
        The address last bound or connected, resolved: after binding ``tcp://127.0.0.1:*``
        it carries the port the OS chose.
        """
        self._checkOpen()
        return self.socket.get_string(zmq.LAST_ENDPOINT)

    def setSocketOption(self, option: int, value: int | bytes) -> None:
        """
        Set a socket option after creation (``zmq.SUBSCRIBE`` and the like).

        Option changes can consume the FD's edge, so a pass follows.
        """
        self._checkOpen()
        try:
            self.socket.set(option, value)
        finally:
            self._engine.schedulePass()

    # -- security ----------------------------------------------------------------------------
    # libzmq applies a socket's security settings to the binds and connects made after them.
    # One set later would leave earlier endpoints unprotected while looking configured, so
    # these refuse to run once an endpoint exists.

    def useCurveServer(
        self, publicKey: bytes | str, secretKey: bytes | str, zapDomain: str | None = None
    ) -> None:
        """
        Serve CURVE: peers must be CURVE clients knowing ``publicKey``; traffic is encrypted.
        Call before :meth:`addEndpoints`. Which clients get in is the ZAP handler's call
        (:class:`~txzmq2.auth.ZmqAuthenticator`); without one, every CURVE client does.

        :param publicKey: this server's public key (Z85 text or 32 raw bytes).
        :param secretKey: this server's secret key (Z85 text or 32 raw bytes).
        :param zapDomain: the ZAP domain the authenticator sees (default: none, ``"*"``
            rules apply).
        :raises ValueError: for a malformed key.
        :raises ZmqStateError: once an endpoint has been bound or connected.
        """
        self._setSecurity(ZmqSecurity.curveServer(publicKey, secretKey, zapDomain))

    def useCurveClient(
        self, publicKey: bytes | str, secretKey: bytes | str, serverKey: bytes | str
    ) -> None:
        """
        Talk CURVE to servers whose public key is ``serverKey``. Call before
        :meth:`addEndpoints`.

        :param publicKey: this client's public key (Z85 text or 32 raw bytes).
        :param secretKey: this client's secret key (Z85 text or 32 raw bytes).
        :param serverKey: the server's public key; a server with another key is refused.
        :raises ValueError: for a malformed key.
        :raises ZmqStateError: once an endpoint has been bound or connected.
        """
        self._setSecurity(ZmqSecurity.curveClient(publicKey, secretKey, serverKey))

    def usePlainServer(self, zapDomain: str | None = None) -> None:
        """
        Accept PLAIN (user name and password, sent in clear) clients. Call before
        :meth:`addEndpoints`. The passwords are checked by the ZAP handler
        (:class:`~txzmq2.auth.ZmqAuthenticator`); without one, libzmq refuses every client.

        :raises ZmqStateError: once an endpoint has been bound or connected.
        """
        self._setSecurity(ZmqSecurity.plainServer(zapDomain))

    def usePlainClient(self, username: str | bytes, password: str | bytes) -> None:
        """
        Log in to PLAIN servers as ``username``. Call before :meth:`addEndpoints`.

        :raises ZmqStateError: once an endpoint has been bound or connected.
        """
        self._setSecurity(ZmqSecurity.plainClient(username, password))

    def _setSecurity(self, security: ZmqSecurity) -> None:
        self._checkOpen()
        if self.endpoints:
            raise ZmqStateError(
                f"{self!r}: security must be set up before the first bind or connect"
            )
        self.security = security
        for option, value in security.options:
            self.setSocketOption(option, value)

    def messageProperty(self, name: str) -> str | None:
        """
        A metadata property of the message being delivered right now: call it from
        ``gotMessage`` (or ``messageReceived``), before returning. ``"User-Id"`` is the
        identity the ZAP handler gave an authenticated peer (a PLAIN user name, a CURVE
        key); ``"Peer-Address"`` the peer's IP address; ``"Socket-Type"`` its type.

        :return: the property's value, or ``None`` when the message has no such property or
            no message is being delivered.
        """
        frame = self._engine.deliveringFrame
        if frame is None:
            return None
        try:
            return cast(str, frame.get(name))
        except zmq.ZMQError:
            return None

    # -- socket events -----------------------------------------------------------------------

    def whenConnected(self, timeout: float | None = None) -> Deferred[ZmqMonitorEvent]:
        """
        Wait until a peer has completed the ZeroMQ handshake with this connection (at once
        if one is connected already). inproc peers produce no events: use tcp or ipc.

        Socket events are watched from creation when :attr:`monitored` is set (or the
        constructor's ``monitored=True``), else from the first call of this method or
        :meth:`monitor`: a handshake that completed before that is not seen. So call it
        before :meth:`addEndpoints` (construct without an endpoint, call it, then add the
        endpoints), or construct with ``monitored=True``.

        :return: a Deferred firing with the ``EVENT_HANDSHAKE_SUCCEEDED``
            :class:`~txzmq2.monitor.ZmqMonitorEvent`; failing with
            :class:`~txzmq2.errors.ZmqTimeoutError` after ``timeout`` seconds, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` if the connection shuts down first.
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        return self._eventSource().whenConnected(timeout)

    def monitor(
        self,
        events: int = zmq.EVENT_ALL,
        callback: Callable[[ZmqMonitorEvent], object] | None = None,
    ) -> ZmqSocketMonitor:
        """
        Watch this socket's events (a mask of ``zmq.EVENT_*``): each one goes to
        ``callback`` and to the monitor's ``waitFor`` Deferreds. Stop it with ``stop()``;
        it stops by itself with the connection. Events before the first call are seen only
        with :attr:`monitored` set (see :meth:`whenConnected`).

        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        return self._eventSource().view(events, callback)

    def _eventSource(self) -> _EventSource:
        """The connection's socket-event stream, started on first use."""
        self._checkOpen()
        if self._events is None:
            start = ZmqConnection._eventSourceType
            if start is None:
                raise ZmqStateError("txzmq2.monitor is not imported: no socket events")
            self._events = start(self)
        return self._events

    @property
    def everConnected(self) -> bool | None:
        """
        Whether a peer has completed a handshake since socket events were watched
        (``None`` when they are not watched: then nothing is known).
        """
        events = self._events
        if events is None:
            return None
        return events.succeeded > 0

    # -- sending -----------------------------------------------------------------------------

    def send(self, message: MessageLike) -> None:
        """
        Send one message: a single frame (``bytes``) or a sequence of frames.

        Never raises ``zmq.Again``: when libzmq is at its high-water mark the message waits in
        this connection's outbound queue and leaves, in order, as soon as the socket is
        writable again. That queue is bounded by :attr:`sendQueueLimit` per destination:
        by default a ROUTER drops past the socket's high-water mark per peer (as libzmq's
        ROUTER does itself without ``routerMandatory``) and other types never lose a
        message. PUB sockets drop at the high-water mark inside libzmq, as it defines them to.

        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        :raises TypeError: when a frame is not bytes-like.
        :raises ZmqSendQueueFull: past :attr:`sendQueueLimit`, when one is set on a
            connection other than a ROUTER.
        :raises ZmqUnroutableError: a ROUTER with ``ZMQ_ROUTER_MANDATORY`` has no peer of
            that identity.
        """
        nativeSend = self._nativeSend
        if (
            nativeSend is not None
            and type(message) is bytes
            and not self._closed
            and not self._outbound.length
            and nativeSend(message)
        ):
            # What _sendMessage does when libzmq takes the message at once, without the
            # Python calls between (a refused or failed frame takes the full path below,
            # which tries again, queues it or raises as it does for any message).
            self._outbound.sent += 1
            if not self._engine.inPass:  # (inside a pass, the pass looks at EVENTS)
                self._engine.afterSend()
            return
        self._sendMessage(toFrames(message))

    def sendMany(self, messages: Iterable[MessageLike]) -> None:
        """
        Send each of ``messages`` in order, exactly as :meth:`send` would, in one call: the
        cheaper way to send many small messages at once (on the native path, libzmq is
        handed a run of them in one C loop).

        The guarantees are :meth:`send`'s: never ``zmq.Again``; at the high-water mark
        the rest wait in the outbound queue, in order. An error stops the batch at the
        message that caused it: every message before that one has been sent or queued
        (or dropped, as :meth:`send` would drop it), and none after it has. ``messages``
        that is not a list is read whole before the first is sent.

        :param messages: the messages, each what :meth:`send` accepts.
        :raises ZmqConnectionClosed: after :meth:`shutdown` (also if ``messages`` is
            empty), or if a producer paused by the batch shut the connection down.
        :raises TypeError: when a frame is not bytes-like, or ``messages`` is one message
            (``bytes`` or ``str``) rather than an iterable of them.
        :raises ValueError: for a message with no frames.
        :raises ZmqSendQueueFull: past :attr:`sendQueueLimit`, when one is set on a
            connection other than a ROUTER.
        :raises ZmqUnroutableError: a ROUTER with ``ZMQ_ROUTER_MANDATORY`` has no peer of
            that identity.
        """
        if isinstance(messages, (bytes, bytearray, memoryview, str)):
            raise TypeError("sendMany takes an iterable of messages; send() takes one")
        batch = messages if type(messages) is list else list(messages)
        self._checkOpen()
        if not batch:
            return
        outbound = self._outbound
        sendRun = self._sendRun
        index, count = 0, len(batch)
        finished = touched = False
        try:
            while index < count:
                if sendRun is not None and not outbound.length and not self._closed:
                    # Nothing queued, so nothing to overtake: a run libzmq takes at once.
                    # (_closed: a producer paused by an earlier message may have shut us
                    # down, and the native loop must not touch a closed socket.)
                    touched = True
                    index = sendRun(batch, index, outbound)
                    if index == count:
                        break
                self._checkOpen()
                if outbound.length and not outbound.routed:
                    # One destination, and messages wait for it: send would queue every
                    # one of the rest behind them, so queue them in one go.
                    outbound.enqueueRest(batch, index)
                    break
                # The message the run stopped at (refused, or not one it sends itself),
                # or any message to a ROUTER once some wait: send's full path, which
                # queues or raises.
                touched = True
                outbound.send(toFrames(batch[index]))
                index += 1
            finished = True
        finally:
            # Once for the whole batch: the sends may have consumed the FD's edge with
            # replies already waiting (a look at EVENTS, as after send), or queued
            # messages that need a flush (a pass). A batch that only queued behind
            # waiting messages touched no socket: what flushes those (the FD's POLLOUT,
            # the retry timer) flushes it too, and a pass now would find libzmq still
            # full, a fruitless flush that sends the next POLLOUT to the retry timer.
            if finished and not outbound.length:
                if not self._engine.inPass:
                    self._engine.afterSend()
            elif touched and not self._engine.inPass:
                self._engine.schedulePass()

    def _sendManyPure(self, batch: list[Any], index: int, outbound: _Outbound) -> int:
        """
        The pure-Python twin of ``NativeSocket.sendMany``: send ``batch[index:]`` while each
        message is one ``bytes`` frame or a list of them, and libzmq takes it at once.

        :return: the index of the first message not sent (a refused one, or one for the
            full path); ``outbound.sent`` counts those sent.
        """
        send = self._send
        start, count = index, len(batch)
        try:
            while index < count:
                message = batch[index]
                if type(message) is bytes:
                    try:
                        send(message, _NOBLOCK, len(message) < _ZERO_COPY_MIN)
                    except zmq.ZMQError:
                        # Refused (EAGAIN) or failed: the full path tries it again, queueing
                        # or raising as it does for any message.
                        return index
                else:
                    if type(message) is not list or not message:
                        return index
                    for frame in message:
                        if type(frame) is not bytes:
                            return index
                    last = len(message) - 1
                    frame = message[0]
                    try:
                        send(
                            frame,
                            _NOBLOCK_SNDMORE if last else _NOBLOCK,
                            len(frame) < _ZERO_COPY_MIN,
                        )
                    except zmq.ZMQError:
                        return index
                    # Accepted whole at its first frame: the others cannot be refused.
                    for position in range(1, last + 1):
                        frame = message[position]
                        flags = _NOBLOCK if position == last else _NOBLOCK_SNDMORE
                        send(frame, flags, len(frame) < _ZERO_COPY_MIN)
                index += 1
            return index
        finally:
            # Here, not by the caller: a frame failing after its message's first (a
            # terminated context) raises, and the messages before it were still sent.
            outbound.sent += index - start

    def _sendMessage(self, frames: list[bytes]) -> int | None:
        """
        ``send`` for frames already normalised; the list object itself is what queues.

        :return: the token of the queued message (see ``_Outbound.remove``), or ``None``.
        """
        if self._closed:
            raise ZmqConnectionClosed(f"{self!r} is shut down; cannot send")
        outbound = self._outbound
        sent = touched = False
        try:
            if outbound.length and not outbound.routed:
                # One destination, and messages wait for it: this one queues behind them
                # without touching the socket (as sendMany's rest does; see there why no
                # pass follows).
                return outbound.enqueue(frames)
            touched = True
            if outbound.length:
                return outbound.send(frames)
            # Nothing queued (the hot path): straight to libzmq, the queue only on EAGAIN.
            try:
                self._sendFrames(frames)
            except zmq.Again:
                return outbound.enqueue(frames)
            outbound.sent += 1
            sent = True
            return None
        finally:
            # The send may have consumed the FD's edge with replies already waiting.
            if sent:
                if not self._engine.inPass:
                    self._engine.afterSend()
            elif touched and not self._engine.inPass:
                self._engine.schedulePass()

    def _sendFrames(self, frames: list[bytes]) -> None:
        # A multipart message is accepted or refused as a whole at its first frame, so
        # zmq.Again can only come from the first send() below.
        try:
            if self._native is not None:
                self._native.sendFrames(frames)
                return
            send = self._send
            for frame in frames[:-1]:
                send(frame, _NOBLOCK_SNDMORE, len(frame) < _ZERO_COPY_MIN)
            frame = frames[-1]
            send(frame, _NOBLOCK, len(frame) < _ZERO_COPY_MIN)
        except zmq.ZMQError as error:
            if error.errno == _EHOSTUNREACH:
                raise ZmqUnroutableError(
                    f"no connected peer with identity {bytes(frames[0])!r}"
                ) from None
            raise

    def whenSendQueueEmpty(self, timeout: float | None = None) -> Deferred[None]:
        """
        Wait until every message :meth:`send` queued has left the outbound queue: handed to
        libzmq, or taken out because its request ended (at once if none waits). libzmq may
        still hold them: closing with a linger delivers those.

        :return: a Deferred firing with ``None``; failing with
            :class:`~txzmq2.errors.ZmqTimeoutError` after ``timeout`` seconds, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` if the connection shuts down with
            messages still queued.
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        self._checkOpen()
        return self._outbound.whenEmpty(timeout)

    @property
    def sendQueueLength(self) -> int:
        """Messages waiting in this connection's outbound queue (not yet handed to libzmq)."""
        return self._outbound.length

    # -- IConsumer ---------------------------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """
        Let ``producer`` write to this connection, paced by its outbound queue.

        A streaming (push) producer is paused while more than :attr:`sendQueueHighWater`
        messages are queued and resumed at :attr:`sendQueueLowWater`; a pull producer is
        asked for the next message whenever the queue is at or below the low-water mark.

        :raises ZmqStateError: when a producer is already registered (also a
            ``RuntimeError``).
        """
        if self._closed:
            producer.stopProducing()
            return
        self._outbound.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        """Forget the registered producer (if any)."""
        self._outbound.unregisterProducer()

    def write(self, data: bytes) -> None:
        """``IConsumer.write``: send ``data`` as a one-frame message."""
        self.send(data)
        self._outbound.wrote()

    # -- IPushProducer (of what this connection reads) ---------------------------------------

    def pauseProducing(self) -> None:
        """Stop delivering messages; libzmq's queues fill and the sender is held back."""
        self._readPaused = True

    def resumeProducing(self) -> None:
        """Deliver messages again, starting with those that waited."""
        self._readPaused = False
        self._engine.schedulePass()

    def stopProducing(self) -> None:
        """``IProducer.stopProducing``: shut the connection down."""
        self.shutdown()

    # -- the reactor side --------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has run."""
        return self._closed

    def fileno(self) -> int:
        """The ZeroMQ FD the reactor watches (-1 once shut down)."""
        return -1 if self._closed else self.fd

    def logPrefix(self) -> str:
        return type(self).__name__

    def doRead(self) -> None:
        """The reactor saw the FD signal: run a pass."""
        self._engine.runPass(True)

    def connectionLost(self, reason: Failure) -> None:
        """The reactor dropped this descriptor (at reactor shutdown): shut down."""
        self.shutdown()

    def _schedulePass(self) -> None:
        self._engine.schedulePass()

    def _runPass(self, woken: bool = False) -> None:
        self._engine.runPass(woken)

    def _readWaiting(self) -> bool:
        """
        Run a pass now: deliver what waits in the socket, within the usual read budget.
        Returns whether messages still wait unread (a pass is scheduled for them when
        reading is not paused).

        For a timer about to judge a peer by its silence: when application code held the
        reactor, the timer can run before the reactor has read what the peer sent meanwhile.
        """
        return self._engine.runPass()

    def messageReceived(self, message: Message) -> None:
        """
        Called with each whole message read from the socket (unless a ``receiver`` was
        given). Socket types override this to decode their framing; an exception raised
        here is logged and the next message is still delivered.
        """
        raise NotImplementedError(f"{type(self).__name__} must override messageReceived")

    # -- shutdown ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """
        Close the socket with the factory's linger period and leave the reactor. Messages
        still in the outbound queue are handed to libzmq if it takes them, so linger can
        deliver them; any it refuses are dropped (and counted in a log line). Then
        :meth:`connectionClosed` runs. Idempotent, and whatever a hook or callback raises,
        the socket is closed and every Deferred the connection handed out fires.
        """
        if self._closed or self._closing:
            return
        # Closing, not yet closed: a producer resumed by the last flush, or anything else,
        # must not re-enter (a nested shutdown would close the socket under this one).
        self._closing = True
        outbound = self._outbound
        droppedBefore = outbound.dropped
        try:
            outbound.close()
        except Exception:
            self._log.failure("{connection}: error while flushing at shutdown", connection=self)
        finally:
            self._closed = True
            self._engine.cancel()
            self._reactor.removeReader(self)
            self.factory.connections.discard(self)
            try:
                if self._events is not None:
                    self.socket.disable_monitor()
            except zmq.ZMQError:
                pass  # a terminated context: closing the socket below still works
            finally:
                self.socket.close(linger=self.factory.lingerPeriod)
        # User-visible consequences only now that the socket is closed: an errback that
        # shuts the factory down must not find this socket still open.
        for step in (
            self._closeEvents,
            lambda: outbound.afterClose(outbound.dropped - droppedBefore),
            self.connectionClosed,
        ):
            try:
                step()
            except Exception:
                self._log.failure("{connection}: error while shutting down", connection=self)

    def _closeEvents(self) -> None:
        if self._events is not None:
            self._events.close()

    def connectionClosed(self) -> None:
        """
        Called once at the end of :meth:`shutdown`, the socket closed: socket types fail
        what is pending here. Override it (call the base class's); an exception it raises
        is logged.
        """

    def _checkOpen(self) -> None:
        if self._closed:
            raise ZmqConnectionClosed(f"{self!r} is shut down")
