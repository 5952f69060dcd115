"""
Hello world, the server: a REP server that answers each ``Hello`` with ``World``.

Shows the smallest request-reply server: subclass ``ZmqREPConnection`` and return the reply
from ``handleRequest``. Here it is an ``async def`` that takes a little time to "work", and
the reactor keeps serving other peers meanwhile.

Run it::

    python examples/hello_server.py
        binds an OS-chosen port on 127.0.0.1 and, to be self-contained, runs the hello client
        of hello_client.py in the same reactor; exits when the client is done.

    python examples/hello_server.py tcp://127.0.0.1:5555
        serves on that address (``tcp://127.0.0.1:*`` picks a free port and prints it) until
        interrupted with Ctrl-C; talk to it from another terminal with
        ``python examples/hello_client.py tcp://127.0.0.1:5555``.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react

from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqREPConnection

WORK_SECONDS = 0.05
"""How long the server "works" on each request."""


class HelloServer(ZmqREPConnection):
    """Answers every request with ``World``, after a short pretend piece of work."""

    async def handleRequest(self, *parts: bytes) -> list[bytes]:
        print(f"hello server: received {b' '.join(parts)!r}")
        await deferLater(self.factory.reactor, WORK_SECONDS)
        return [b"World"]


async def main(reactor: Any, *argv: str) -> None:
    factory = ZmqFactory(reactor)
    try:
        if argv:
            # Serve until the reactor stops (Ctrl-C); the factory closes everything then.
            factory.registerForShutdown()
            server = HelloServer(factory, ZmqEndpoint(ZmqEndpointType.bind, argv[0]))
            # Flushed: a client may be waiting to read the address from this line.
            print(f"hello server: listening on {server.lastEndpoint}", flush=True)
            await Deferred()
        else:
            # Self-contained: a server on a free port and, beside it, the client of
            # hello_client.py (imported here, so that hello_client.py can import this module).
            from hello_client import runClient

            server = HelloServer(factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"))
            print(f"hello server: listening on {server.lastEndpoint}")
            await runClient(factory, server.lastEndpoint)
    finally:
        await factory.shutdown()


if __name__ == "__main__":
    react(main, sys.argv[1:])
