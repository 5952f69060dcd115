"""
Binary Star: a primary/backup pair of servers, a client of both, and a failover.

- Each node (``BinaryStar``) publishes its state to the other every 0.1 s (ipc here; tcp
  between two machines) and serves a Freelance server (``FreelanceServer``) that says
  which node answered. The primary becomes active, the backup passive.
- The client (``FreelanceClient``) knows both servers, primary first, and sends one
  request every 50 ms; each try waits 0.1 s before going to the other server.
- After request 4 the operator stops the primary. The backup does not take over on its
  own: it waits until it has not heard the primary for two heartbeats *and* a client's
  request reaches it (the clients vote), so a cut between the two servers alone could
  never make two actives.
- The primary is restarted: it hears an active backup and comes back passive (failing
  back is the operator's decision). The client stays with the backup.

Run it with::

    python examples/binary_star.py
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from twisted.internet.task import deferLater, react

from txzmq2 import ZmqFactory
from txzmq2.ha import BinaryStar, FreelanceClient, FreelanceServer

HEARTBEAT = 0.1
REQUESTS = 10
STOP_PRIMARY_AFTER = 4
RESTART_PRIMARY_AFTER = 7


def node(factory: ZmqFactory, primary: bool, directory: str) -> tuple[BinaryStar, Any]:
    """One node and the server it gates; prints each of its transitions."""
    name = "primary" if primary else "backup"
    me, peer = ("p", "b") if primary else ("b", "p")
    star = BinaryStar(
        factory, primary, f"ipc://{directory}/{me}", f"ipc://{directory}/{peer}", HEARTBEAT
    )
    star.onActive = lambda: print(f"{name}: active")
    star.onPassive = lambda: print(f"{name}: passive")
    server = FreelanceServer(
        factory, f"ipc://{directory}/{me}.serve", lambda n: [name.encode(), n]
    )
    star.serve(server)
    return star, server


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    directory = tempfile.mkdtemp(prefix="bstar-")
    try:
        primary, primaryServer = node(factory, True, directory)
        backup, backupServer = node(factory, False, directory)
        await primary.whenActive()
        client = FreelanceClient(
            factory,
            [primaryServer.lastEndpoint, backupServer.lastEndpoint],
            timeout=2 * HEARTBEAT,
            retries=20,
            pingInterval=HEARTBEAT,
        )
        started = reactor.seconds()
        for number in range(1, REQUESTS + 1):
            sent = reactor.seconds()
            server, _ = await client.request(b"%d" % number)
            took = reactor.seconds() - sent
            print(f"client: request {number} answered by the {server.decode()} in {took:.2f} s")
            if number == STOP_PRIMARY_AFTER:
                print("operator: stopping the primary")
                primary.shutdown()
                primaryServer.shutdown()
            if number == RESTART_PRIMARY_AFTER:
                print("operator: restarting the primary")
                primary, primaryServer = node(factory, True, directory)
            await deferLater(reactor, HEARTBEAT / 2)
        print(
            f"client: all {REQUESTS} requests answered in {reactor.seconds() - started:.1f} s;"
            f" the backup is {backup.state.value}, the primary {primary.state.value}"
        )
    finally:
        await factory.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    react(main)
