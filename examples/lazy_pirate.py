"""
Lazy Pirate: a client that survives its server crashing, by timing out and retrying.

``ZmqREQConnection.sendMsg(..., timeout=T, retries=N)`` is the whole pattern: when no reply
comes within ``T`` seconds the request is sent again, up to ``N`` more times, and only then
does the Deferred fail (with ``ZmqRequestTimeoutError``: the server is taken for dead and the
request abandoned). A ZeroMQ REQ socket would be stuck after a lost reply and has to be
closed and reopened; ours is a DEALER underneath, so it just sends again, and a late reply to
an earlier try answers the request as well as the reply to the last one.

The server here crashes on purpose: it answers a few requests, then dies with one in hand
(its socket closed, the request unanswered). A supervisor restarts it on the same port a
moment later. The client, meanwhile, retries; its retries wait in its own socket while the
server is away and reach the new server, which may then see the same request more than once:
a Lazy Pirate server has to be idempotent (as an echo is). Finally the server is stopped for
good, and the client abandons its last request after its last retry.

Everything runs in one reactor. Run it with::

    python examples/lazy_pirate.py
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater, react

from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRequestTimeoutError,
)

REQUEST_TIMEOUT = 0.3
"""Seconds the client waits for a reply to each try."""
REQUEST_RETRIES = 3
"""Tries after the first before the client abandons a request."""
REQUESTS = 8
CRASH_AFTER = 3
"""The first server answers this many requests, then crashes on the next one."""
RESTART_DELAY = 0.5
"""Seconds the supervisor takes to restart the crashed server."""


class FlakyServer(ZmqREPConnection):
    """
    An echo server that crashes (closes its socket without answering) on request number
    ``crashAfter + 1``; ``None`` means it never crashes. ``crashed`` fires when it does.
    """

    def __init__(self, factory: ZmqFactory, address: str, crashAfter: int | None) -> None:
        self.crashAfter = crashAfter
        self.answered = 0
        self.crashed: Deferred[None] = Deferred()
        super().__init__(factory, ZmqEndpoint(ZmqEndpointType.bind, address))

    def gotMessage(self, messageId: bytes, *parts: bytes) -> None:
        request = b" ".join(parts).decode()
        if self.answered == self.crashAfter:
            print(f"server: crashing, with request {request} unanswered")
            self.shutdown()
            self.crashed.callback(None)
            return
        print(f"server: answering request {request}")
        self.answered += 1
        self.reply(messageId, *parts)


async def main(reactor: Any) -> None:
    factory = ZmqFactory(reactor)
    try:
        server = FlakyServer(factory, "tcp://127.0.0.1:*", crashAfter=CRASH_AFTER)
        address = server.lastEndpoint
        print(f"server: listening on {address}")

        def restart(_: None) -> Deferred[FlakyServer]:
            print(f"supervisor: the server crashed; restarting it in {RESTART_DELAY} s")
            return deferLater(reactor, RESTART_DELAY, startAgain)

        def startAgain() -> FlakyServer:
            print(f"supervisor: server restarted on {address}")
            return FlakyServer(factory, address, crashAfter=None)

        restarted = server.crashed.addCallback(restart)

        client = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
        for n in range(1, REQUESTS + 1):
            started = monotonic()
            reply = await client.sendMsg(
                b"%d" % n, timeout=REQUEST_TIMEOUT, retries=REQUEST_RETRIES
            )
            elapsed = monotonic() - started
            late = f" (after retries: more than the {REQUEST_TIMEOUT} s timeout)"
            print(
                f"client: request {n} answered with {reply[0].decode()} in {elapsed:.2f} s"
                + (late if elapsed > REQUEST_TIMEOUT else "")
            )
        print(f"client: all {REQUESTS} requests answered; it recovered from the crash")

        (await restarted).shutdown()
        print("supervisor: server stopped for good")
        started = monotonic()
        try:
            await client.sendMsg(b"last", timeout=REQUEST_TIMEOUT, retries=REQUEST_RETRIES)
        except ZmqRequestTimeoutError:
            print(
                f"client: no reply to {REQUEST_RETRIES + 1} tries in"
                f" {monotonic() - started:.2f} s; server seems to be offline, abandoning"
            )
        else:
            raise RuntimeError("a stopped server answered")
    finally:
        await factory.shutdown()


if __name__ == "__main__":
    react(main)
