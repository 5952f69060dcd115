"""
Binary Star: a primary/backup pair of servers, one active and one passive, that fail over
without ever both being active because of a cut between them alone.

The two nodes publish their state to each other every heartbeat (PUB bound at ``local``,
SUB connected to ``remote``). The one invariant: a node becomes active only on the say-so
of its peer's state, or when a client request reaches it while its peer has been silent
for two heartbeats (the clients vote). A cut of the link between the servers alone
silences the peer but brings no votes to the passive node, since the clients still reach
the active one.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import LoopingCall

from txzmq2._logging import RateLimitedLogger
from txzmq2._reactor import ReactorLike, asReactorTime
from txzmq2.connection import Message, ZmqConnection
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import ZmqConnectionClosed
from txzmq2.factory import ZmqFactory
from txzmq2.ha._endpoints import asEndpoint
from txzmq2.ha._gate import attach, connectionOf, isRequest
from txzmq2.pubsub import ZmqPubConnection, ZmqSubConnection

__all__ = ["BinaryStar", "BinaryStarState"]

PEER_SILENCE = 2
"""Heartbeats without a word from the peer after which it counts as gone."""

_TAG = b"bstar"


class BinaryStarState(str, Enum):
    """
    The state of a Binary Star node; members compare equal to their names.

    ``primary`` and ``backup`` are the starting states (the peer not yet heard from);
    ``active`` serves clients; ``passive`` stands by.
    """

    primary = "primary"
    backup = "backup"
    active = "active"
    passive = "passive"


class _StateSubscriber(ZmqSubConnection):
    """The SUB hearing the peer's state."""

    # Connected out to the peer; socket events are not needed.
    monitored = False

    def __init__(self, node: BinaryStar, factory: ZmqFactory, remote: ZmqEndpoint) -> None:
        self.node = node
        super().__init__(factory, remote)
        self.subscribe(_TAG)

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        self.node._heardPeer(message)


