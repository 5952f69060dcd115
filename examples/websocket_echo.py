"""
A websocket echo: a REP server and a REQ client talking ZeroMQ over ``ws://``.

The same classes as over tcp; only the address changes: ``ws://host:port/path``, where the
path is the HTTP resource of the websocket handshake. ws needs a libzmq built with it: the
pyzmq wheels' libzmq has none, Debian's ``libzmq3-dev`` has it (see docs/transports.md, or
``txzmq2 info``). Without it the program says so and exits with status 1. Run it with::

    python examples/websocket_echo.py
"""

from __future__ import annotations

import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import react

from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqREPConnection,
    ZmqREQConnection,
    capabilities,
)

WORDS = (b"hello", b"websocket", b"world")


class Echo(ZmqREPConnection):
    def handleRequest(self, *parts: bytes) -> list[bytes]:
        print(f"server: echoing {b' '.join(parts).decode()}")
        return [b"echo:", *parts]


async def main(reactor: object) -> None:
    factory = ZmqFactory(reactor)
    server = Echo(factory, ZmqEndpoint(ZmqEndpointType.bind, "ws://127.0.0.1:*/echo"))
    print(f"server: listening on {server.lastEndpoint}")
    client = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, server.lastEndpoint))
    for word in WORDS:
        reply = await client.sendMsg(word, timeout=5.0)
        print(f"client: {word.decode()} -> {b' '.join(reply).decode()}")
    print(f"client: {len(WORDS)} replies over websocket")
    await factory.shutdown()


if __name__ == "__main__":
    if "ws" not in capabilities().transports:
        print(
            f"this libzmq ({capabilities().libzmq}) has no ws transport; "
            "see docs/transports.md for one that has",
            file=sys.stderr,
        )
        sys.exit(1)
    react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
