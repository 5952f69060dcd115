"""
ZmqREQConnection with ``requestIds = False``: a libzmq REQ socket's framing, one request on
the wire at a time, Lazy Pirate reconnects; and what a timeout says.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import CancelledError, Deferred, DeferredList

from tests.peers import blockingSocket, inThread
from txzmq2 import (
    ZmqEndpoint,
    ZmqREQConnection,
    ZmqRequestTimeoutError,
    ZmqRouterConnection,
)

bind, connect = "bind", "connect"


class PlainReq(ZmqREQConnection):
    requestIds = False


class Peer(ZmqRouterConnection):
    """A ROUTER that records each request and answers only when told."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.requests: list[tuple[bytes, tuple[bytes, ...]]] = []
        self.waiters: list[Deferred[None]] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.requests.append((senderId, frames))
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            waiter.callback(None)

    async def request(self, number: int) -> tuple[bytes, tuple[bytes, ...]]:
        """The ``number``-th request received (from 1), once it has come."""
        while len(self.requests) < number:
            waiter: Deferred[None] = Deferred()
            self.waiters.append(waiter)
            await waiter.addTimeout(5, self.factory.reactor)
        return self.requests[number - 1]

    def answer(self, number: int, *reply: bytes) -> None:
        senderId, _ = self.requests[number - 1]
        self.sendMultipart(senderId, [b"", *reply])


@pytest.fixture
def peer(zmq_factory):
    router = Peer(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    yield router
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_plain_request_goes_out_as_a_libzmq_req_frames_it(zmq_factory, peer):
    client = PlainReq(zmq_factory, ZmqEndpoint(connect, peer.lastEndpoint))
    reply = client.sendMsg(b"hello", b"world")
    _, frames = await peer.request(1)
    assert frames == (b"", b"hello", b"world")
    peer.answer(1, b"hi")
    assert await reply == [b"hi"]
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_plain_requests_go_one_at_a_time_in_order(zmq_factory, peer):
    client = PlainReq(zmq_factory, ZmqEndpoint(connect, peer.lastEndpoint))
    replies = [client.sendMsg(b"%d" % n) for n in range(3)]
    await peer.request(1)
    for number in (1, 2, 3):
        await peer.request(number)
        assert len(peer.requests) == number  # the next waits for this one's reply
        peer.answer(number, b"answer %d" % number)
    assert [await r for r in replies] == [[b"answer 1"], [b"answer 2"], [b"answer 3"]]
    assert [frames for _, frames in peer.requests] == [(b"", b"%d" % n) for n in range(3)]
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_plain_retry_reconnects_and_a_late_reply_answers_nothing_else(zmq_factory, peer):
    client = PlainReq(zmq_factory, ZmqEndpoint(connect, peer.lastEndpoint))
    first = client.sendMsg(b"slow", timeout=0.3, retries=1)
    firstSender, _ = await peer.request(1)
    retrySender, frames = await peer.request(2)
    # A new connection: libzmq gave the reconnected socket a new routing id.
    assert frames == (b"", b"slow") and retrySender != firstSender
    second = client.sendMsg(b"next")
    peer.answer(1, b"late")  # to the old connection: it is gone
    peer.answer(2, b"in time")
    assert await first == [b"in time"]
    _, frames = await peer.request(3)
    assert frames == (b"", b"next")
    peer.answer(3, b"next answer")
    assert await second == [b"next answer"]
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_cancelling_the_plain_request_on_the_wire_sends_the_next(zmq_factory, peer):
    client = PlainReq(zmq_factory, ZmqEndpoint(connect, peer.lastEndpoint))
    first = client.sendMsg(b"first")
    second = client.sendMsg(b"second")
    await peer.request(1)
    first.cancel()
    with pytest.raises(CancelledError):
        await first
    _, frames = await peer.request(2)
    assert frames == (b"", b"second")
    peer.answer(1, b"stale")  # the cancelled one's reply, on the dropped connection
    peer.answer(2, b"fresh")
    assert await second == [b"fresh"]
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_plain_req_talks_to_a_libzmq_rep(zmq_factory):
    context = zmq.Context.instance()
    rep = blockingSocket(context, zmq.REP)
    port = rep.bind_to_random_port("tcp://127.0.0.1")
    done = threading.Event()

    def serve() -> int:
        served = 0
        while not done.is_set() and served < 5:
            try:
                request = rep.recv_multipart()
            except zmq.Again:
                break
            rep.send_multipart([b"re: " + request[0]])
            served += 1
        rep.close()
        return served

    serving = inThread(serve)
    client = PlainReq(zmq_factory, ZmqEndpoint(connect, f"tcp://127.0.0.1:{port}"))
    replies = [client.sendMsg(b"%d" % n, timeout=5) for n in range(5)]
    assert [await r for r in replies] == [[b"re: %d" % n] for n in range(5)]
    assert await serving == 5
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_timeout_says_tries_and_that_no_peer_ever_connected(zmq_factory):
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, f"tcp://127.0.0.1:{port}"))
    with pytest.raises(ZmqRequestTimeoutError) as caught:
        await client.sendMsg(b"anyone?", timeout=0.1, retries=2)
    assert "no reply within 0.1 s (3 tries)" in str(caught.value)
    assert "no peer ever connected" in str(caught.value)
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_timeout_to_a_connected_silent_peer_does_not_blame_the_connection(zmq_factory, peer):
    client = ZmqREQConnection(zmq_factory, monitored=True)
    connected = client.whenConnected(timeout=5)
    client.addEndpoints([ZmqEndpoint(connect, peer.lastEndpoint)])
    await connected
    outcome = await DeferredList([client.sendMsg(b"hello?", timeout=0.1)], consumeErrors=True)
    [(ok, failure)] = outcome
    assert not ok and failure.check(ZmqRequestTimeoutError)
    assert str(failure.value) == "no reply within 0.1 s (1 try)"
    client.shutdown()
