"""
Interoperability: every txzmq2 connection type exchanges messages with a plain blocking pyzmq
peer of the matching type, over inproc, ipc and tcp.

The txzmq2 side always binds; the peer, a blocking pyzmq socket in a thread, connects to its
``lastEndpoint``. PUB/SUB drops what is published before a subscription arrives (the
slow-joiner effect), so a plain PUB publishes again every ``PACE`` seconds, at most ``ROUNDS``
times, until the subscriber has something; XPUB instead waits for the subscription itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, DeferredQueue
from twisted.internet.task import LoopingCall

from tests.peers import PEER_TIMEOUT_MS, blockingSocket, inThread
from txzmq2 import (
    ZmqConnection,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqPairConnection,
    ZmqPubConnection,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
    ZmqSubConnection,
    ZmqXPubConnection,
    ZmqXSubConnection,
)

T = TypeVar("T")
C = TypeVar("C", bound=ZmqConnection)

WAIT = PEER_TIMEOUT_MS / 1000  # seconds the reactor side waits, as long as a peer socket
PACE = 0.01  # seconds between two rounds of a repeating publisher
ROUNDS = 500  # most rounds a repeating publisher makes before it gives up


class Peer:
    """A pyzmq socket in its own thread (see ``startPeer``), open until :meth:`finish`."""

    def __init__(self, run: Callable[[threading.Event], Any]) -> None:
        self.released = threading.Event()
        self.done: Deferred[Any] = inThread(run, self.released)

    async def finish(self) -> Any:
        """Release the peer; its script's result, once its socket is closed and thread ended."""
        self.released.set()
        return await self.done


def receive(socket: Any, released: threading.Event, count: int = 1) -> list[list[bytes]]:
    """Peer script: receive ``count`` messages and return them."""
    return [socket.recv_multipart() for _ in range(count)]


def send(socket: Any, released: threading.Event, *messages: list[bytes]) -> None:
    """Peer script: send ``messages``, in order."""
    for frames in messages:
        socket.send_multipart(frames)


def publish(socket: Any, released: threading.Event, *messages: list[bytes]) -> None:
    """Peer script: send ``messages`` every ``PACE`` seconds until released."""
    for _ in range(ROUNDS):
        send(socket, released, *messages)
        if released.wait(PACE):
            return
    raise AssertionError(f"no subscriber took a publication in {ROUNDS} rounds")


def bind(connectionClass: type[C], factory: ZmqFactory, address: str, **kwargs: Any) -> C:
    """A ``connectionClass`` bound to ``address``."""
    return connectionClass(factory, ZmqEndpoint(ZmqEndpointType.bind, address), **kwargs)


def within(deferred: Deferred[T]) -> Deferred[T]:
    """``deferred``, failing with ``TimeoutError`` if it has not fired in ``WAIT`` seconds."""
    return deferred.addTimeout(WAIT, reactor)


@contextmanager
def repeating(function: Callable[[], object]) -> Iterator[None]:
    """Call ``function`` now and every ``PACE`` seconds (``ROUNDS`` times at most) in the block."""
    rounds = iter(range(ROUNDS))

    def tick() -> None:
        if next(rounds, None) is None:
            loop.stop()
        else:
            function()

    loop = LoopingCall(tick)
    loop.start(PACE)
    try:
        yield
    finally:
        if loop.running:
            loop.stop()


class Recording:
    """Mixin: every callback's arguments, as a tuple, in a queue; :meth:`next` waits."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inbox: DeferredQueue[tuple[Any, ...]] = DeferredQueue()
        super().__init__(*args, **kwargs)

    def _record(self, *arguments: Any) -> None:
        self.inbox.put(arguments)

    gotMessage = onPull = gotSubscription = _record

    def next(self) -> Deferred[tuple[Any, ...]]:
        return within(self.inbox.get())


class Sub(Recording, ZmqSubConnection): ...


class XSub(Recording, ZmqXSubConnection): ...


class XPub(Recording, ZmqXPubConnection): ...


class Pull(Recording, ZmqPullConnection): ...


class Router(Recording, ZmqRouterConnection): ...


class Dealer(Recording, ZmqDealerConnection): ...


class Pair(Recording, ZmqPairConnection): ...


class ReplyingREP(ZmqREPConnection):
    """Answers in ``gotMessage`` with ``reply``: ``b"re"`` then the request's frames."""

    def gotMessage(self, messageId: bytes, *parts: bytes) -> None:
        self.reply(messageId, b"re", *parts)


