"""
No shape of message from a peer may raise inside a connection: odd frame counts, empty
frames, missing delimiters are dropped (and logged) or delivered as documented, and the next
good message still arrives.
"""

from __future__ import annotations

import pytest_twisted
import zmq
from twisted.internet.defer import Deferred

from tests.peers import blockingSocket
from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
    ZmqSubConnection,
    ZmqXPubConnection,
)

bind = ZmqEndpointType.bind

SHAPES = [
    [b""],
    [b"", b""],
    [b"tag"],
    [b"tag", b""],
    [b"tag", b"a", b"b"],
    [b"", b"", b"", b""],
    [b"\x00"],
    [b"\x01"],
    [b"\xff" * 300],
    [b"x"] * 20,
]


class Sentinel:
    """Records deliveries and fires ``done`` when the sentinel message shows up."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []
        self.done: Deferred[None] = Deferred()

    def record(self, *args) -> None:
        self.seen.append(args)
        if b"sentinel" in args and not self.done.called:
            self.done.callback(None)


async def _feed(zmq_factory, connection, peerType, shapes, sentinel, record, **options):
    peer = blockingSocket(zmq_factory.context, peerType, **options)
    peer.connect(connection.lastEndpoint)
    try:
        if peerType == zmq.PUB:
            # Wait for the subscription to reach the publisher: the sentinel comes back.
            while not record.done.called:
                peer.send_multipart(sentinel)
                await _turn()
            record.done = Deferred()
        for shape in shapes:
            peer.send_multipart(shape)
        peer.send_multipart(sentinel)
        await record.done
    finally:
        peer.close()


@pytest_twisted.ensureDeferred
async def test_sub_survives_every_message_shape(zmq_factory, zmq_address, loggedFailures):
    record = Sentinel()

    class Sub(ZmqSubConnection):
        def gotMessage(self, message, tag):
            record.record(tag, message)

    sub = Sub(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    sub.subscribe(b"")
    await _feed(zmq_factory, sub, zmq.PUB, SHAPES, [b"t", b"sentinel"], record)
    assert loggedFailures == []
    assert (b"", b"tag") in record.seen  # one frame: (tag b"", message)
    assert (b"tag", b"") in record.seen
    assert all(len(args) == 2 for args in record.seen)
    sub.shutdown()


@pytest_twisted.ensureDeferred
async def test_xpub_survives_messages_that_are_not_subscriptions(
    zmq_factory, zmq_address, loggedFailures
):
    record = Sentinel()

    class XPub(ZmqXPubConnection):
        def gotSubscription(self, tag, subscribed):
            record.record(tag, subscribed)

    xpub = XPub(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    await _feed(zmq_factory, xpub, zmq.XSUB, SHAPES, [b"\x01sentinel"], record)
    assert loggedFailures == []
    assert (b"", True) in record.seen  # [b"\x01"]: a subscription to everything
    xpub.shutdown()


@pytest_twisted.ensureDeferred
async def test_rep_survives_requests_without_delimiter(zmq_factory, zmq_address, loggedFailures):
    record = Sentinel()

    class Rep(ZmqREPConnection):
        def gotMessage(self, messageId, *parts):
            self.reply(messageId, b"ok")
            record.record(*parts)

    rep = Rep(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    await _feed(zmq_factory, rep, zmq.DEALER, SHAPES, [b"", b"sentinel"], record)
    assert loggedFailures == []
    assert rep.pendingRequests == 0
    rep.shutdown()


@pytest_twisted.ensureDeferred
async def test_req_survives_replies_of_every_shape(zmq_factory, zmq_address, loggedFailures):
    record = Sentinel()
    req = ZmqREQConnection(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    peer = blockingSocket(zmq_factory.context, zmq.ROUTER)
    peer.connect(req.lastEndpoint)
    try:
        reply = req.sendMsg(b"question", timeout=5)
        identity, requestId, empty, question = peer.recv_multipart()
        assert (empty, question) == (b"", b"question")
        for shape in [*SHAPES, [requestId], [requestId, b"x"]]:
            peer.send_multipart([identity, *shape])
        peer.send_multipart([identity, requestId, b"", b"sentinel"])
        record.record(*(await reply))
    finally:
        peer.close()
    assert record.seen == [(b"sentinel",)]
    assert loggedFailures == []
    req.shutdown()


@pytest_twisted.ensureDeferred
async def test_router_delivers_every_shape_with_its_sender(
    zmq_factory, zmq_address, loggedFailures
):
    record = Sentinel()

    class Router(ZmqRouterConnection):
        def gotMessage(self, senderId, *frames):
            record.record(senderId, *frames)

    router = Router(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    await _feed(zmq_factory, router, zmq.DEALER, SHAPES, [b"sentinel"], record, routing_id=b"peer")
    assert loggedFailures == []
    assert [args[1:] for args in record.seen[: len(SHAPES)]] == [tuple(s) for s in SHAPES]
    assert {args[0] for args in record.seen} == {b"peer"}
    router.shutdown()


def _turn() -> Deferred[None]:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, 0.001, lambda: None)
