"""
Paranoid Pirate: a queue and workers that watch each other with heartbeats.

The queue is two ROUTER connections on the reactor, one for clients and one for workers.
Workers are DEALERs: each says READY when it connects, then queue and workers send each
other a HEARTBEAT every ``HEARTBEAT_INTERVAL`` seconds, and each takes the other for dead
after ``HEARTBEAT_LIVENESS`` intervals of silence:

- the queue forgets a worker it has not heard from in that time, busy or idle, so no
  request goes to a worker that has frozen or died;
- a worker that has not heard from the queue in that time closes its socket, waits, and
  connects again with a new socket (a new identity), saying READY again; the wait doubles
  after each failed attempt, from ``RECONNECT_INTERVAL_INIT`` up to ``RECONNECT_INTERVAL_MAX``.

A request that was lost with a worker or with the queue is recovered by the client, a Lazy
Pirate (see lazy_pirate.py) that retries after a timeout. Retries that waited in the client's
socket while the queue was down may all get through, so a worker can see the same request
twice: the service has to be idempotent (this one echoes).

The demo runs in one reactor: the queue, three workers and a client making requests in turn.
One worker freezes for good while holding a request (it stops answering and stops
heartbeating): the queue expires it and the client's retry goes to another worker. Later the
queue itself crashes and restarts on the same ports a second later: the workers notice the
silence, reconnect with backoff, and the client's retries get through once they are back.
Run it with::

    python examples/paranoid_pirate.py
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING, Any

from twisted.internet.task import LoopingCall, deferLater, react

from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqREQConnection,
    ZmqRouterConnection,
    ZmqUnroutableError,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.base import DelayedCall

# The protocol between queue and workers. Control messages are one frame; a request or a
# reply is [client envelope..., b"", body...], the envelope returned untouched by the worker.
PPP_READY = b"\x01"
"""A worker's first message: it is there and idle."""
PPP_HEARTBEAT = b"\x02"
"""Either side's "still alive", every heartbeat interval."""
HEARTBEAT_LIVENESS = 3
"""Heartbeat intervals of silence after which a peer is taken for dead."""
HEARTBEAT_INTERVAL = 0.1
"""Seconds between heartbeats (small so the demo is quick; a second is typical)."""
RECONNECT_INTERVAL_INIT = 0.1
"""Seconds a worker waits before its first reconnection..."""
RECONNECT_INTERVAL_MAX = 1.6
"""...doubling after each failure up to this."""

# The demo.
WORKERS = 3
REQUESTS = 12
WORK_SECONDS = 0.01
FROZEN_WORKER = "w3"
"""This worker answers one request, then freezes for good while holding its second."""
QUEUE_CRASH_AFTER = 8
"""The queue crashes after this many requests are answered..."""
QUEUE_DOWNTIME = 1.0
"""...and is back on the same ports this many seconds later."""
CLIENT_TIMEOUT = 0.5
CLIENT_RETRIES = 5
SETTLE_INTERVALS = 30
"""At the end, heartbeat intervals to wait at most for every healthy worker to be back."""


def describe(identity: bytes) -> str:
    """A worker's identity for printing: ours are text, another worker's may be any bytes
    (libzmq makes up five binary ones for a socket that sets none)."""
    return identity.decode("utf-8", "backslashreplace")


def expiry(reactor: Any) -> float:
    """When a peer heard from now is taken for dead if nothing more is heard from it."""
    return float(reactor.seconds()) + HEARTBEAT_LIVENESS * HEARTBEAT_INTERVAL


class QueueSocket(ZmqRouterConnection):
    """One side of the queue: hands every message to ``onMessage(sender, frames)``."""

    # Sending to a peer that has gone raises ZmqUnroutableError instead of dropping quietly,
    # so the queue learns at once that a worker it still lists has disconnected.
    routerMandatory = True

    def __init__(
        self,
        factory: ZmqFactory,
        address: str,
        onMessage: Callable[[bytes, list[bytes]], None],
    ) -> None:
        self.onMessage = onMessage
        super().__init__(factory, ZmqEndpoint(ZmqEndpointType.bind, address))

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.onMessage(senderId, list(frames))