class HandlingREP(ZmqREPConnection):
    """Answers the same way through the ``handleRequest`` hook."""

    def handleRequest(self, *parts: bytes) -> list[bytes]:
        return [b"re", *parts]


@pytest.fixture(params=["inproc", "ipc", "tcp"])
def address(request: pytest.FixtureRequest, zmq_address: Any) -> str:
    """A fresh address to bind, on each transport in turn."""
    return str(zmq_address(request.param))


@pytest.fixture
def startPeer(zmq_factory: ZmqFactory) -> Iterator[Callable[..., Peer]]:
    """
    ``startPeer(socketType, address, script, *args, **socketOptions)`` starts a :class:`Peer`:
    a blocking pyzmq socket on the factory's context (inproc needs the same one) connects to
    ``address`` and runs ``script(socket, released, *args)``. After the test, every peer is
    released and its thread awaited, before the factory terminates the context.
    """
    peers: list[Peer] = []

    def start(
        socketType: int, address: str, script: Callable[..., Any], *args: Any, **options: Any
    ) -> Peer:
        def peer(released: threading.Event) -> Any:
            socket = blockingSocket(zmq_factory.context, socketType, **options)
            try:
                socket.connect(address)
                result = script(socket, released, *args)
                # A zero-linger close drops what libzmq has not delivered yet: wait for the test.
                released.wait(WAIT)
                return result
            finally:
                socket.close(linger=0)

        peers.append(Peer(peer))
        return peers[-1]

    yield start
    for peer in peers:
        peer.released.set()
    pytest_twisted.blockon(DeferredList([peer.done for peer in peers], consumeErrors=True))


@pytest_twisted.ensureDeferred
async def test_pub_reaches_pyzmq_sub_as_tag_then_message(zmq_factory, address, startPeer):
    pub = bind(ZmqPubConnection, zmq_factory, address)
    peer = startPeer(zmq.SUB, pub.lastEndpoint, receive, subscribe=b"news")
    with repeating(lambda: pub.publish(b"hello", b"news")):
        assert await peer.finish() == [[b"news", b"hello"]]
    pub.shutdown()


@pytest.mark.parametrize("subscriberClass", [Sub, XSub], ids=["sub", "xsub"])
@pytest_twisted.ensureDeferred
async def test_pyzmq_pub_reaches_gotMessage_for_subscribed_tags_only(
    zmq_factory, address, startPeer, subscriberClass
):
    sub = bind(subscriberClass, zmq_factory, address)
    sub.subscribe(b"news")
    peer = startPeer(zmq.PUB, sub.lastEndpoint, publish, [b"sport", b"x"], [b"news", b"hi"])
    assert await sub.next() == (b"hi", b"news")
    await peer.finish()
    sub.shutdown()


@pytest_twisted.ensureDeferred
async def test_one_frame_publication_arrives_with_empty_tag(zmq_factory, address, startPeer):
    sub = bind(Sub, zmq_factory, address)
    sub.subscribe(b"")
    peer = startPeer(zmq.PUB, sub.lastEndpoint, publish, [b"hello"])
    assert await sub.next() == (b"hello", b"")
    await peer.finish()
    sub.shutdown()


