"""
Pub/sub framing as txZMQ had it: one frame ``tag + topicSep + message`` next to the two frames
``[tag, message]``, and ``str`` tags and messages sent as UTF-8.

The peers are plain blocking pyzmq sockets in a thread: a PUB that sends a chosen frame list
every few milliseconds (the slow-joiner effect drops what precedes the subscription), and a
SUB that returns the first message it gets.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.task import LoopingCall

from tests.peers import PEER_TIMEOUT_MS, blockingSocket, inThread
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqPubConnection, ZmqSubConnection
from txzmq2.testing import waitForSubscription

WAIT = PEER_TIMEOUT_MS / 1000
PACE = 0.005  # seconds between two publications of a repeating publisher
ROUNDS = 2000  # most publications a repeating publisher makes


class Sub(ZmqSubConnection):
    """Queues each ``gotMessage(message, tag)`` as a tuple."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inbox: DeferredQueue[tuple[bytes, bytes]] = DeferredQueue()
        super().__init__(*args, **kwargs)

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        self.inbox.put((message, tag))

    def next(self) -> Deferred[tuple[bytes, bytes]]:
        return self.inbox.get().addTimeout(WAIT, reactor)


class UnsplitSub(Sub):
    topicSep = None


class PipeSub(Sub):
    topicSep = b"|"


class SingleFramePub(ZmqPubConnection):
    singleFrame = True


class PipeSingleFramePub(SingleFramePub):
    topicSep = b"|"


class JoinedSingleFramePub(SingleFramePub):
    topicSep = None


def bound(connectionClass: type[Any], factory: ZmqFactory, address: str) -> Any:
    return connectionClass(factory, ZmqEndpoint(ZmqEndpointType.bind, address))


@pytest.fixture
def pyzmqPublisher(zmq_factory: ZmqFactory) -> Iterator[Any]:
    """``pyzmqPublisher(address, frames)``: a pyzmq PUB sending ``frames`` again and again."""
    stops: list[threading.Event] = []
    done: list[Deferred[None]] = []

    def start(address: str, frames: list[bytes]) -> None:
        stop = threading.Event()

        def run() -> None:
            socket = blockingSocket(zmq_factory.context, zmq.PUB)
            try:
                socket.connect(address)
                for _ in range(ROUNDS):
                    socket.send_multipart(frames)
                    if stop.wait(PACE):
                        return
            finally:
                socket.close(linger=0)

        stops.append(stop)
        done.append(inThread(run))

    yield start
    for stop in stops:
        stop.set()
    for finished in done:
        pytest_twisted.blockon(finished)


def pyzmqSubscriber(context: Any, address: str, tag: bytes) -> Deferred[list[bytes]]:
    """A pyzmq SUB subscribed to ``tag``: fires with the first message it receives."""

    def run() -> list[bytes]:
        socket = blockingSocket(context, zmq.SUB, subscribe=tag)
        try:
            socket.connect(address)
            return list(socket.recv_multipart())
        finally:
            socket.close(linger=0)

    return inThread(run)


@pytest.fixture(params=["ipc", "tcp"])
def address(request: pytest.FixtureRequest, zmq_address: Any) -> str:
    return str(zmq_address(request.param))


async def receivedBy(
    subClass: type[Sub], factory: ZmqFactory, address: str, frames: list[bytes], publisher: Any
) -> tuple[bytes, bytes]:
    sub = bound(subClass, factory, address)
    sub.subscribe(b"")
    publisher(sub.lastEndpoint, frames)
    try:
        return await sub.next()
    finally:
        sub.shutdown()


@pytest_twisted.ensureDeferred
async def test_one_frame_publication_is_split_at_the_first_topic_separator(
    zmq_factory, address, pyzmqPublisher
):
    frames = [b"weather.paris\x0022C\x00dry"]
    assert await receivedBy(Sub, zmq_factory, address, frames, pyzmqPublisher) == (
        b"22C\x00dry",
        b"weather.paris",
    )


@pytest_twisted.ensureDeferred
async def test_one_frame_publication_without_separator_is_all_message(
    zmq_factory, address, pyzmqPublisher
):
    frames = [b"weather.paris 22C"]
    assert await receivedBy(Sub, zmq_factory, address, frames, pyzmqPublisher) == (
        b"weather.paris 22C",
        b"",
    )