class PirateQueue:
    """
    The Paranoid Pirate queue: requests from clients go to the idle worker that has waited
    longest; workers that fall silent are forgotten.
    """

    def __init__(self, factory: ZmqFactory, frontend: str, backend: str) -> None:
        self.reactor = factory.reactor
        self.workers: dict[bytes, float] = {}
        """Every live worker -> when it expires."""
        self.idle: dict[bytes, None] = {}
        """The idle workers, in the order they became idle (a dict as an ordered set)."""
        self.frontend = QueueSocket(factory, frontend, self.fromClient)
        self.backend = QueueSocket(factory, backend, self.fromWorker)
        # Read requests only while a worker is idle: the rest wait in libzmq's queues.
        self.frontend.pauseProducing()
        self.heartbeat = LoopingCall(self.beat)
        self.heartbeat.clock = self.reactor
        self.heartbeat.start(HEARTBEAT_INTERVAL, now=False)

    def fromWorker(self, workerId: bytes, frames: list[bytes]) -> None:
        name = describe(workerId)
        known = workerId in self.workers
        if known or frames == [PPP_READY]:
            self.workers[workerId] = expiry(self.reactor)
        if frames == [PPP_READY]:
            print(f"queue: worker {name} ready")
            # A heartbeat right away: the worker's countdown started when it connected, and
            # should not run out before the first regular heartbeat.
            self.heartbeatTo(workerId)
            self.setIdle(workerId)
        elif frames == [PPP_HEARTBEAT]:
            # Refreshing the expiry (above) is all a heartbeat does. One from a worker the
            # queue has written off is ignored: that worker hears no heartbeats from the
            # queue, so it reconnects and says READY again.
            pass
        elif b"" in frames:
            self.toClient(frames)
            if known:
                self.setIdle(workerId)
            else:
                print(f"queue: passed on a late reply from expired worker {name}")
        else:
            print(f"queue: invalid message from worker {name}: {frames!r}")

    def setIdle(self, workerId: bytes) -> None:
        self.idle[workerId] = None
        self.frontend.resumeProducing()

    def fromClient(self, clientId: bytes, frames: list[bytes]) -> None:
        while self.idle:
            workerId = next(iter(self.idle))
            del self.idle[workerId]
            try:
                self.backend.send([workerId, clientId, *frames])
                break
            except ZmqUnroutableError:
                self.forget(workerId, "disconnected")
        else:
            # Not reached while the frontend is paused whenever no worker is idle; were it
            # reached, the client's retry would make up for the dropped request.
            print("queue: no idle worker; request dropped")
        if not self.idle:
            self.frontend.pauseProducing()

    def toClient(self, frames: list[bytes]) -> None:
        try:
            self.frontend.send(frames)
        except ZmqUnroutableError:
            print("queue: the client of a reply has gone; reply dropped")

    def beat(self) -> None:
        """Expire the workers that fell silent, and send the others a heartbeat."""
        now = self.reactor.seconds()
        for workerId, expires in list(self.workers.items()):
            if expires < now:
                self.forget(workerId, "expired: no heartbeat")
                continue
            self.heartbeatTo(workerId)
        if not self.idle:
            self.frontend.pauseProducing()

    def heartbeatTo(self, workerId: bytes) -> None:
        try:
            self.backend.send([workerId, PPP_HEARTBEAT])
        except ZmqUnroutableError:
            self.forget(workerId, "disconnected")

    def forget(self, workerId: bytes, why: str) -> None:
        del self.workers[workerId]
        self.idle.pop(workerId, None)
        print(f"queue: forgot worker {describe(workerId)} ({why})")

    def shutdown(self) -> None:
        if self.heartbeat.running:
            self.heartbeat.stop()
        self.frontend.shutdown()
        self.backend.shutdown()


class WorkerSocket(ZmqDealerConnection):
    """A worker's connection to the queue; a worker makes a new one to reconnect."""

    # libzmq retries a refused connection every 100 ms by default. With heartbeats as
    # frequent as this demo's, that would eat most of a new socket's liveness when the queue
    # comes back, so retry at a fraction of the heartbeat interval (milliseconds).
    reconnectInterval = max(1, round(HEARTBEAT_INTERVAL * 1000 / 5))

    def __init__(self, worker: PirateWorker, identity: str) -> None:
        self.worker = worker
        super().__init__(
            worker.factory,
            ZmqEndpoint(ZmqEndpointType.connect, worker.queueAddress),
            identity=identity,
        )

    def gotMessage(self, *frames: bytes) -> None:
        self.worker.fromQueue(self, list(frames))