@pytest_twisted.ensureDeferred
async def test_sub_gets_no_more_of_a_tag_once_unsubscribed(zmq_factory, address, startPeer):
    class Resubscribing(Sub):
        """Subscribed to b"old" until its first publication, then to b"new" only."""

        def gotMessage(self, message: bytes, tag: bytes) -> None:
            if tag == b"old":
                self.unsubscribe(b"old")
                self.subscribe(b"new")
            super().gotMessage(message, tag)

    sub = bind(Resubscribing, zmq_factory, address)
    sub.subscribe(b"old")
    peer = startPeer(zmq.PUB, sub.lastEndpoint, publish, [b"old", b"1"], [b"new", b"2"])
    assert await sub.next() == (b"1", b"old")
    # SUB also filters what it has queued, so no b"old" comes once unsubscribe() returned.
    assert await sub.next() == (b"2", b"new")
    await peer.finish()
    sub.shutdown()


@pytest_twisted.ensureDeferred
async def test_xpub_publishes_to_pyzmq_sub_once_it_subscribed(zmq_factory, address, startPeer):
    xpub = bind(XPub, zmq_factory, address)
    peer = startPeer(zmq.SUB, xpub.lastEndpoint, receive, subscribe=b"news")
    assert await xpub.next() == (b"news", True)
    # The subscription is in place once XPUB reports it: one publication is enough.
    xpub.publish(b"hello", b"news")
    assert await peer.finish() == [[b"news", b"hello"]]
    xpub.shutdown()


@pytest_twisted.ensureDeferred
async def test_xpub_sees_pyzmq_xsub_subscribe_and_unsubscribe(zmq_factory, address, startPeer):
    def subscribeReceiveUnsubscribe(socket, released):
        socket.send(b"\x01news")
        message = socket.recv_multipart()
        socket.send(b"\x00news")
        return message

    xpub = bind(XPub, zmq_factory, address)
    peer = startPeer(zmq.XSUB, xpub.lastEndpoint, subscribeReceiveUnsubscribe)
    assert await xpub.next() == (b"news", True)
    xpub.publish(b"hello", b"news")
    assert await xpub.next() == (b"news", False)
    assert await peer.finish() == [b"news", b"hello"]
    xpub.shutdown()


@pytest_twisted.ensureDeferred
async def test_xsub_subscribes_at_pyzmq_xpub_and_receives(zmq_factory, address, startPeer):
    def publishOnSubscription(socket, released):
        subscription = socket.recv()
        socket.send_multipart([b"news", b"hello"])
        return subscription

    xsub = bind(XSub, zmq_factory, address)
    xsub.subscribe(b"news")
    peer = startPeer(zmq.XPUB, xsub.lastEndpoint, publishOnSubscription)
    assert await xsub.next() == (b"hello", b"news")
    assert await peer.finish() == b"\x01news"
    xsub.shutdown()


@pytest_twisted.ensureDeferred
async def test_push_reaches_pyzmq_pull(zmq_factory, address, startPeer):
    push = bind(ZmqPushConnection, zmq_factory, address)
    peer = startPeer(zmq.PULL, push.lastEndpoint, receive, 2)
    # Possibly pushed before the peer is connected: queued, then sent in order.
    push.push(b"one")
    push.push([b"two", b"frames"])
    assert await peer.finish() == [[b"one"], [b"two", b"frames"]]
    push.shutdown()


@pytest_twisted.ensureDeferred
async def test_pyzmq_push_reaches_pull_onPull_as_list_of_frames(zmq_factory, address, startPeer):
    pull = bind(Pull, zmq_factory, address)
    peer = startPeer(zmq.PUSH, pull.lastEndpoint, send, [b"one"], [b"two", b"frames"])
    assert await pull.next() == ([b"one"],)
    assert await pull.next() == ([b"two", b"frames"],)
    await peer.finish()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_router_talks_to_pyzmq_dealer_by_identity(zmq_factory, address, startPeer):
    def dealer(socket, released):
        socket.send_multipart([b"hello", b"world"])
        return receive(socket, released, 2)

    router = bind(Router, zmq_factory, address)
    peer = startPeer(zmq.DEALER, router.lastEndpoint, dealer, routing_id=b"peer")
    assert await router.next() == (b"peer", b"hello", b"world")
    router.sendMsg(b"peer", b"one")
    router.sendMultipart(b"peer", [b"two", b"frames"])
    assert await peer.finish() == [[b"one"], [b"two", b"frames"]]
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_dealer_talks_to_pyzmq_router(zmq_factory, address, startPeer):
    def router(socket, released):
        received = receive(socket, released, 2)
        send(socket, released, [b"dealer", b"pong"], [b"dealer", b"two", b"frames"])
        return received

    dealer = bind(Dealer, zmq_factory, address, identity=b"dealer")
    peer = startPeer(zmq.ROUTER, dealer.lastEndpoint, router)
    dealer.sendMsg(b"ping")
    dealer.sendMultipart([b"a", b"b"])
    assert await dealer.next() == (b"pong",)
    assert await dealer.next() == (b"two", b"frames")
    assert await peer.finish() == [[b"dealer", b"ping"], [b"dealer", b"a", b"b"]]
    dealer.shutdown()