class BinaryStar:
    """
    One node of a Binary Star pair.

    Attach the connections that serve clients with :meth:`serve`: their requests are
    delivered only while this node is :attr:`state` ``active`` and dropped otherwise (the
    client times out and tries the other server), and each one counts as a client's vote.

    - Started, a node is ``primary`` or ``backup``. The primary becomes active when it
      hears a starting backup, passive when it hears an active one, or active when a
      client request reaches it and it has heard nothing from the backup for two
      heartbeats. The backup becomes
      passive when it hears an active peer; it never serves before that (a backup alone
      does not take over a pair it has never seen).
    - A passive node becomes active when its peer says it is (re)starting (``primary`` or
      ``backup``), or on a client request when its peer has been silent for two heartbeats
      (it died). A restarted primary thus comes back passive: failing back is the
      operator's call (stop the backup). Before taking its peer for silent, a node reads
      the state messages waiting in its socket: a reactor held up by application code is
      not a silent peer.
    - Two actives (a healed split) resolve to the primary; two passives to the primary.

    ``onActive`` and ``onPassive`` may be set to callables (no arguments), called on
    every transition into that state; an exception they raise is logged.

    :param factory: the factory giving the context and the reactor.
    :param primary: whether this node is the primary (else the backup).
    :param local: where this node publishes its state (a string is bound).
    :param remote: where the peer publishes its state (a string is connected).
    :param heartbeat: seconds between state messages; both nodes must use the same.
    :raises ValueError: for a non-positive heartbeat or a malformed address.
    """

    _log = RateLimitedLogger()

    def __init__(
        self,
        factory: ZmqFactory,
        primary: bool,
        local: str | ZmqEndpoint,
        remote: str | ZmqEndpoint,
        heartbeat: float = 1.0,
    ) -> None:
        if heartbeat <= 0:
            raise ValueError(f"heartbeat must be > 0, not {heartbeat}")
        self.factory = factory
        self.primary = primary
        self.heartbeat = heartbeat
        self.state = BinaryStarState.primary if primary else BinaryStarState.backup
        """The current state."""
        self.onActive: Callable[[], object] | None = None
        """Called on every transition into ``active``."""
        self.onPassive: Callable[[], object] | None = None
        """Called on every transition into ``passive``."""
        self._reactor: ReactorLike = factory.reactor
        self._waiters: list[Deferred[None]] = []
        self._stopped = False
        # Silence at start counts from now: a node must hear its peer, or give it two
        # heartbeats, before a client request can make it active.
        self._peerExpiry = self._expiry()
        localEndpoint = asEndpoint(local, ZmqEndpointType.bind)
        remoteEndpoint = asEndpoint(remote, ZmqEndpointType.connect)
        self._publisher = ZmqPubConnection(factory, localEndpoint)
        try:
            self._subscriber = _StateSubscriber(self, factory, remoteEndpoint)
        except BaseException:
            self._publisher.shutdown()
            raise
        self._beat = LoopingCall(self._publish)
        self._beat.clock = asReactorTime(self._reactor)
        self._beat.start(heartbeat, now=True)
        factory.addShutdownHook(self.shutdown)

    def __repr__(self) -> str:
        role = "primary" if self.primary else "backup"
        return f"<{type(self).__name__} {role} {self.state.value}>"

    @property
    def lastEndpoint(self) -> str:
        """Where this node publishes its state, with the port the OS chose for ``*``."""
        return self._publisher.lastEndpoint

    # -- the public verbs --------------------------------------------------------------------

    def serve(self, served: ZmqConnection | Any) -> None:
        """
        Gate the requests of ``served``: a connection (``ZmqREPConnection``,
        ``ZmqRouterConnection``, ``RPCServer``...), a ``MajordomoBroker`` (its clients'
        requests; its workers' commands always pass) or a ``FreelanceServer`` (its
        requests; pings always pass, so clients see the node alive).

        Serve a device's connection after making the device: a
        :class:`~txzmq2.ZmqProxy` takes over its connections' deliveries when made, and
        would take them from the gate too.

        :raises TypeError: for something that reads from no connection.
        :raises ZmqStateError: when that connection is served by a node already.
        """
        requests = isRequest(served)

        def gate(message: Message) -> bool:
            return not requests(message) or self._clientRequest()

        attach(connectionOf(served), gate)

    def whenActive(self) -> Deferred[None]:
        """
        :return: a Deferred firing with ``None`` once this node is active (at once if it
            is); failing with :class:`~txzmq2.errors.ZmqConnectionClosed` if the node shuts
            down first (or already has). Cancelling it stops the wait.
        """
        if self._stopped:
            return fail(ZmqConnectionClosed(f"{self!r} is shut down"))
        if self.state is BinaryStarState.active:
            return succeed(None)
        waiter: Deferred[None] = Deferred(self._waiters.remove)
        self._waiters.append(waiter)
        return waiter

    def shutdown(self) -> None:
        """
        Stop heartbeating and close the state sockets; waiters fail. The served
        connections stay open, but their requests are dropped from now on: the peer no
        longer hears this node and may take over. Idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        self.factory.removeShutdownHook(self.shutdown)
        if self._beat.running:
            self._beat.stop()
        self._publisher.shutdown()
        self._subscriber.shutdown()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.errback(ZmqConnectionClosed(f"{self!r} shut down before it became active"))

    # -- events ------------------------------------------------------------------------------

    def _expiry(self) -> float:
        return float(self._reactor.seconds()) + PEER_SILENCE * self.heartbeat

    def _peerSilent(self) -> bool:
        return bool(self._reactor.seconds() >= self._peerExpiry)

    def _delivery(self) -> bool | None:
        """
        Whether a client request is delivered, as far as the state decides: True while
        active; False out of the pair, as the starting backup or while the peer is heard;
        ``None`` when the peer is silent: the request is a vote that may win.
        """
        if self._stopped:
            # Out of the pair: its peer no longer hears it, and may be taking over.
            return False
        if self.state is BinaryStarState.active:
            return True
        if self.state is BinaryStarState.backup or not self._peerSilent():
            return False
        return None

    def _clientRequest(self) -> bool:
        """A client request arrived: whether it is delivered (the vote decides)."""
        delivered = self._delivery()
        if delivered is None:
            # The peer may only look silent: after application code held the reactor
            # longer than the silence, this request can be read before the peer's state
            # messages sent meanwhile. Read them first (a state in them acts as ever), and
            # let the vote win only once nothing waits unread; if the read budget ran out
            # first, the request is dropped, and the client's next try judges.
            waiting = self._subscriber._readWaiting()
            delivered = self._delivery()
            if delivered is None and not waiting:
                self._log.info(
                    "{node}: a client request while the peer is silent: taking over", node=self
                )
                self._become(BinaryStarState.active)
                return True
        return bool(delivered)

    def _heardPeer(self, message: bytes) -> None:
        try:
            peer = BinaryStarState(message.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            self._log.warn(
                "{node}: dropped a state message {message!r}", node=self, message=message
            )
            return
        self._peerExpiry = self._expiry()
        state = self.state
        if state is BinaryStarState.primary:
            # A passive peer is not enough: it goes active on hearing us start, and we
            # then go passive, rather than both being active for a moment.
            if peer is BinaryStarState.backup:
                self._become(BinaryStarState.active)
            elif peer is BinaryStarState.active:
                self._become(BinaryStarState.passive)
        elif state is BinaryStarState.backup:
            if peer is BinaryStarState.active:
                self._become(BinaryStarState.passive)
        elif state is BinaryStarState.active:
            if peer is BinaryStarState.active and not self.primary:
                self._log.error("{node}: the peer is active too; the backup yields", node=self)
                self._become(BinaryStarState.passive)
        elif peer in (BinaryStarState.primary, BinaryStarState.backup):
            # Passive, and the peer (re)starts: it will go passive on hearing us active.
            self._become(BinaryStarState.active)
        elif peer is BinaryStarState.passive and self.primary:
            self._log.warn("{node}: the peer is passive too; the primary serves", node=self)
            self._become(BinaryStarState.active)

    def _become(self, state: BinaryStarState) -> None:
        if self._stopped or state is self.state:
            return
        self._log.info("{node}: {old} -> {new}", node=self, old=self.state.value, new=state.value)
        self.state = state
        # Tell the peer at once rather than at the next heartbeat: it may be waiting on it.
        self._publish()
        if state is BinaryStarState.active:
            self._notify(self.onActive)
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
        elif state is BinaryStarState.passive:
            self._notify(self.onPassive)

    def _notify(self, callback: Callable[[], object] | None) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            self._log.failure("{node}: a state change callback failed", node=self)

    def _publish(self) -> None:
        if not self._publisher.closed:
            self._publisher.publish(self.state.value.encode("ascii"), _TAG)