@pytest_twisted.ensureDeferred
async def test_topic_separator_none_never_splits(zmq_factory, address, pyzmqPublisher):
    frames = [b"weather.paris\x0022C"]
    assert await receivedBy(UnsplitSub, zmq_factory, address, frames, pyzmqPublisher) == (
        b"weather.paris\x0022C",
        b"",
    )


@pytest_twisted.ensureDeferred
async def test_subscriber_splits_at_its_own_topic_separator(zmq_factory, address, pyzmqPublisher):
    frames = [b"weather.paris|22C\x00"]
    assert await receivedBy(PipeSub, zmq_factory, address, frames, pyzmqPublisher) == (
        b"22C\x00",
        b"weather.paris",
    )


@pytest_twisted.ensureDeferred
async def test_two_frame_publication_is_never_split(zmq_factory, address, pyzmqPublisher):
    frames = [b"weather\x00paris", b"22C\x00dry"]
    assert await receivedBy(Sub, zmq_factory, address, frames, pyzmqPublisher) == (
        b"22C\x00dry",
        b"weather\x00paris",
    )


async def publishedTo(
    pubClass: type[ZmqPubConnection],
    factory: ZmqFactory,
    address: str,
    message: bytes | str,
    tag: bytes | str,
    subscription: bytes,
) -> list[bytes]:
    """The frames a pyzmq SUB subscribed to ``subscription`` gets of ``publish(message, tag)``."""
    pub = bound(pubClass, factory, address)
    received = pyzmqSubscriber(factory.context, pub.lastEndpoint, subscription)
    loop = LoopingCall(pub.publish, message, tag)
    loop.start(PACE)
    try:
        return await received.addTimeout(WAIT, reactor)
    finally:
        loop.stop()
        pub.shutdown()


@pytest_twisted.ensureDeferred
async def test_single_frame_publisher_sends_tag_separator_message(zmq_factory, address):
    frames = await publishedTo(SingleFramePub, zmq_factory, address, b"22C", b"weather", b"wea")
    assert frames == [b"weather\x0022C"]


@pytest_twisted.ensureDeferred
async def test_single_frame_publisher_uses_its_own_topic_separator(zmq_factory, address):
    frames = await publishedTo(PipeSingleFramePub, zmq_factory, address, b"22C", b"weather", b"")
    assert frames == [b"weather|22C"]


@pytest_twisted.ensureDeferred
async def test_single_frame_publisher_without_separator_joins_tag_and_message(
    zmq_factory, address
):
    frames = await publishedTo(JoinedSingleFramePub, zmq_factory, address, b"22C", b"paris", b"")
    assert frames == [b"paris22C"]


@pytest_twisted.ensureDeferred
async def test_publisher_sends_two_frames_by_default(zmq_factory, address):
    frames = await publishedTo(ZmqPubConnection, zmq_factory, address, b"22C", b"weather", b"")
    assert frames == [b"weather", b"22C"]


@pytest_twisted.ensureDeferred
async def test_str_tag_and_message_are_published_as_utf8(zmq_factory, address):
    frames = await publishedTo(ZmqPubConnection, zmq_factory, address, "22°C", "météo", b"")
    assert frames == ["météo".encode(), "22°C".encode()]


@pytest_twisted.ensureDeferred
async def test_str_tag_and_message_are_published_as_utf8_in_one_frame(zmq_factory, address):
    frames = await publishedTo(SingleFramePub, zmq_factory, address, "22°C", "météo", b"")
    assert frames == ["météo\x0022°C".encode()]


def test_publish_refuses_a_message_that_is_neither_bytes_nor_str(zmq_factory, zmq_address):
    pub = bound(ZmqPubConnection, zmq_factory, zmq_address("inproc"))
    try:
        with pytest.raises(TypeError, match="message is bytes or str"):
            pub.publish(22, b"weather")  # type: ignore[arg-type]
    finally:
        pub.shutdown()


@pytest_twisted.ensureDeferred
async def test_single_frame_publisher_reaches_subscriber_with_tag_and_message(
    zmq_factory, address
):
    pub = bound(SingleFramePub, zmq_factory, address)
    sub = Sub(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, pub.lastEndpoint))
    sub.subscribe(b"weather")
    await waitForSubscription(pub, sub)
    pub.publish(b"22C", b"weather.paris")
    assert await sub.next() == (b"22C", b"weather.paris")
    sub.shutdown()
    pub.shutdown()
