"""
Freelance: brokerless reliable request-reply between a client and three servers.

- Three Freelance servers (``FreelanceServer``) on tcp loopback answer each request with
  their name.
- The ``FreelanceClient`` pings each server every 0.1 s and sends each request to one
  server it believes alive, preferring the one that answered last, then the earlier ones.
  A try unanswered within 0.2 s goes to the next server.
- Twelve requests, four at a time. After the first batch server ``one`` is stopped, after
  the second ``two``: every request is still answered, by whoever is left.

Run it with::

    python examples/freelance.py
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from twisted.internet.defer import gatherResults
from twisted.internet.task import react

from txzmq2 import ZmqFactory
from txzmq2.ha import FreelanceClient, FreelanceServer

NAMES = ["one", "two", "three"]
BATCH = 4


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    try:
        servers = {
            name: FreelanceServer(
                factory, "tcp://127.0.0.1:*", lambda n, name=name: [name.encode(), n]
            )
            for name in NAMES
        }
        client = FreelanceClient(
            factory,
            [server.lastEndpoint for server in servers.values()],
            timeout=0.2,
            retries=5,
            pingInterval=0.1,
        )
        answered: Counter[str] = Counter()
        for batch, stopped in enumerate(["one", "two", None]):
            numbers = range(batch * BATCH + 1, (batch + 1) * BATCH + 1)
            replies = await gatherResults([client.request(b"%d" % n) for n in numbers])
            for number, (name, _) in zip(numbers, replies, strict=True):
                answered[name.decode()] += 1
                print(f"client: request {number} answered by server {name.decode()}")
            if stopped is not None:
                print(f"operator: stopping server {stopped}")
                servers[stopped].shutdown()
        counts = ", ".join(f"{name} {answered[name]}" for name in NAMES)
        print(f"client: all {3 * BATCH} requests answered ({counts})")
    finally:
        await factory.shutdown()


if __name__ == "__main__":
    react(main)
