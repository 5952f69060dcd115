"""
The Majordomo broker: one ROUTER socket for clients (MDP/Client) and workers (MDP/Worker).

Workers register a service with READY; each client REQUEST waits in its service's queue
until one of that service's workers is idle, goes to the worker idle the longest, and the
worker's REPLY goes back to the client that asked. Broker and workers heartbeat each other;
an idle worker silent for ``heartbeatLiveness`` intervals is forgotten, a busy one (silent
while it works, as the Guide's workers are) only after ``busyWorkerExpiry``. Services named
``mmi.*`` are answered by the broker itself (8/MMI).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from twisted.internet.task import LoopingCall

from txzmq2._logging import RateLimitedLogger
from txzmq2._reactor import ReactorLike, asReactorTime
from txzmq2.connection import Message, ZmqSecurity
from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqUnroutableError
from txzmq2.factory import ZmqFactory
from txzmq2.mdp._protocol import (
    CLIENT,
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HEARTBEAT_LIVENESS,
    DISCONNECT,
    HEARTBEAT,
    MMI_FOUND,
    MMI_NAMESPACE,
    MMI_NOT_FOUND,
    MMI_NOT_IMPLEMENTED,
    MMI_SERVICE,
    READY,
    REPLY,
    REQUEST,
    WORKER,
    Malformed,
    clientMessage,
    commandName,
    parseClientMessage,
    parseWorkerCommand,
    workerCommand,
)
from txzmq2.routerdealer import ZmqRouterConnection

__all__ = ["MajordomoBroker"]


class _Worker:
    """A registered worker: its service, when it was last heard, the client it works for."""

    __slots__ = ("client", "heardAt", "identity", "sentSinceTick", "service")

    def __init__(self, identity: bytes, service: bytes, heardAt: float) -> None:
        self.identity = identity
        self.service = service
        self.heardAt = heardAt
        """When it last sent a command, or was given a request (its silence starts there)."""
        self.client: bytes | None = None
        """The client whose request this worker holds; ``None`` while idle."""
        self.sentSinceTick = False
        """Whether the broker sent it a command since the last heartbeat tick."""


class _QueuedRequest:
    __slots__ = ("body", "client", "queuedAt")

    def __init__(self, client: bytes, body: list[bytes], queuedAt: float) -> None:
        self.client = client
        self.body = body
        self.queuedAt = queuedAt


class _Service:
    """A service's workers and the requests waiting for one of them."""

    __slots__ = ("idle", "name", "requests", "workers")

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.workers = 0
        # A dict as an ordered set: the worker idle the longest comes first.
        self.idle: dict[bytes, None] = {}
        self.requests: deque[_QueuedRequest] = deque()


class _BrokerConnection(ZmqRouterConnection):
    """The broker's ROUTER: hands every message to the broker; says goodbye on shutdown."""

    # Sending to a peer that is gone raises ZmqUnroutableError instead of dropping silently:
    # the broker learns at once that a worker it still lists has disconnected.
    routerMandatory = True

    def __init__(
        self,
        broker: MajordomoBroker,
        factory: ZmqFactory,
        endpoint: ZmqEndpoint,
        maxMessageSize: int | None,
        security: ZmqSecurity | None,
    ) -> None:
        self.broker = broker
        # Read by ZmqConnection.__init__, which applies it before any bind or connect.
        self.maxMessageSize = maxMessageSize
        super().__init__(factory, endpoint, security=security)

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.broker._received(senderId, list(frames))

    def shutdown(self) -> None:
        # Here, not in connectionClosed: the DISCONNECTs must leave before the socket closes
        # (linger delivers them), whoever shuts us down (the broker or the factory).
        if not self.closed:
            self.broker._disconnectAll()
        super().shutdown()

    def connectionClosed(self) -> None:
        self.broker._stopped()


