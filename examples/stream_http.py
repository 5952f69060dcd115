"""
A raw-TCP (STREAM) HTTP responder: ZeroMQ talking to peers that know nothing of ZeroMQ.

``ZmqStreamConnection`` binds a STREAM socket on tcp loopback. Each TCP client gets a peer
id; bytes arrive as TCP delivered them, so the responder gathers a request up to its blank
line, answers with a small response (``Connection: close``) and closes the connection.
Twisted's own HTTP client (``Agent``) then fetches a few pages from it, as a browser would.
Run it with::

    python examples/stream_http.py            # serves and fetches 3 pages, then exits
    python examples/stream_http.py --serve    # serves until Ctrl-C: try curl on the URL
"""

from __future__ import annotations

import sys

from twisted.internet.defer import Deferred
from twisted.internet.task import react
from twisted.web.client import Agent, readBody

from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqStreamConnection

PAGES = (b"/", b"/hello", b"/missing")


class HTTPResponder(ZmqStreamConnection):
    """Answers each HTTP request with a line of text, then closes the connection."""

    def __init__(self, factory: ZmqFactory, endpoint: ZmqEndpoint) -> None:
        self.pending: dict[bytes, bytes] = {}  # peer -> request bytes so far
        super().__init__(factory, endpoint)

    def peerConnected(self, peerId: bytes) -> None:
        self.pending[peerId] = b""

    def dataReceived(self, peerId: bytes, data: bytes) -> None:
        request = self.pending.get(peerId, b"") + data
        self.pending[peerId] = request
        if b"\r\n\r\n" not in request:
            return  # TCP may split a request anywhere: wait for the rest
        method, path = request.split(b" ", 2)[:2]
        print(f"server: {method.decode()} {path.decode()}")
        status, body = (b"404 Not Found", b"no such page\n")
        if path in (b"/", b"/hello"):
            status, body = (b"200 OK", b"hello from a ZeroMQ STREAM socket\n")
        self.sendData(
            peerId,
            b"HTTP/1.1 " + status + b"\r\nConnection: close\r\nContent-Type: text/plain\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body,
        )
        self.closePeer(peerId)

    def peerDisconnected(self, peerId: bytes) -> None:
        self.pending.pop(peerId, None)


async def main(reactor: object, serve: bool) -> None:
    factory = ZmqFactory(reactor)
    bind = ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")
    server = HTTPResponder(factory, bind)
    url = server.lastEndpoint.replace("tcp://", "http://")
    print(f"server: listening on {url}")
    if serve:
        await Deferred()  # until Ctrl-C
    agent = Agent(reactor)
    for path in PAGES:
        response = await agent.request(b"GET", url.encode() + path)
        body = await readBody(response)
        print(f"client: GET {path.decode()} -> {response.code} {body.decode().strip()}")
    await factory.shutdown()


if __name__ == "__main__":
    react(lambda reactor: Deferred.fromCoroutine(main(reactor, "--serve" in sys.argv)))
