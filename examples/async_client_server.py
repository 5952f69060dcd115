"""
Asynchronous client/server: clients that send many requests without waiting for replies,
and a server that answers them in whatever order its workers finish.

Clients are DEALERs with identities of their own: they send all their requests at once and
take replies as they come. The server is a ``ZmqProxy`` between a ROUTER frontend (facing the
clients; it prefixes each request with its client's identity) and a DEALER backend (dealing
requests out round-robin over inproc to the workers). Workers are DEALERs too: a request
reaches one as ``[client, request]``, and it answers with ``[client, reply]`` whenever it is
done, which the ROUTER routes back to that client. Nothing is lock-step: a client never waits
for a reply before sending more, and a worker works on many requests at once.

Everything runs in one reactor: the server, four workers of different speeds and three
clients. Each client prints its replies as they arrive, out of order. Run it with::

    python examples/async_client_server.py
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import react

from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqProxy,
    ZmqRouterConnection,
)

CLIENTS = 3
REQUESTS_PER_CLIENT = 5
WORKER_SECONDS = (0.05, 0.01, 0.04, 0.02)
"""Seconds each worker takes per request (one entry per worker)."""
REPLY_TIMEOUT = 5.0
"""Seconds a client waits for all its replies before giving up."""


class Client(ZmqDealerConnection):
    """
    Sends all its requests at once; ``done`` fires with the numbers of the requests
    answered, in the order their replies came, once all are in.
    """

    def __init__(self, factory: ZmqFactory, address: str, name: str) -> None:
        self.name = name
        self.answered: list[int] = []
        self.done: Deferred[list[int]] = Deferred()
        super().__init__(factory, ZmqEndpoint(ZmqEndpointType.connect, address), identity=name)

    def start(self) -> Deferred[list[int]]:
        for n in range(1, REQUESTS_PER_CLIENT + 1):
            self.sendMsg(b"%d" % n)
        print(f"{self.name}: sent {REQUESTS_PER_CLIENT} requests")
        return self.done.addTimeout(REPLY_TIMEOUT, self.factory.reactor)

    def gotMessage(self, *frames: bytes) -> None:
        request, worker = frames
        self.answered.append(int(request))
        print(f"{self.name}: reply to request {request.decode()} from {worker.decode()}")
        if len(self.answered) == REQUESTS_PER_CLIENT:
            self.done.callback(self.answered)


class Worker(ZmqDealerConnection):
    """
    Answers each ``[client, request]`` with ``[client, request, name]`` after a while
    (an echo, signed).
    """

    def __init__(self, factory: ZmqFactory, address: str, name: str, workSeconds: float) -> None:
        self.name = name
        self.workSeconds = workSeconds
        super().__init__(factory, ZmqEndpoint(ZmqEndpointType.connect, address))

    def gotMessage(self, *frames: bytes) -> None:
        client, request = frames
        # Work on it in the background and take the next request meanwhile.
        reply = [client, request, self.name.encode()]
        self.factory.reactor.callLater(self.workSeconds, self.sendMultipart, reply)


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    try:
        frontend = ZmqRouterConnection(
            factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")
        )
        backend = ZmqDealerConnection(
            factory, ZmqEndpoint(ZmqEndpointType.bind, "inproc://async-server-workers")
        )
        server = ZmqProxy(factory, frontend, backend)
        print(f"server: clients connect to {frontend.lastEndpoint}")
        for n, workSeconds in enumerate(WORKER_SECONDS, 1):
            Worker(factory, backend.lastEndpoint, f"worker {n}", workSeconds)

        clients = [
            Client(factory, frontend.lastEndpoint, f"client-{letter}")
            for letter in "abc"[:CLIENTS]
        ]
        results = await gatherResults([client.start() for client in clients], consumeErrors=True)
        for client, answered in zip(clients, results, strict=True):
            order = " ".join(str(n) for n in answered)
            print(f"{client.name}: all {len(answered)} replies, to requests {order} in turn")
        print(f"server: forwarded {server.forwarded} messages")
    finally:
        await factory.shutdown()


if __name__ == "__main__":
    react(main)