class PirateWorker:
    """
    A Paranoid Pirate worker: READY, then heartbeats and work; reconnects with backoff when
    the queue falls silent. An echo service: the reply is the request.

    :param freezeAfter: answer this many requests, then freeze for good on the next one
        (``None``: never), to show the queue expiring a frozen worker.
    """

    def __init__(
        self, factory: ZmqFactory, name: str, queueAddress: str, freezeAfter: int | None = None
    ) -> None:
        self.factory = factory
        self.reactor = factory.reactor
        self.name = name
        self.queueAddress = queueAddress
        self.freezeAfter = freezeAfter
        self.answered = 0
        self.frozen = False
        self.generation = 0
        self.liveness = HEARTBEAT_LIVENESS
        self.reconnectDelay = RECONNECT_INTERVAL_INIT
        self.reconnectCall: DelayedCall | None = None
        self.socket: WorkerSocket | None = None
        self.connect()
        self.heartbeat = LoopingCall(self.beat)
        self.heartbeat.clock = self.reactor
        self.heartbeat.start(HEARTBEAT_INTERVAL, now=False)

    def connect(self) -> None:
        self.reconnectCall = None
        self.generation += 1
        # A new identity for each socket: the queue must not mistake it for the old one.
        self.socket = WorkerSocket(self, f"{self.name}.{self.generation}")
        self.socket.send(PPP_READY)
        self.liveness = HEARTBEAT_LIVENESS

    def beat(self) -> None:
        """Count a heartbeat interval of silence from the queue, then send a heartbeat."""
        if self.socket is None:
            return  # waiting to reconnect
        self.liveness -= 1
        if self.liveness > 0:
            self.socket.send(PPP_HEARTBEAT)
            return
        print(
            f"worker {self.identity}: heartbeat failure, the queue is unreachable;"
            f" reconnecting in {self.reconnectDelay:.1f} s"
        )
        self.socket.shutdown()
        self.socket = None
        self.reconnectCall = self.reactor.callLater(self.reconnectDelay, self.connect)
        self.reconnectDelay = min(2 * self.reconnectDelay, RECONNECT_INTERVAL_MAX)

    @property
    def identity(self) -> str:
        return f"{self.name}.{self.generation}"

    def fromQueue(self, socket: WorkerSocket, frames: list[bytes]) -> None:
        if socket is not self.socket or self.frozen:
            return
        # Anything from the queue shows it is alive.
        self.liveness = HEARTBEAT_LIVENESS
        self.reconnectDelay = RECONNECT_INTERVAL_INIT
        if frames == [PPP_HEARTBEAT]:
            return
        if b"" not in frames:
            print(f"worker {self.identity}: invalid message from the queue: {frames!r}")
            return
        delimiter = frames.index(b"")
        envelope, body = frames[: delimiter + 1], frames[delimiter + 1 :]
        request = b" ".join(body).decode()
        if self.answered == self.freezeAfter:
            print(f"worker {self.identity}: freezing for good, with request {request} in hand")
            self.frozen = True
            self.heartbeat.stop()
            return
        print(f"worker {self.identity}: working on request {request}")
        self.reactor.callLater(WORK_SECONDS, self.finish, socket, [*envelope, *body])

    def finish(self, socket: WorkerSocket, reply: list[bytes]) -> None:
        if socket.closed:
            return  # reconnected meanwhile: the client will retry
        self.answered += 1
        socket.send(reply)

    def stop(self) -> None:
        if self.heartbeat.running:
            self.heartbeat.stop()
        if self.reconnectCall is not None and self.reconnectCall.active():
            self.reconnectCall.cancel()
        if self.socket is not None:
            self.socket.shutdown()


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    queue = PirateQueue(factory, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
    frontend, backend = queue.frontend.lastEndpoint, queue.backend.lastEndpoint
    print(f"queue: clients connect to {frontend}, workers to {backend}")
    workers = [
        PirateWorker(factory, name, backend, freezeAfter=1 if name == FROZEN_WORKER else None)
        for name in (f"w{n}" for n in range(1, WORKERS + 1))
    ]

    def restartQueue() -> None:
        nonlocal queue
        queue = PirateQueue(factory, frontend, backend)
        print("queue: restarted on the same ports")

    restart: DelayedCall | None = None
    try:
        client = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, frontend))
        for n in range(1, REQUESTS + 1):
            started = monotonic()
            reply = await client.sendMsg(b"%d" % n, timeout=CLIENT_TIMEOUT, retries=CLIENT_RETRIES)
            elapsed = monotonic() - started
            print(f"client: request {n} answered with {reply[0].decode()} in {elapsed:.2f} s")
            if n == QUEUE_CRASH_AFTER:
                print(f"queue: crashing; back in {QUEUE_DOWNTIME} s")
                queue.shutdown()
                restart = reactor.callLater(QUEUE_DOWNTIME, restartQueue)
        print(f"client: all {REQUESTS} requests answered")

        # Give the workers that were reconnecting when the client finished time to be back.
        for _ in range(SETTLE_INTERVALS):
            if len(queue.workers) == WORKERS - 1:
                break
            await deferLater(reactor, HEARTBEAT_INTERVAL)
        names = ", ".join(sorted(describe(workerId) for workerId in queue.workers))
        print(f"queue: live workers: {names} ({FROZEN_WORKER} stays frozen)")
    finally:
        if restart is not None and restart.active():
            restart.cancel()
        queue.shutdown()
        for worker in workers:
            worker.stop()
        await factory.shutdown()


if __name__ == "__main__":
    react(main)
