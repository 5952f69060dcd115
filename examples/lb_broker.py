"""
Load-balancing broker: each request goes to a worker that is ready for it.

A plain round-robin broker (see rr_broker.py) deals requests out evenly, so a slow worker
gets as many as a fast one and requests queue up behind it. ``ZmqLoadBalancingBroker``
instead keeps a queue of *ready* workers: a worker says ``READY`` once, and every reply it
sends makes it ready again, so a request always goes to the worker that has been idle the
longest, and fast workers end up doing more of the work.

A worker here is a ``ZmqREQConnection`` whose "requests" are its answers: it sends
``READY``, the reply to that is its first job (``[client, b"", *request]``), it answers with
``[client, b"", *reply]``, the reply to *that* is its next job, and so on. The ``client``
frame is the broker's business; the worker hands it back untouched.

Everything runs in one reactor: the broker, a fast, a medium and a slow worker, and a few
clients making requests in turn. Run it with::

    python examples/lb_broker.py
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater, react

from txzmq2 import (
    ZmqConnectionClosed,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqLoadBalancingBroker,
    ZmqREQConnection,
)

WORKER_READY = b"READY"
"""What a worker sends to announce itself (the broker takes any one-frame message)."""
WORKERS = {"fast worker": 0.005, "medium worker": 0.02, "slow worker": 0.06}
"""Worker name -> seconds it takes per request."""
CLIENTS = 4
REQUESTS_PER_CLIENT = 6
REPLY_TIMEOUT = 5.0


async def worker(connection: ZmqREQConnection, name: str, workSeconds: float) -> int:
    """Serve requests from the broker until the connection is shut down; count them."""
    reactor = connection.factory.reactor
    handled = 0
    try:
        job = await connection.sendMsg(WORKER_READY)
        while True:
            client, empty, *_request = job
            if empty != b"":
                raise ValueError(f"{name}: malformed job from the broker: {job!r}")
            await deferLater(reactor, workSeconds)
            handled += 1
            job = await connection.sendMsg(client, b"", b"OK", name.encode())
    except ZmqConnectionClosed:
        return handled  # shut down while waiting for the next job: the normal way out


async def client(factory: ZmqFactory, address: str, name: str) -> Counter[str]:
    """Make a few requests one after the other; count which worker answered each."""
    connection = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    answeredBy: Counter[str] = Counter()
    try:
        for n in range(1, REQUESTS_PER_CLIENT + 1):
            reply, worker = await connection.sendMsg(b"job %d" % n, timeout=REPLY_TIMEOUT)
            print(f"{name}: job {n} -> {reply.decode()} from the {worker.decode()}")
            answeredBy[worker.decode()] += 1
    finally:
        connection.shutdown()
    return answeredBy


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    try:
        broker = ZmqLoadBalancingBroker(
            factory,
            frontend=ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"),
            backend=ZmqEndpoint(ZmqEndpointType.bind, "inproc://lb-broker-workers"),
        )
        print(f"broker: clients connect to {broker.frontend.lastEndpoint}")
        print(f"broker: workers connect to {broker.backend.lastEndpoint}")

        workerConnections = []
        running = []
        for name, workSeconds in WORKERS.items():
            connection = ZmqREQConnection(
                factory, ZmqEndpoint(ZmqEndpointType.connect, broker.backend.lastEndpoint)
            )
            workerConnections.append(connection)
            running.append(Deferred.fromCoroutine(worker(connection, name, workSeconds)))

        replies = await gatherResults(
            [
                Deferred.fromCoroutine(
                    client(factory, broker.frontend.lastEndpoint, f"client {n}")
                )
                for n in range(1, CLIENTS + 1)
            ],
            consumeErrors=True,
        )
        total = sum(replies, Counter[str]())
        print(f"all {CLIENTS} clients got all {sum(total.values())} replies")

        # Workers stop when their connection is shut down, and say how much they did.
        for connection in workerConnections:
            connection.shutdown()
        handled = await gatherResults(running, consumeErrors=True)
        for name, count in zip(WORKERS, handled, strict=True):
            print(f"{name} ({WORKERS[name] * 1000:.0f} ms a job) handled {count} jobs")
    finally:
        await factory.shutdown()


if __name__ == "__main__":
    react(main)
