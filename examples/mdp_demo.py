"""
Majordomo: a broker, two services with several workers each, and a client, in one program.

- The broker (``MajordomoBroker``) listens on tcp loopback, on a port the OS picks.
- Service ``upper`` has three workers that upper-case a word; service ``add`` has two that
  add two numbers. Each handler is a coroutine that takes a few milliseconds, and each
  reply says which worker made it.
- The client (``MajordomoClient``) sends all its requests at once, before any worker has
  started: the broker holds them until workers register (READY), then hands each to the
  worker of its service that has been idle the longest. All are outstanding together.
- At the end the client asks the broker about services (8/MMI ``mmi.service``): ``200``
  for a service with workers, ``404`` for one without, ``501`` for an ``mmi.`` service the
  broker does not implement.

Every part heartbeats every 0.1 s here (2.5 s by default) so a lost peer would be noticed
quickly. Run it with::

    python examples/mdp_demo.py
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.defer import gatherResults
from twisted.internet.task import deferLater, react

from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory
from txzmq2.mdp import MajordomoBroker, MajordomoClient, MajordomoWorker

HEARTBEAT_INTERVAL = 0.1
"""Seconds between heartbeats, the same for broker and workers."""
TIMEOUT = 5.0
"""Seconds the client waits for each reply."""
WORK_SECONDS = 0.01
"""How long a worker takes over a request."""

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
WORDS += ["golf", "hotel", "india", "juliet", "kilo", "lima"]
PAIRS = [(1, 2), (3, 4), (5, 6), (7, 8), (10, 20), (30, 40), (50, 60), (70, 80)]


def makeWorkers(factory: ZmqFactory, address: str, handled: Counter[str]) -> list[Any]:
    """Three workers of ``upper`` and two of ``add``, each counting what it handles."""
    reactor = factory.reactor
    endpoint = ZmqEndpoint(ZmqEndpointType.connect, address)
    options: dict[str, Any] = {"heartbeatInterval": HEARTBEAT_INTERVAL}

    def upper(name: str) -> Any:
        async def handler(word: bytes) -> list[bytes]:
            await deferLater(reactor, WORK_SECONDS)
            handled[name] += 1
            return [word.upper(), name.encode()]

        return handler

    def add(name: str) -> Any:
        async def handler(a: bytes, b: bytes) -> list[bytes]:
            await deferLater(reactor, WORK_SECONDS)
            handled[name] += 1
            return [b"%d" % (int(a) + int(b)), name.encode()]

        return handler

    workers = [
        MajordomoWorker(factory, endpoint, "upper", upper(f"upper-{n}"), **options)
        for n in (1, 2, 3)
    ]
    workers += [
        MajordomoWorker(factory, endpoint, "add", add(f"add-{n}"), **options) for n in (1, 2)
    ]
    return workers


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    broker = MajordomoBroker(
        factory,
        ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"),
        heartbeatInterval=HEARTBEAT_INTERVAL,
    )
    address = broker.lastEndpoint
    print(f"broker: listening on {address}")
    client = MajordomoClient(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    workers: list[MajordomoWorker] = []
    try:
        # Every request goes out now, while no worker exists: the broker holds them.
        uppers = [client.request("upper", word.encode(), timeout=TIMEOUT) for word in WORDS]
        sums = [client.request("add", b"%d" % a, b"%d" % b, timeout=TIMEOUT) for a, b in PAIRS]
        print(f"client: sent {len(uppers)} requests to upper and {len(sums)} to add")

        handled: Counter[str] = Counter()
        workers = makeWorkers(factory, address, handled)
        perService = Counter(worker.service.decode() for worker in workers)
        print(f"workers: started {perService['upper']} for upper, {perService['add']} for add")

        for word, (result, name) in zip(WORDS, await gatherResults(uppers), strict=True):
            print(f"client: upper({word!r}) -> {result.decode()!r} from {name.decode()}")
        for (a, b), (result, name) in zip(PAIRS, await gatherResults(sums), strict=True):
            print(f"client: add({a}, {b}) -> {result.decode()} from {name.decode()}")

        for service in ("upper", "add", "nope"):
            [code] = await client.request("mmi.service", service.encode(), timeout=TIMEOUT)
            print(f"client: mmi.service {service} -> {code.decode()}")
        [code] = await client.request("mmi.workers", b"upper", timeout=TIMEOUT)
        print(f"client: mmi.workers -> {code.decode()}")

        for name, count in sorted(handled.items()):
            print(f"worker {name} handled {count} request{'' if count == 1 else 's'}")
        print(
            f"done: {len(uppers) + len(sums)} requests answered by {len(handled)} workers"
            f" of {len(broker.services)} services"
        )
    finally:
        for worker in workers:
            worker.shutdown()
        client.shutdown()
        broker.shutdown()
        await factory.shutdown()


if __name__ == "__main__":
    react(main)
