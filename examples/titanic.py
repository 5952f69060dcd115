"""
Titanic: requests stored on disk, answered later, across a restart of the service.

- A Majordomo broker (``MajordomoBroker``) on tcp loopback, and the Titanic service
  (``TitanicService``) behind it, storing in a SQLite file in a temporary directory.
- The client (``TitanicClient``) submits three requests for the ``echo`` service, which has
  no worker yet: each is committed to the file before its id comes back, and asking for
  its reply says it is pending.
- The Titanic service is stopped and started again on the same file: it finds the three
  requests unanswered and sends them to ``echo`` once a worker for it registers.
- The client collects the replies by id, then closes each request: asked again, Titanic no
  longer knows it.

Run it with::

    python examples/titanic.py
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from twisted.internet.task import deferLater, react

from txzmq2 import ZmqEndpoint, ZmqFactory, ZmqUnknownRequestError
from txzmq2.ha import TitanicClient, TitanicService
from txzmq2.mdp import MajordomoBroker, MajordomoWorker

HEARTBEAT = 0.1
"""Majordomo heartbeat of the broker, the workers and Titanic's own workers."""


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    directory = tempfile.mkdtemp(prefix="titanic-")
    database = f"{directory}/titanic.db"
    try:
        broker = MajordomoBroker(
            factory, ZmqEndpoint("bind", "tcp://127.0.0.1:*"), heartbeatInterval=HEARTBEAT
        )
        address = broker.lastEndpoint

        def startTitanic() -> TitanicService:
            return TitanicService(factory, address, database, heartbeatInterval=HEARTBEAT)

        titanic = startTitanic()
        client = TitanicClient(factory, address)
        ids = [await client.submit("echo", word) for word in (b"alpha", b"bravo", b"charlie")]
        for requestId in ids:
            print(f"client: submitted {requestId}")
        print(f"client: reply to the first: {await client.reply(ids[0])} (pending)")

        print("operator: restarting Titanic on the same database")
        titanic.shutdown()
        titanic = startTitanic()
        MajordomoWorker(
            factory, ZmqEndpoint("connect", address), "echo", lambda word: [word.upper()],
            heartbeatInterval=HEARTBEAT,
        )  # fmt: skip
        print("worker: echo service started")

        for requestId in ids:
            while (reply := await client.reply(requestId)) is None:
                await deferLater(reactor, 0.05)
            print(f"client: reply to {requestId[:8]}...: {reply[0].decode()}")
            await client.close(requestId)
        try:
            await client.reply(ids[0])
        except ZmqUnknownRequestError:
            print("client: closed requests are forgotten")
        print(f"client: all {len(ids)} requests answered across a restart")
    finally:
        await factory.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    react(main)
