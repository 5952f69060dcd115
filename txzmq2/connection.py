"""
ZmqConnection: the only code that touches a ZeroMQ socket's FD and ``EVENTS``.

ZeroMQ's ``ZMQ_FD`` is edge-triggered and only says "something changed". Any ``send``,
``recv``, ``bind``, ``connect``, option change or ``getsockopt(EVENTS)`` may consume that edge
while messages are waiting, after which the FD stays quiet until something *else* happens.
So every such operation here is followed, sooner or later in the same reactor turn, by a
*pass* (:meth:`ZmqConnection._runPass`): flush queued sends, read a bounded batch, read
``EVENTS`` and, if work remains, schedule another pass with ``callLater(0)``. Passes are
coalesced: at most one is ever scheduled.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeAlias, cast

import zmq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IConsumer, IPushProducer, IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zmq.backend import Socket as _BaseSocket
from zmq.utils import z85
from zope.interface import implementer

from txzmq2._logging import RateLimitedLogger
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import (
    ZmqConnectionClosed,
    ZmqEndpointError,
    ZmqTimeoutError,
    ZmqUnroutableError,
)

if TYPE_CHECKING:
    from twisted.internet.base import DelayedCall

    from txzmq2.factory import ZmqFactory
    from txzmq2.monitor import ZmqMonitorEvent, ZmqSocketMonitor, _EventStream

__all__ = [
    "Frame",
    "Message",
    "MessageLike",
    "ZmqConnection",
    "ZmqEndpoint",  # txZMQ programs import both from txzmq.connection
    "ZmqEndpointType",
    "ZmqSecurity",
]

Frame: TypeAlias = "bytes | bytearray | memoryview"
"""One frame as accepted by ``send``; frames received are always ``bytes``."""
Message: TypeAlias = "list[bytes]"
"""A whole multipart message as received: its frames, in order."""
MessageLike: TypeAlias = "Frame | Sequence[Frame]"
"""What ``send`` accepts: one frame, or a sequence of frames."""

# Plain ints: arithmetic on pyzmq's IntFlag constants costs more than the send itself.
_NOBLOCK = int(zmq.NOBLOCK)
_NOBLOCK_SNDMORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_POLLIN = int(zmq.POLLIN)
_POLLOUT = int(zmq.POLLOUT)
_EVENTS = int(zmq.EVENTS)
# Below this size pyzmq copies a frame anyway; above it, zero-copy sends pay off.
_ZERO_COPY_MIN = zmq.COPY_THRESHOLD

# Socket types that refuse (EAGAIN) per peer, named by a message's first frame: their
# outbound queues are kept per peer (the draft SERVER's first frame is its routing id).
_ROUTED = frozenset({int(zmq.ROUTER), int(zmq.STREAM), int(zmq.SERVER)})

# Backoff of flush retries while a ROUTER peer stays full (seconds).
_RETRY_MIN = 0.001
_RETRY_MAX = 0.05

# Class attribute -> socket option, applied (when not None) before any bind or connect.
_SOCKET_OPTIONS: tuple[tuple[str, int], ...] = (
    ("sendHighWaterMark", zmq.SNDHWM),
    ("recvHighWaterMark", zmq.RCVHWM),
    ("maxMessageSize", zmq.MAXMSGSIZE),
    ("tcpKeepalive", zmq.TCP_KEEPALIVE),
    ("tcpKeepaliveCount", zmq.TCP_KEEPALIVE_CNT),
    ("tcpKeepaliveIdle", zmq.TCP_KEEPALIVE_IDLE),
    ("tcpKeepaliveInterval", zmq.TCP_KEEPALIVE_INTVL),
    ("reconnectInterval", zmq.RECONNECT_IVL),
    ("reconnectIntervalMax", zmq.RECONNECT_IVL_MAX),
    ("allowLoopbackMulticast", zmq.MULTICAST_LOOP),
    ("multicastRate", zmq.RATE),
    ("immediate", zmq.IMMEDIATE),
    ("heartbeatInterval", zmq.HEARTBEAT_IVL),
    ("heartbeatTimeout", zmq.HEARTBEAT_TIMEOUT),
    ("heartbeatTtl", zmq.HEARTBEAT_TTL),
    ("zapDomain", zmq.ZAP_DOMAIN),
)


def _curveKey(key: bytes | str, name: str) -> bytes:
    """A CURVE key as libzmq takes it: 40 characters of Z85, or 32 raw bytes."""
    try:
        data = key.encode("ascii") if isinstance(key, str) else bytes(key)
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Z85 text") from None
    if len(data) == 40:
        try:
            z85.decode(data)
        except (ValueError, KeyError):
            raise ValueError(f"{name} is not valid Z85 text") from None
        return data
    if len(data) == 32:
        return data
    raise ValueError(f"{name} must be 40 characters of Z85 or 32 raw bytes, not {len(data)}")


def _utf8(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


class ZmqSecurity(NamedTuple):
    """
    How a connection authenticates and encrypts: the socket options of one mechanism.
    Give it to a connection's constructor (``security=``), or to the Majordomo and RPC
    classes, which apply it to every socket they make. Build one with the class methods.
    """

    options: tuple[tuple[int, int | bytes], ...]

    @classmethod
    def curveServer(
        cls, publicKey: bytes | str, secretKey: bytes | str, zapDomain: str | None = None
    ) -> ZmqSecurity:
        """Serve CURVE with this key pair (see :meth:`ZmqConnection.useCurveServer`).

        :raises ValueError: for a malformed key."""
        return cls(
            (
                (zmq.CURVE_SERVER, 1),
                (zmq.CURVE_PUBLICKEY, _curveKey(publicKey, "publicKey")),
                (zmq.CURVE_SECRETKEY, _curveKey(secretKey, "secretKey")),
                *_zapDomain(zapDomain),
            )
        )

    @classmethod
    def curveClient(
        cls, publicKey: bytes | str, secretKey: bytes | str, serverKey: bytes | str
    ) -> ZmqSecurity:
        """Talk CURVE to the server with ``serverKey`` (see
        :meth:`ZmqConnection.useCurveClient`).

        :raises ValueError: for a malformed key."""
        return cls(
            (
                (zmq.CURVE_PUBLICKEY, _curveKey(publicKey, "publicKey")),
                (zmq.CURVE_SECRETKEY, _curveKey(secretKey, "secretKey")),
                (zmq.CURVE_SERVERKEY, _curveKey(serverKey, "serverKey")),
            )
        )

    @classmethod
    def plainServer(cls, zapDomain: str | None = None) -> ZmqSecurity:
        """Accept PLAIN clients (see :meth:`ZmqConnection.usePlainServer`)."""
        return cls(((zmq.PLAIN_SERVER, 1), *_zapDomain(zapDomain)))

    @classmethod
    def plainClient(cls, username: str | bytes, password: str | bytes) -> ZmqSecurity:
        """Log in to PLAIN servers (see :meth:`ZmqConnection.usePlainClient`)."""
        return cls(((zmq.PLAIN_USERNAME, _utf8(username)), (zmq.PLAIN_PASSWORD, _utf8(password))))


def _zapDomain(zapDomain: str | None) -> tuple[tuple[int, bytes], ...]:
    return () if zapDomain is None else ((zmq.ZAP_DOMAIN, _utf8(zapDomain)),)


def _toFrames(message: MessageLike) -> list[bytes]:
    """
    Normalise what a user passed to ``send`` into a fresh list of ``bytes`` frames.

    Mutable buffers (``bytearray``, ``memoryview``) are copied here: the frame may wait in
    the outbound queue, or go to libzmq without a copy, after ``send`` has returned and the
    caller has reused its buffer.

    :raises TypeError: for ``str`` (ZeroMQ carries bytes; encode first) or non-bytes frames.
    :raises ValueError: for an empty sequence (a message has at least one frame).
    """
    if type(message) is bytes:
        return [message]
    if isinstance(message, (bytes, bytearray, memoryview)):
        return [bytes(message)]
    if isinstance(cast(object, message), str):
        raise TypeError("ZeroMQ frames are bytes, not str: encode the message first")
    return _ownFrames(list(message))


def _ownFrames(frames: list[Any]) -> list[bytes]:
    """
    :func:`_toFrames` for a list the caller has just built and hands over: its frames are
    checked, and converted to ``bytes`` where needed, in place.
    """
    for frame in frames:
        if type(frame) is not bytes:
            break
    else:
        if frames:
            return frames  # the hot path: all bytes already
    if not frames:
        raise ValueError("a message needs at least one frame")
    for index, frame in enumerate(frames):
        if type(frame) is not bytes:
            if isinstance(frame, zmq.Frame):
                frames[index] = frame.bytes  # txZMQ passed these through
            elif isinstance(frame, (bytes, bytearray, memoryview)):
                frames[index] = bytes(frame)
            else:
                raise TypeError(f"ZeroMQ frames are bytes, not {type(frame).__name__}")
    return frames


class _OutboundQueue:
    """
    Messages libzmq refused for now (EAGAIN), in order per destination.

    Most sockets have one destination as far as EAGAIN goes. A ROUTER (with
    ``ROUTER_MANDATORY``; without it libzmq drops instead) refuses per peer: a full peer
    must not hold back messages to the others, so its queue is kept per identity (the
    first frame). Order is kept per destination, which is all ZeroMQ promises anyway.
    """

    __slots__ = ("byDestination", "length", "routed")

    def __init__(self, routed: bool) -> None:
        self.routed = routed
        self.byDestination: dict[bytes | None, deque[list[bytes]]] = {}
        self.length = 0

    def holds(self, frames: list[bytes]) -> bool:
        """True when earlier messages to the same destination are still waiting."""
        return (frames[0] if self.routed else None) in self.byDestination

    def append(self, frames: list[bytes]) -> None:
        key = frames[0] if self.routed else None
        queue = self.byDestination.get(key)
        if queue is None:
            queue = self.byDestination[key] = deque()
        queue.append(frames)
        self.length += 1

    def flush(self, send: Callable[[list[bytes]], None]) -> tuple[int, int]:
        """
        Hand queued messages to ``send`` until each destination refuses (``zmq.Again``).

        :return: how many were sent, and how many were dropped because their peer is gone.
        """
        sent = dropped = 0
        for key, queue in list(self.byDestination.items()):
            while queue:
                try:
                    send(queue[0])
                except zmq.Again:
                    break
                except ZmqUnroutableError:
                    dropped += len(queue)
                    self.length -= len(queue)
                    queue.clear()
                    break
                queue.popleft()
                self.length -= 1
                sent += 1
            if not queue:
                del self.byDestination[key]
        return sent, dropped

    def find(self, frames: list[bytes]) -> deque[list[bytes]] | None:
        """The queue holding this very message object, if it is still waiting."""
        queue = self.byDestination.get(frames[0] if self.routed else None)
        if queue is not None and any(waiting is frames for waiting in queue):
            return queue
        return None

    def discard(self, frames: list[bytes]) -> bool:
        """Take this very message object out, if it is still waiting; True if it was."""
        queue = self.find(frames)
        if queue is None:
            return False
        for index, waiting in enumerate(queue):
            if waiting is frames:
                del queue[index]
                break
        self.length -= 1
        if not queue:
            del self.byDestination[frames[0] if self.routed else None]
        return True

    def clear(self) -> int:
        """Forget everything; return how many messages that was."""
        count, self.length = self.length, 0
        self.byDestination.clear()
        return count


@implementer(IReadDescriptor, IConsumer, IPushProducer)
class ZmqConnection:
    """
    One ZeroMQ socket driven by the factory's reactor.

    Subclasses set :attr:`socketType` and turn whole messages into their own callbacks by
    overriding :meth:`messageReceived`. Socket options are class attributes; one left as
    ``None`` keeps libzmq's default.

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
    """

    socketType: ClassVar[int]
    """The ZeroMQ socket type, such as ``zmq.DEALER``; set by each subclass."""
    receives: ClassVar[bool] = True
    """False for send-only types (PUB, PUSH), whose sockets refuse ``recv``."""
    monitored: ClassVar[bool] = True
    """Watch the socket's events from creation, for :meth:`whenConnected` and
    :meth:`monitor` (costs one inproc socket per connection)."""

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
    """Longest a read pass runs before yielding to the reactor."""
    sendQueueHighWater: int = 1000
    """Outbound queue length above which a registered producer is paused."""
    sendQueueLowWater: int = 250
    """Outbound queue length at or below which a paused producer is resumed."""

    _log: ClassVar[Logger] = RateLimitedLogger()

    def __init__(
        self,
        factory: ZmqFactory,
        endpoint: ZmqEndpoint | None = None,
        identity: bytes | str | None = None,
        security: ZmqSecurity | None = None,
    ) -> None:
        if factory.shuttingDown:
            raise ZmqConnectionClosed(f"{factory!r} is shutting down; no new connections")
        self.factory = factory
        self.endpoints: list[ZmqEndpoint] = []
        self.identity = identity.encode() if isinstance(identity, str) else identity
        self.security = security
        self._reactor: Any = factory.reactor
        self.socket: zmq.Socket[bytes] = factory.context.socket(self.socketType)
        self._closed = False
        self._closing = False
        self._inPass = False
        self._passCall: DelayedCall | None = None
        self._readPaused = False
        self._outbound = _OutboundQueue(routed=self.socketType in _ROUTED)
        # Armed while queued messages wait on a peer that POLLOUT does not speak for.
        self._retryCall: DelayedCall | None = None
        self._retryDelay = _RETRY_MIN
        # An IPushProducer or IPullProducer (zope interfaces are opaque to mypy).
        self._producer: Any = None
        self._producerStreaming = False
        self._producerPaused = False
        self._pullCall: DelayedCall | None = None
        # whenSendQueueEmpty's Deferreds, fired once the outbound queue has drained.
        self._drainWaiters: list[Deferred[None]] = []
        # The first frame of the message being delivered, for messageProperty.
        self._deliveringFrame: zmq.Frame | None = None
        try:
            self._applyOptions()
            self.fd: int = self.socket.get(zmq.FD)
            # pyzmq's Cython send/recv, past the Python wrappers (which only add DRAFT
            # routing_id/group handling): a third of the per-frame cost on the hot path.
            self._send = _BaseSocket.send.__get__(self.socket)
            self._recv = _BaseSocket.recv.__get__(self.socket)
            self._getOption = _BaseSocket.get.__get__(self.socket)
        except BaseException:
            self.socket.close(linger=0)
            raise
        factory.connections.add(self)
        self._reactor.addReader(self)
        # Messages may already be waiting (an inproc peer): look once, whatever the FD says.
        self._schedulePass()
        self._events: _EventStream | None = None
        if self.monitored:
            from txzmq2.monitor import _EventStream

            # Before any bind or connect: a handshake can complete before the next statement.
            try:
                self._events = _EventStream(self)
            except BaseException:
                self.shutdown()
                raise
        if endpoint is not None:
            try:
                self.addEndpoints([endpoint])
            except BaseException:
                # The caller gets no reference to a connection whose constructor raised.
                self.shutdown()
                raise

    def _applyOptions(self) -> None:
        socket = self.socket
        socket.set(zmq.LINGER, self.factory.lingerPeriod)
        if self.highWaterMark is not None:
            socket.set(zmq.SNDHWM, self.highWaterMark)
            socket.set(zmq.RCVHWM, self.highWaterMark)
        for attribute, option in _SOCKET_OPTIONS:
            value = getattr(self, attribute)
            if value is not None:
                socket.set(option, _utf8(value) if isinstance(value, str) else value)
        if self.identity is not None:
            socket.set(zmq.ROUTING_ID, self.identity)
        if self.security is not None:
            for option, setting in self.security.options:
                socket.set(option, setting)
        self._applyTypeOptions()

    def _applyTypeOptions(self) -> None:
        """
        Hook for socket types with options of their own (set before any bind or connect).
        """

    def __repr__(self) -> str:
        state = "closed" if self._closed else ", ".join(e.address for e in self.endpoints)
        return f"<{type(self).__name__} {state or 'unbound'}>"

    # -- endpoints ---------------------------------------------------------------------------

    def addEndpoints(self, endpoints: Iterable[ZmqEndpoint]) -> None:
        """
        Bind or connect to each endpoint, in order.

        :raises ValueError: for a malformed endpoint (nothing after it is attempted).
        :raises zmq.ZMQError: when libzmq refuses the address (in use, unreachable...).
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        self._checkOpen()
        try:
            for endpoint in endpoints:
                endpoint = ZmqEndpoint(*endpoint)
                endpoint.validate()
                if endpoint.type == ZmqEndpointType.bind:
                    self.socket.bind(endpoint.address)
                    # Recorded resolved ("tcp://127.0.0.1:*" as the port chosen): unbind
                    # accepts nothing else. (libzmq 4.3 gives udp's without the "udp://".)
                    resolved = self.socket.get_string(zmq.LAST_ENDPOINT)
                    if "://" in resolved:
                        endpoint = endpoint._replace(address=resolved)
                else:
                    self.socket.connect(endpoint.address)
                self.endpoints.append(endpoint)
        finally:
            # bind() and connect() process pending commands and can consume the FD's edge.
            self._schedulePass()

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
            self._schedulePass()

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
            self._schedulePass()

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
        :raises RuntimeError: once an endpoint has been bound or connected.
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
        :raises RuntimeError: once an endpoint has been bound or connected.
        """
        self._setSecurity(ZmqSecurity.curveClient(publicKey, secretKey, serverKey))

    def usePlainServer(self, zapDomain: str | None = None) -> None:
        """
        Accept PLAIN (user name and password, sent in clear) clients. Call before
        :meth:`addEndpoints`. The passwords are checked by the ZAP handler
        (:class:`~txzmq2.auth.ZmqAuthenticator`); without one, libzmq refuses every client.

        :raises RuntimeError: once an endpoint has been bound or connected.
        """
        self._setSecurity(ZmqSecurity.plainServer(zapDomain))

    def usePlainClient(self, username: str | bytes, password: str | bytes) -> None:
        """
        Log in to PLAIN servers as ``username``. Call before :meth:`addEndpoints`.

        :raises RuntimeError: once an endpoint has been bound or connected.
        """
        self._setSecurity(ZmqSecurity.plainClient(username, password))

    def _setSecurity(self, security: ZmqSecurity) -> None:
        self._checkOpen()
        if self.endpoints:
            raise RuntimeError(
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
        frame = self._deliveringFrame
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

        :return: a Deferred firing with the ``EVENT_HANDSHAKE_SUCCEEDED``
            :class:`~txzmq2.monitor.ZmqMonitorEvent`; failing with
            :class:`~txzmq2.errors.ZmqTimeoutError` after ``timeout`` seconds, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` if the connection shuts down first.
        """
        return self._eventStream().whenConnected(timeout)

    def monitor(
        self,
        events: int = zmq.EVENT_ALL,
        callback: Callable[[ZmqMonitorEvent], object] | None = None,
    ) -> ZmqSocketMonitor:
        """
        Watch this socket's events (a mask of ``zmq.EVENT_*``): each one goes to
        ``callback`` and to the monitor's ``waitFor`` Deferreds. Stop it with ``stop()``;
        it stops by itself with the connection.
        """
        return self._eventStream().view(events, callback)

    def _eventStream(self) -> _EventStream:
        self._checkOpen()
        if self._events is None:
            raise RuntimeError(f"{type(self).__name__}.monitored is False: no socket events")
        return self._events

    # -- sending -----------------------------------------------------------------------------

    def send(self, message: MessageLike) -> None:
        """
        Send one message: a single frame (``bytes``) or a sequence of frames.

        Never raises ``zmq.Again``: when libzmq is at its high-water mark the message waits in
        this connection's outbound queue and leaves, in order, as soon as the socket is
        writable again. (PUB and ROUTER sockets drop at the high-water mark instead, as
        libzmq defines them to.)

        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        :raises TypeError: when a frame is not bytes-like.
        :raises ZmqUnroutableError: a ROUTER with ``ZMQ_ROUTER_MANDATORY`` has no peer of
            that identity.
        """
        self._sendMessage(_toFrames(message))

    def _sendMessage(self, frames: list[bytes]) -> None:
        """``send`` for frames already normalised; the list object itself is what queues."""
        if self._closed:
            raise ZmqConnectionClosed(f"{self!r} is shut down; cannot send")
        if self._outbound.length and self._outbound.holds(frames):
            # Keep order: nothing overtakes what is already queued for its destination.
            self._enqueue(frames)
        else:
            try:
                self._sendFrames(frames)
            except zmq.Again:
                self._enqueue(frames)
            finally:
                # The send may have consumed the FD's edge with replies already waiting.
                if not self._inPass:
                    self._schedulePass()

    def _sendFrames(self, frames: list[bytes]) -> None:
        # A multipart message is accepted or refused as a whole at its first frame, so
        # zmq.Again can only come from the first send() below.
        send = self._send
        try:
            for frame in frames[:-1]:
                send(frame, _NOBLOCK_SNDMORE, len(frame) < _ZERO_COPY_MIN)
            frame = frames[-1]
            send(frame, _NOBLOCK, len(frame) < _ZERO_COPY_MIN)
        except zmq.ZMQError as error:
            if error.errno == zmq.EHOSTUNREACH:
                raise ZmqUnroutableError(
                    f"no connected peer with identity {bytes(frames[0])!r}"
                ) from None
            raise

    def _enqueue(self, frames: list[bytes]) -> None:
        self._outbound.append(frames)
        if (
            self._producer is not None
            and self._producerStreaming
            and not self._producerPaused
            and self._outbound.length > self.sendQueueHighWater
        ):
            self._producerPaused = True
            self._callProducer("pauseProducing", self._producer)

    def _flush(self) -> int:
        """Send what libzmq now accepts from the outbound queue; return how many left."""
        sent, dropped = self._outbound.flush(self._sendFrames)
        if dropped:
            self._log.warn(
                "{connection}: dropped {count} queued message(s) to a vanished peer",
                connection=self,
                count=dropped,
            )
        if (
            self._producer is not None
            and not self._closing
            and self._outbound.length <= self.sendQueueLowWater
        ):
            self._wantMoreFromProducer()
        return sent + dropped

    def whenSendQueueEmpty(self, timeout: float | None = None) -> Deferred[None]:
        """
        Wait until every message :meth:`send` queued has been handed to libzmq (at once if
        none waits). libzmq may still hold them: closing with a linger delivers those.

        :return: a Deferred firing with ``None``; failing with
            :class:`~txzmq2.errors.ZmqTimeoutError` after ``timeout`` seconds, or
            :class:`~txzmq2.errors.ZmqConnectionClosed` if the connection shuts down with
            messages still queued.
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        self._checkOpen()
        if not self._outbound.length:
            return succeed(None)
        waiter: Deferred[None] = Deferred(self._drainWaiters.remove)
        self._drainWaiters.append(waiter)
        if timeout is not None:

            def timedOut(failure: Failure) -> Failure:
                if isinstance(failure.value, DeferredTimeout):
                    raise ZmqTimeoutError(f"send queue not empty after {timeout} s")
                return failure

            waiter.addTimeout(timeout, self._reactor).addErrback(timedOut)
        return waiter

    def _fireDrainWaiters(self, dropped: int = 0) -> None:
        waiters, self._drainWaiters = self._drainWaiters, []
        for waiter in waiters:
            if dropped:
                waiter.errback(
                    ZmqConnectionClosed(f"{self!r} shut down with {dropped} message(s) queued")
                )
            else:
                waiter.callback(None)

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

        :raises RuntimeError: when a producer is already registered.
        """
        if self._producer is not None:
            raise RuntimeError(f"{self!r} already has a producer: {self._producer!r}")
        if self._closed:
            producer.stopProducing()
            return
        self._producer = producer
        self._producerStreaming = streaming
        self._producerPaused = False
        if streaming and self._outbound.length > self.sendQueueHighWater:
            self._producerPaused = True
            self._callProducer("pauseProducing", self._producer)
        elif not streaming:
            self._wantMoreFromProducer()

    def unregisterProducer(self) -> None:
        """Forget the registered producer (if any)."""
        self._producer = None
        self._producerPaused = False
        if self._pullCall is not None:
            self._pullCall.cancel()
            self._pullCall = None

    def write(self, data: bytes) -> None:
        """``IConsumer.write``: send ``data`` as a one-frame message."""
        self.send(data)
        if self._producer is not None and not self._producerStreaming:
            if self._outbound.length <= self.sendQueueLowWater:
                self._wantMoreFromProducer()

    def _wantMoreFromProducer(self) -> None:
        producer = self._producer
        if producer is None:
            return
        if self._producerStreaming:
            if self._producerPaused:
                self._producerPaused = False
                self._callProducer("resumeProducing", self._producer)
        elif self._pullCall is None:
            # Ask on the next turn, not from inside the producer's own write().
            self._pullCall = self._reactor.callLater(0, self._askPullProducer)

    def _askPullProducer(self) -> None:
        self._pullCall = None
        if self._producer is not None and not self._closed:
            self._callProducer("resumeProducing", self._producer)

    def _callProducer(self, method: str, producer: Any) -> None:
        # A producer's error must not escape into a pass (stranding messages) or into the
        # reactor (which would drop this connection).
        try:
            getattr(producer, method)()
        except Exception:
            self._log.failure(
                "{connection}: producer {producer!r} failed in {method}",
                connection=self,
                producer=producer,
                method=method,
            )

    # -- IPushProducer (of what this connection reads) ---------------------------------------

    def pauseProducing(self) -> None:
        """Stop delivering messages; libzmq's queues fill and the sender is held back."""
        self._readPaused = True

    def resumeProducing(self) -> None:
        """Deliver messages again, starting with those that waited."""
        self._readPaused = False
        self._schedulePass()

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
        self._runPass(woken=True)

    def connectionLost(self, reason: Failure) -> None:
        """The reactor dropped this descriptor (at reactor shutdown): shut down."""
        self.shutdown()

    def _schedulePass(self) -> None:
        if self._passCall is None and not self._closed:
            self._passCall = self._reactor.callLater(0, self._scheduledPass)

    def _scheduledPass(self) -> None:
        self._passCall = None
        self._runPass()

    def _runPass(self, woken: bool = False) -> None:
        """
        Flush queued sends, deliver a bounded batch of messages, then look at ``EVENTS``
        and schedule another pass if anything is left to do.
        """
        if self._closed:
            return
        if self._inPass:
            # A callback re-entered us; finish the current pass and come back.
            self._schedulePass()
            return
        self._inPass = True
        stuck = False
        try:
            if self._outbound.length:
                sent = self._flush()
                # For one destination, POLLOUT after a fruitless flush means the EVENTS read
                # below processed its becoming writable: go again. For a ROUTER, POLLOUT
                # may speak only for other peers.
                stuck = sent == 0 and self._outbound.routed and self._outbound.length > 0
            events: int | None = None
            if self.receives and not self._readPaused:
                events = self._readBatch(woken)
            if self.closed:  # a callback shut us down (the property: mypy narrows _closed)
                return
            if events is None:
                # Reading EVENTS consumes the edge too, so act on what it says right here.
                events = self._getOption(_EVENTS)
        except zmq.ContextTerminated:
            self._log.warn("{connection}: context terminated under it", connection=self)
            self.shutdown()
            return
        except zmq.ZMQError as error:
            if error.errno == errno.EINTR:
                self._schedulePass()
                return
            self._log.failure("{connection}: socket failed; shutting down", connection=self)
            self.shutdown()
            return
        finally:
            self._inPass = False
            self._deliveringFrame = None
        if not self._outbound.length:
            self._retryDelay = _RETRY_MIN
        if events & _POLLIN and self.receives and not self._readPaused:
            self._schedulePass()
        elif events & _POLLOUT and self._outbound.length:
            if not stuck:
                self._retryDelay = _RETRY_MIN
                self._schedulePass()
            elif self._retryCall is None:
                # POLLOUT speaks for some other ROUTER peer; the one we wait on is still
                # full. Spinning on POLLOUT would busy-loop, and the EVENTS read above may
                # have consumed the edge of its becoming writable: retry on a backoff timer.
                self._retryCall = self._reactor.callLater(self._retryDelay, self._retryFlush)
                self._retryDelay = min(self._retryDelay * 2, _RETRY_MAX)
        if self._drainWaiters and not self._outbound.length:
            # Last: what the waiters do next (send more, shut down) finds the pass done.
            self._fireDrainWaiters()

    def _retryFlush(self) -> None:
        self._retryCall = None
        self._runPass()

    def _readBatch(self, woken: bool) -> int | None:
        """
        Deliver up to a batch of messages. Returns ``EVENTS`` when reading them was the
        last socket operation (the pass then need not read them again), else ``None``.
        """
        recv = self._recv
        limit = self.readBatchSize
        deadline = monotonic() + self.readBatchSeconds
        count = 0
        # Most wake-ups carry one message (request-reply). Ending a recv loop costs a
        # zmq.Again exception, twice the price of reading EVENTS: so look before the
        # second read, and before the first unless the FD woke us (then a message is
        # almost always there, and recv itself processes libzmq's pending commands); a
        # burst beyond that reads until Again.
        probe = not woken
        while count < limit:
            if probe:
                events: int = self._getOption(_EVENTS)
                if not events & _POLLIN:
                    return events
            try:
                frame = recv(_NOBLOCK, copy=False)
            except zmq.Again:
                return None
            message = [frame.bytes]
            self._deliveringFrame = frame  # its metadata, for messageProperty
            # The rest of a multipart message is already here: messages arrive whole...
            while frame.more:
                try:
                    frame = recv(_NOBLOCK, copy=False)
                except zmq.Again:
                    # ...except upstream at an XPUB, which may hand over a frame flagged
                    # "more" and then drop the next one (a subscription it filters out).
                    # The message ends here; what follows is the next one.
                    break
                message.append(frame.bytes)
            count += 1
            probe = count == 1
            try:
                self.messageReceived(message)
            except Exception:
                self._log.failure(
                    "{connection}: unhandled error while delivering a message", connection=self
                )
            if self._closed or self._readPaused:
                return None
            if monotonic() > deadline:
                return None
        # Budget spent with POLLIN still set: the EVENTS check in _runPass schedules the rest.
        return None

    def messageReceived(self, message: Message) -> None:
        """
        Called with each whole message read from the socket. Socket types override this to
        decode their framing; an exception raised here is logged and the next message is
        still delivered.
        """
        raise NotImplementedError(f"{type(self).__name__} must override messageReceived")

    # -- shutdown ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """
        Close the socket with the factory's linger period and leave the reactor. Messages
        still in the outbound queue are handed to libzmq if it takes them, so linger can
        deliver them; any it refuses are dropped (and counted in a log line). Idempotent.
        """
        if self._closed or self._closing:
            return
        # Closing, not yet closed: a producer resumed by the last flush, or anything else,
        # must not re-enter (a nested shutdown would close the socket under this one).
        self._closing = True
        try:
            if self._outbound.length:
                try:
                    self._flush()
                except zmq.ZMQError:
                    pass  # closing anyway; what is left is dropped below
        finally:
            self._closed = True
            for call in (self._passCall, self._pullCall, self._retryCall):
                if call is not None and call.active():
                    call.cancel()
            self._passCall = self._pullCall = self._retryCall = None
            self._reactor.removeReader(self)
            self.factory.connections.discard(self)
            dropped = self._outbound.clear()
            if dropped:
                self._log.warn(
                    "{connection}: shut down with {count} unsent message(s) dropped",
                    connection=self,
                    count=dropped,
                )
            try:
                if self._events is not None:
                    self.socket.disable_monitor()
            except zmq.ZMQError:
                pass  # a terminated context: closing the socket below still works
            finally:
                self.socket.close(linger=self.factory.lingerPeriod)
        # User-visible consequences only now that the socket is closed: an errback that
        # shuts the factory down must not find this socket still open.
        if self._events is not None:
            self._events.close()
        if self._drainWaiters:
            self._fireDrainWaiters(dropped)
        producer, self._producer = self._producer, None
        if producer is not None:
            self._callProducer("stopProducing", producer)
        self._connectionClosed()

    def _connectionClosed(self) -> None:
        """
        Hook run once at the end of :meth:`shutdown`; socket types fail what is pending.
        """

    def _checkOpen(self) -> None:
        if self._closed:
            raise ZmqConnectionClosed(f"{self!r} is shut down")