@pytest_twisted.ensureDeferred
async def test_pair_talks_to_pyzmq_pair(zmq_factory, address, startPeer):
    def pair(socket, released):
        first = socket.recv_multipart()
        socket.send_multipart([b"pong", b"2"])
        return [first, socket.recv_multipart()]

    ours = bind(Pair, zmq_factory, address)
    peer = startPeer(zmq.PAIR, ours.lastEndpoint, pair)
    ours.sendMsg(b"ping")
    assert await ours.next() == (b"pong", b"2")
    ours.sendMultipart([b"bye", b"3"])
    assert await peer.finish() == [[b"ping"], [b"bye", b"3"]]
    ours.shutdown()


@pytest_twisted.ensureDeferred
async def test_req_gets_reply_frames_from_pyzmq_rep(zmq_factory, address, startPeer):
    def rep(socket, released):
        request = socket.recv_multipart()
        socket.send_multipart([b"re", *request])
        return request

    req = bind(ZmqREQConnection, zmq_factory, address)
    peer = startPeer(zmq.REP, req.lastEndpoint, rep)
    assert await within(req.sendMsg(b"a", b"b")) == [b"re", b"a", b"b"]
    assert await peer.finish() == [b"a", b"b"]
    req.shutdown()


@pytest_twisted.ensureDeferred
async def test_req_matches_out_of_order_replies_from_pyzmq_router(zmq_factory, address, startPeer):
    def routerAnsweringLastFirst(socket, released):
        requests = receive(socket, released, 2)
        for sender, requestId, delimiter, body in reversed(requests):
            socket.send_multipart([sender, requestId, delimiter, b"re:" + body])
        return requests

    req = bind(ZmqREQConnection, zmq_factory, address, identity=b"client")
    peer = startPeer(zmq.ROUTER, req.lastEndpoint, routerAnsweringLastFirst)
    first, second = req.sendMsg(b"one"), req.sendMsg(b"two")
    assert await within(second) == [b"re:two"]
    assert await within(first) == [b"re:one"]
    one, two = await peer.finish()
    assert one == [b"client", one[1], b"", b"one"]
    assert two == [b"client", two[1], b"", b"two"]
    assert one[1] != two[1]
    req.shutdown()


@pytest.mark.parametrize("repClass", [ReplyingREP, HandlingREP], ids=["reply", "handleRequest"])
@pytest.mark.parametrize(
    ("peerType", "envelope"), [(zmq.REQ, []), (zmq.DEALER, [b""])], ids=["req", "dealer"]
)
@pytest_twisted.ensureDeferred
async def test_rep_answers_pyzmq_req_and_dealer_with_empty_delimiter(
    zmq_factory, address, startPeer, repClass, peerType, envelope
):
    def request(socket, released):
        socket.send_multipart([*envelope, b"a", b"b"])
        return socket.recv_multipart()

    rep = bind(repClass, zmq_factory, address)
    peer = startPeer(peerType, rep.lastEndpoint, request)
    assert await peer.finish() == [*envelope, b"re", b"a", b"b"]
    rep.shutdown()
