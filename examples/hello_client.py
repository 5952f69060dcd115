"""
Hello world, the client: a REQ client that sends ``Hello`` a few times and awaits each reply.

Shows ``ZmqREQConnection.sendMsg``: it returns a Deferred of the reply frames, so a client is
a plain loop of ``await``s, with a timeout so that a missing server ends it with an error
instead of hanging.

Run it::

    python examples/hello_client.py
        starts the hello server of hello_server.py in the same reactor, on an OS-chosen
        port of 127.0.0.1, sends it five requests and exits.

    python examples/hello_client.py tcp://127.0.0.1:5555
        talks to a hello server already running there
        (``python examples/hello_server.py tcp://127.0.0.1:5555``).
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.task import react

from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqREQConnection

REQUESTS = 5
REPLY_TIMEOUT = 5.0
"""Seconds to wait for each reply before giving up (with ``ZmqRequestTimeoutError``)."""


async def runClient(factory: ZmqFactory, address: str, requests: int = REQUESTS) -> None:
    """Connect to the hello server at ``address`` and make ``requests`` round trips."""
    client = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    try:
        for n in range(1, requests + 1):
            print(f"hello client: sending request {n}")
            reply = await client.sendMsg(b"Hello", timeout=REPLY_TIMEOUT)
            print(f"hello client: received reply {n}: {reply!r}")
        print(f"hello client: done, {requests} replies")
    finally:
        client.shutdown()


async def main(reactor: Any, *argv: str) -> None:
    factory = ZmqFactory(reactor)
    try:
        if argv:
            address = argv[0]
        else:
            # Imported here, so that hello_server.py can import this module.
            from hello_server import HelloServer

            server = HelloServer(factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"))
            address = server.lastEndpoint
            print(f"hello client: started a hello server on {address}")
        await runClient(factory, address)
    finally:
        await factory.shutdown()


if __name__ == "__main__":
    react(main, sys.argv[1:])
