"""
Pub/sub between txzmq2 and a real txZMQ program in its own process, both ways.

txZMQ (installed by the test extra) publishes one frame, ``tag + b"\\0" + message``, and its
subscriber decodes one-frame and two-frame publications. Each txZMQ script binds, prints its
endpoint, and runs its own reactor; the subscriber prints what it got (hex) and exits.
"""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue
from twisted.internet.task import LoopingCall

from tests.peers import ScriptProcess, inThread
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqPubConnection, ZmqSubConnection

WAIT = 10.0  # seconds a test waits for a peer process at most

_TXZMQ_PUBLISHER = """
import sys
import zmq
from twisted.internet import reactor, task
from txzmq import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqPubConnection

pub = ZmqPubConnection(ZmqFactory(), ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"))
print(pub.socket.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
rounds = iter(range(4000))  # 20 s at most: the test kills it long before


def publish():
    if next(rounds, None) is None:
        reactor.stop()
    else:
        pub.publish(b"nothing for you", b"sport")
        pub.publish(b"22C", b"weather.paris")


task.LoopingCall(publish).start(0.005)
reactor.run()
"""

_TXZMQ_SUBSCRIBER = """
import sys
import zmq
from twisted.internet import reactor
from txzmq import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqSubConnection


class Sub(ZmqSubConnection):
    def gotMessage(self, message, tag):
        print(tag.hex(), message.hex(), flush=True)
        reactor.stop()


sub = Sub(ZmqFactory(), ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"))
sub.subscribe(b"weather")
print(sub.socket.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
reactor.callLater(20, reactor.stop)
reactor.run()
"""


class Sub(ZmqSubConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inbox: DeferredQueue[tuple[bytes, bytes]] = DeferredQueue()
        super().__init__(*args, **kwargs)

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        self.inbox.put((message, tag))


class SingleFramePub(ZmqPubConnection):
    singleFrame = True


def nextLine(script: ScriptProcess) -> Deferred[str]:
    assert script.process is not None and script.process.stdout is not None
    return inThread(script.process.stdout.readline).addTimeout(WAIT, reactor)


@pytest_twisted.ensureDeferred
async def test_txzmq_publication_reaches_gotMessage_as_message_and_tag(zmq_factory):
    publisher = ScriptProcess(_TXZMQ_PUBLISHER)
    try:
        endpoint = await publisher.start()
        sub = Sub(zmq_factory)
        sub.subscribe(b"weather")
        sub.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, endpoint)])
        assert await sub.inbox.get().addTimeout(WAIT, reactor) == (b"22C", b"weather.paris")
        sub.shutdown()
    finally:
        publisher.kill()


async def receivedByTxzmq(
    pubClass: type[ZmqPubConnection], factory: Any, message: bytes | str, tag: bytes | str
) -> tuple[bytes, bytes]:
    """What a txZMQ subscriber (to b"weather") hands its gotMessage: (tag, message)."""
    subscriber = ScriptProcess(_TXZMQ_SUBSCRIBER)
    try:
        endpoint = await subscriber.start()
        pub = pubClass(factory, ZmqEndpoint(ZmqEndpointType.connect, endpoint))
        # Publish until the subscription has reached us (slow joiner) and one arrived.
        loop = LoopingCall(pub.publish, message, tag)
        loop.start(0.005)
        try:
            line = await nextLine(subscriber)
        finally:
            loop.stop()
            pub.shutdown()
        assert await subscriber.exited() == 0
    finally:
        subscriber.kill()
    tagHex, messageHex = line.split()
    return bytes.fromhex(tagHex), bytes.fromhex(messageHex)


@pytest_twisted.ensureDeferred
async def test_single_frame_publication_reaches_txzmq_subscriber(zmq_factory):
    received = await receivedByTxzmq(SingleFramePub, zmq_factory, b"22C", b"weather.paris")
    assert received == (b"weather.paris", b"22C")


@pytest_twisted.ensureDeferred
async def test_two_frame_publication_reaches_txzmq_subscriber(zmq_factory):
    received = await receivedByTxzmq(ZmqPubConnection, zmq_factory, b"22C", b"weather.paris")
    assert received == (b"weather.paris", b"22C")


@pytest_twisted.ensureDeferred
async def test_str_publication_reaches_txzmq_subscriber_as_utf8(zmq_factory):
    received = await receivedByTxzmq(SingleFramePub, zmq_factory, "22°C", "weather.zürich")
    assert received == ("weather.zürich".encode(), "22°C".encode())
