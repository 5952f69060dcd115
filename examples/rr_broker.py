"""
Request-reply broker: clients and workers that know only the broker, never each other.

The broker is a ``ZmqProxy`` between a ROUTER that clients connect to and a DEALER that
workers connect to. The ROUTER adds each client's identity to its requests and the DEALER
deals them out round-robin to the workers; replies come back along the same path, the
envelope telling the ROUTER which client each one is for. The workers are ordinary
``ZmqREPConnection`` servers and the clients ordinary ``ZmqREQConnection`` clients: neither
needs to know a broker is in between, and workers and clients can come and go freely.

Everything runs in one reactor: the broker, three workers and three clients, each client
making a few requests in turn. Run it with::

    python examples/rr_broker.py
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater, react

from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqProxy,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
)

WORKERS = 3
CLIENTS = 3
REQUESTS_PER_CLIENT = 4
WORK_SECONDS = 0.02
"""How long a worker "works" on each request."""
REPLY_TIMEOUT = 5.0


class Worker(ZmqREPConnection):
    """A server that does not know about the broker: it answers whoever asks."""

    def __init__(self, factory: ZmqFactory, endpoint: ZmqEndpoint, name: str) -> None:
        self.name = name
        super().__init__(factory, endpoint)

    async def handleRequest(self, *parts: bytes) -> list[bytes]:
        await deferLater(self.factory.reactor, WORK_SECONDS)
        return [b"World", self.name.encode()]


async def client(factory: ZmqFactory, address: str, name: str) -> Counter[str]:
    """Make a few requests one after the other; count which worker answered each."""
    connection = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    answeredBy: Counter[str] = Counter()
    try:
        for n in range(1, REQUESTS_PER_CLIENT + 1):
            reply, worker = await connection.sendMsg(b"Hello %d" % n, timeout=REPLY_TIMEOUT)
            print(f"{name}: request {n} -> {reply.decode()} (from {worker.decode()})")
            answeredBy[worker.decode()] += 1
    finally:
        connection.shutdown()
    return answeredBy


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    try:
        frontend = ZmqRouterConnection(
            factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")
        )
        backend = ZmqDealerConnection(
            factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")
        )
        broker = ZmqProxy(factory, frontend, backend)
        print(f"broker: clients connect to {frontend.lastEndpoint}")
        print(f"broker: workers connect to {backend.lastEndpoint}")

        workerEndpoint = ZmqEndpoint(ZmqEndpointType.connect, backend.lastEndpoint)
        for n in range(1, WORKERS + 1):
            Worker(factory, workerEndpoint, f"worker {n}")

        results = await gatherResults(
            [
                Deferred.fromCoroutine(client(factory, frontend.lastEndpoint, f"client {n}"))
                for n in range(1, CLIENTS + 1)
            ],
            consumeErrors=True,
        )
        total = sum(results, Counter[str]())
        print(f"all {CLIENTS} clients got all {sum(total.values())} replies")
        for worker, count in sorted(total.items()):
            print(f"{worker} answered {count} requests")
        print(f"broker: forwarded {broker.forwarded} messages (requests and replies)")
    finally:
        await factory.shutdown()


if __name__ == "__main__":
    react(main)