class MajordomoBroker:
    """
    A Majordomo (7/MDP) broker with the 8/MMI ``mmi.service`` lookup, on one ROUTER socket.

    - A worker registers one service with READY. Requests for a service go, in the order
      they came, to the worker of that service that has been idle the longest.
    - A request for a service with no idle worker waits in that service's queue, also while
      the service has no worker at all (yet). At most ``maxQueuedRequests`` requests wait
      in all queues together; beyond that, a new request that would have to wait is dropped
      (and logged), and its client times out and may retry. A request that waited
      ``requestExpiry`` seconds is dropped (and logged) too.
    - The broker sends each worker a HEARTBEAT every ``heartbeatInterval`` seconds (unless
      it sent the worker another command since the last one) and forgets an idle worker it
      has heard nothing from for ``heartbeatLiveness`` intervals, checked at each heartbeat.
      Before forgetting one, it reads what waits in its socket: a reactor held up by
      application code is not a silent worker.
    - A worker holding a request may be silent until it replies, however long that takes:
      the Guide's worker API sends nothing while its handler runs. Only after
      ``busyWorkerExpiry`` seconds of silence (one hour by default) is a busy worker
      forgotten (a worker that disconnects is forgotten at once, as the next heartbeat to it
      finds). A request held by a worker that is forgotten is lost: MDP leaves the retry
      to the client.
    - A worker that sends an invalid or unexpected command (anything before READY but a
      DISCONNECT, a second READY, a REPLY while idle or for another client, an unknown
      command, a service in the ``mmi.`` namespace) is sent DISCONNECT and forgotten. A
      message that is neither MDP/Client nor MDP/Worker, or a malformed client REQUEST, is
      dropped and logged; the broker goes on serving.
    - ``mmi.service`` answers ``200`` when at least one worker serves the service named in the
      request body, else ``404``; any other ``mmi.*`` service answers ``501``.
    - :meth:`shutdown` sends every worker DISCONNECT, so they reconnect at once (to the next
      broker on the address) instead of waiting for heartbeats to fail.

    :param factory: the factory giving the context and the reactor (timers run on it).
    :param endpoint: where clients and workers reach the broker; usually a bind endpoint.
        More can be added with ``connection.addEndpoints``.
    :param heartbeatInterval: seconds between heartbeats; workers must use the same value.
    :param heartbeatLiveness: heartbeat intervals of silence after which a worker is
        forgotten.
    :param maxQueuedRequests: most requests waiting for a worker, over all services.
    :param requestExpiry: seconds a request may wait for a worker before it is dropped
        (``None``: no limit).
    :param busyWorkerExpiry: seconds a worker holding a request may stay silent before it
        is forgotten (``None``: as long as it holds the request).
    :param maxMessageSize: ``ZMQ_MAXMSGSIZE`` in bytes: a peer sending a bigger frame is
        disconnected, so queued requests hold at most ``maxQueuedRequests`` times this
        much per frame (default 1 MiB; ``None``: no limit).
    :param security: CURVE or PLAIN set-up (:class:`~txzmq2.ZmqSecurity`) of its socket.
    :raises ValueError: for a non-positive interval, liveness, bound or expiry.
    :raises zmq.ZMQError: when the endpoint cannot be bound or connected.
    """

    _log = RateLimitedLogger()

    def __init__(
        self,
        factory: ZmqFactory,
        endpoint: ZmqEndpoint,
        *,
        heartbeatInterval: float = DEFAULT_HEARTBEAT_INTERVAL,
        heartbeatLiveness: int = DEFAULT_HEARTBEAT_LIVENESS,
        maxQueuedRequests: int = 10_000,
        requestExpiry: float | None = 30.0,
        busyWorkerExpiry: float | None = 3600.0,
        maxMessageSize: int | None = 1 << 20,
        security: ZmqSecurity | None = None,
    ) -> None:
        if heartbeatInterval <= 0:
            raise ValueError(f"heartbeatInterval must be > 0, not {heartbeatInterval}")
        if heartbeatLiveness < 1:
            raise ValueError(f"heartbeatLiveness must be >= 1, not {heartbeatLiveness}")
        if maxQueuedRequests < 1:
            raise ValueError(f"maxQueuedRequests must be >= 1, not {maxQueuedRequests}")
        if requestExpiry is not None and requestExpiry <= 0:
            raise ValueError(f"requestExpiry must be > 0 or None, not {requestExpiry}")
        if busyWorkerExpiry is not None and busyWorkerExpiry <= 0:
            raise ValueError(f"busyWorkerExpiry must be > 0 or None, not {busyWorkerExpiry}")
        self.heartbeatInterval = heartbeatInterval
        self.heartbeatLiveness = heartbeatLiveness
        self.maxQueuedRequests = maxQueuedRequests
        self.requestExpiry = requestExpiry
        self.busyWorkerExpiry = busyWorkerExpiry
        self._reactor: ReactorLike = factory.reactor
        self._workers: dict[bytes, _Worker] = {}
        self._services: dict[bytes, _Service] = {}
        self._queued = 0
        self._refusedCount = 0
        self._expiredCount = 0
        self._heartbeat = LoopingCall(self._guardedTick)
        self._heartbeat.clock = asReactorTime(self._reactor)
        self.connection: ZmqRouterConnection = _BrokerConnection(
            self, factory, endpoint, maxMessageSize, security
        )
        """The broker's ROUTER connection, for ``lastEndpoint``, ``addEndpoints``,
        ``monitor`` and socket options; sending on it directly bypasses the broker."""
        self._heartbeat.start(heartbeatInterval, now=False)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.connection!r}>"

    @property
    def lastEndpoint(self) -> str:
        """The address last bound or connected, with the port the OS chose for ``*``."""
        return self.connection.lastEndpoint

    @property
    def services(self) -> dict[bytes, int]:
        """Each service that has at least one worker, and how many workers it has."""
        return {name: s.workers for name, s in self._services.items() if s.workers}

    @property
    def queuedRequests(self) -> int:
        """How many requests are waiting for a worker."""
        return self._queued

    @property
    def refusedRequests(self) -> int:
        """How many requests were dropped on arrival because ``maxQueuedRequests`` were
        waiting already (MDP has no reply that tells a client so; the warning about them is
        rate-limited, this count is not)."""
        return self._refusedCount

    @property
    def expiredRequests(self) -> int:
        """How many requests were dropped after waiting ``requestExpiry`` for a worker."""
        return self._expiredCount

    def shutdown(self) -> None:
        """
        Send every worker DISCONNECT, stop heartbeating and close the socket (with the
        factory's linger, so the DISCONNECTs can leave). Queued requests are dropped; their
        clients time out or retry. Idempotent.
        """
        self.connection.shutdown()

    # -- what arrives ------------------------------------------------------------------------

    def _received(self, sender: bytes, frames: Message) -> None:
        header = frames[1] if len(frames) > 1 and frames[0] == b"" else None
        if header == CLIENT:
            self._fromClient(sender, frames)
        elif header == WORKER:
            self._fromWorker(sender, frames)
        else:
            self._dropped(sender, "neither MDP/Client nor MDP/Worker", frames)

    def _dropped(self, sender: bytes, reason: str, frames: Sequence[bytes]) -> None:
        self._log.warn(
            "{broker}: dropped a message from {sender!r} ({reason}): {frames!r}",
            broker=self,
            sender=sender,
            reason=reason,
            frames=_abridged(frames),
        )

    def _fromClient(self, client: bytes, frames: Message) -> None:
        try:
            service, body = parseClientMessage(frames)
        except Malformed as error:
            self._dropped(client, str(error), frames)
            return
        if service.startswith(MMI_NAMESPACE):
            self._answerManagementRequest(client, service, body)
            return
        queue = self._service(service)
        request = _QueuedRequest(client, body, self._reactor.seconds())
        queue.requests.append(request)
        self._queued += 1
        self._dispatch(queue)
        # Bound only what has to wait: a request an idle worker took at once costs nothing.
        waiting = queue.requests
        if self._queued > self.maxQueuedRequests and waiting and waiting[-1] is request:
            waiting.pop()
            self._queued -= 1
            self._refusedCount += 1
            self._forgetIfUnused(queue)
            self._log.warn(
                "{broker}: {count} requests wait for workers already (maxQueuedRequests);"
                " dropped one for {service!r} from {client!r} ({refused} refused so far)",
                broker=self,
                count=self._queued,
                refused=self._refusedCount,
                service=service,
                client=client,
            )

    def _answerManagementRequest(self, client: bytes, service: bytes, body: list[bytes]) -> None:
        if service == MMI_SERVICE:
            known = self._services.get(body[0])
            answer = MMI_FOUND if known is not None and known.workers else MMI_NOT_FOUND
        else:
            answer = MMI_NOT_IMPLEMENTED
        self._sendToClient(client, service, [answer])

    def _fromWorker(self, identity: bytes, frames: Message) -> None:
        worker = self._workers.get(identity)
        try:
            command = parseWorkerCommand(frames)
        except Malformed as error:
            self._disconnect(identity, str(error))
            return
        if command.command == DISCONNECT:
            # The worker has gone: no command, not even DISCONNECT, may follow.
            if worker is not None:
                self._forget(worker, "it disconnected")
            return
        if worker is None:
            if command.command == READY:
                self._register(identity, command.service)
            else:
                # Also what a worker of the broker that ran here before hears: it then
                # reconnects and registers again.
                self._disconnect(identity, f"{commandName(command.command)} before READY")
            return
        # Any command is as good as a heartbeat.
        worker.heardAt = self._reactor.seconds()
        if command.command == HEARTBEAT:
            return
        if command.command == REPLY and worker.client is not None:
            if command.client == worker.client:
                self._replied(worker, worker.client, command.body)
                return
            self._disconnect(identity, "REPLY for a client whose request it does not hold")
            return
        self._disconnect(identity, f"unexpected {commandName(command.command)}")

    def _register(self, identity: bytes, service: bytes) -> None:
        if service.startswith(MMI_NAMESPACE):
            self._disconnect(identity, f"READY for {service!r}: the mmi. services are ours")
            return
        worker = self._workers[identity] = _Worker(identity, service, self._reactor.seconds())
        queue = self._service(service)
        queue.workers += 1
        self._log.info(
            "{broker}: worker {worker!r} ready for {service!r}",
            broker=self,
            worker=identity,
            service=service,
        )
        # Greet it with a heartbeat: its countdown to taking us for dead started when it
        # connected, and should not run out before our first regular heartbeat.
        if self._sendToWorker(worker, HEARTBEAT):
            self._setIdle(worker, queue)

    def _replied(self, worker: _Worker, client: bytes, body: list[bytes]) -> None:
        worker.client = None
        self._sendToClient(client, worker.service, body)
        self._setIdle(worker, self._services[worker.service])

    # -- dispatch ----------------------------------------------------------------------------

    def _service(self, name: bytes) -> _Service:
        queue = self._services.get(name)
        if queue is None:
            queue = self._services[name] = _Service(name)
        return queue

    def _setIdle(self, worker: _Worker, queue: _Service) -> None:
        queue.idle[worker.identity] = None
        self._dispatch(queue)

    def _dispatch(self, queue: _Service) -> None:
        """Hand waiting requests to idle workers, the longest idle first."""
        while queue.requests and queue.idle:
            worker = self._workers[next(iter(queue.idle))]
            del queue.idle[worker.identity]
            # Taken off the queue only once sent: a worker found gone forgets itself, and
            # with it perhaps the service, unless a request still waits in it.
            request = queue.requests[0]
            if self._sendToWorker(worker, REQUEST, request.client, b"", *request.body):
                queue.requests.popleft()
                self._queued -= 1
                worker.client = request.client
                # Its silence while busy counts from here, not from its last heartbeat.
                worker.heardAt = self._reactor.seconds()
        self._forgetIfUnused(queue)

    def _forgetIfUnused(self, queue: _Service) -> None:
        # Services come and go with their workers and requests: memory stays bounded by
        # those, whatever names peers send.
        if not queue.workers and not queue.requests:
            self._services.pop(queue.name, None)

    # -- sending -----------------------------------------------------------------------------

    def _sendToWorker(self, worker: _Worker, command: bytes, *frames: bytes) -> bool:
        """Send a command to a worker; False (the worker forgotten) if it has disconnected."""
        try:
            self.connection.send([worker.identity, *workerCommand(command, *frames)])
        except ZmqUnroutableError:
            self._forget(worker, "it disconnected")
            return False
        worker.sentSinceTick = True
        return True

    def _sendToClient(self, client: bytes, service: bytes, body: list[bytes]) -> None:
        try:
            self.connection.send([client, *clientMessage(service, body)])
        except ZmqUnroutableError:
            self._log.info(
                "{broker}: client {client!r} has gone; its reply from {service!r} dropped",
                broker=self,
                client=client,
                service=service,
            )

    def _disconnect(self, identity: bytes, reason: str) -> None:
        """Tell a worker DISCONNECT for breaking the protocol, and forget it."""
        self._log.warn(
            "{broker}: sent DISCONNECT to {worker!r}: {reason}",
            broker=self,
            worker=identity,
            reason=reason,
        )
        worker = self._workers.get(identity)
        if worker is not None:
            self._forget(worker, "it broke the protocol")
        try:
            self.connection.send([identity, *workerCommand(DISCONNECT)])
        except ZmqUnroutableError:
            pass  # gone already, which is all DISCONNECT asks

    def _forget(self, worker: _Worker, why: str) -> None:
        del self._workers[worker.identity]
        queue = self._services[worker.service]
        queue.workers -= 1
        queue.idle.pop(worker.identity, None)
        if worker.client is not None:
            self._log.warn(
                "{broker}: forgot worker {worker!r} of {service!r} ({why}) with the request"
                " of {client!r} in hand; that client has to retry",
                broker=self,
                worker=worker.identity,
                service=worker.service,
                why=why,
                client=worker.client,
            )
        else:
            self._log.info(
                "{broker}: forgot worker {worker!r} of {service!r} ({why})",
                broker=self,
                worker=worker.identity,
                service=worker.service,
                why=why,
            )
        self._forgetIfUnused(queue)

    # -- time --------------------------------------------------------------------------------

    def _expired(self, worker: _Worker, now: float) -> bool:
        """Whether ``worker`` has been silent too long: idle, for ``heartbeatLiveness``
        intervals; busy, for ``busyWorkerExpiry`` seconds (never when that is ``None``)."""
        if worker.client is None:
            silence = self.heartbeatLiveness * self.heartbeatInterval
        elif self.busyWorkerExpiry is None:
            return False
        else:
            silence = self.busyWorkerExpiry
        return now >= worker.heardAt + silence

    def _guardedTick(self) -> None:
        # An exception escaping a LoopingCall stops it for good, and with it every
        # heartbeat and expiry after it: log it, and beat again next time.
        try:
            self._tick()
        except Exception:
            self._log.failure("{broker}: a heartbeat tick failed", broker=self)

    def _tick(self) -> None:
        """Every heartbeat interval: expire silent workers and stale requests, heartbeat."""
        now = self._reactor.seconds()
        judging = True
        if any(self._expired(worker, now) for worker in self._workers.values()):
            # A worker may only look silent: after application code held the reactor longer
            # than the liveness, this tick runs before the reactor has read what the workers
            # sent meanwhile. Read it first, and judge only once nothing waits unread; if
            # the read budget ran out first, the next tick judges.
            judging = not self.connection._readWaiting()
        for worker in list(self._workers.values()):
            if judging and self._expired(worker, now):
                if worker.client is None:
                    why = "expired: no heartbeat"
                else:
                    why = f"expired: silent for {self.busyWorkerExpiry} s while busy"
                self._forget(worker, why)
                continue
            # The RFC: peers should not send HEARTBEAT while they send other commands.
            if worker.sentSinceTick or self._sendToWorker(worker, HEARTBEAT):
                worker.sentSinceTick = False
        if self.requestExpiry is not None:
            oldest = now - self.requestExpiry
            for queue in list(self._services.values()):
                requests = queue.requests
                while requests and requests[0].queuedAt <= oldest:
                    request = requests.popleft()
                    self._queued -= 1
                    self._expiredCount += 1
                    self._log.warn(
                        "{broker}: request for {service!r} from {client!r} waited"
                        " {expiry} s for a worker; dropped",
                        broker=self,
                        service=queue.name,
                        client=request.client,
                        expiry=self.requestExpiry,
                    )
                self._forgetIfUnused(queue)

    def _disconnectAll(self) -> None:
        for identity in list(self._workers):
            try:
                self.connection.send([identity, *workerCommand(DISCONNECT)])
            except ZmqUnroutableError:
                pass  # gone already

    def _stopped(self) -> None:
        if self._heartbeat.running:
            self._heartbeat.stop()
        if self._queued:
            self._log.info(
                "{broker}: shut down with {count} request(s) waiting; dropped",
                broker=self,
                count=self._queued,
            )
        self._workers.clear()
        self._services.clear()
        self._queued = 0


def _abridged(frames: Sequence[bytes], limit: int = 8, size: int = 64) -> list[bytes]:
    """The first frames, each cut short, for a log line about a (maybe huge) bad message."""
    return [frame[:size] for frame in frames[:limit]]
