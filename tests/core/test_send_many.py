"""
``sendMany``: a batch of messages in one call, each sent exactly as ``send`` would send it
(in order, queued past the high-water mark, the same errors), on the native and the
pure-Python path alike (CI runs this file on both).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from zope.interface import implementer

from tests.peers import blockingSocket, inThread
from txzmq2 import (
    Message,
    ZmqConnectionClosed,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqRouterConnection,
    ZmqSendQueueFull,
    ZmqUnroutableError,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect

END = b"end"


class Collector:
    """What a PULL (or DEALER) receives; ``ended`` fires when the message ``[END]`` arrives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.ended: Deferred[None] = Deferred()

    def __call__(self, message: Message) -> None:
        if message == [END]:
            self.ended.callback(None)
        else:
            self.messages.append(message)


class TightPush(ZmqPushConnection):
    sendHighWaterMark = 1


class TightPull(ZmqPullConnection):
    recvHighWaterMark = 1


def pair(factory: Any, address: str, push: type[ZmqPushConnection] = ZmqPushConnection) -> Any:
    collector = Collector()
    pull = TightPull(factory, ZmqEndpoint(bind, address), receiver=collector)
    sender = push(factory, ZmqEndpoint(connect, pull.lastEndpoint))
    return sender, pull, collector


@pytest_twisted.ensureDeferred
async def test_batch_past_the_high_water_mark_arrives_whole_and_in_order_once_the_peer_reads(
    zmq_factory, zmq_address
):
    total = 5000
    push, pull, collector = pair(zmq_factory, zmq_address("tcp"), TightPush)
    pull.pauseProducing()  # the peer starts reading late
    push.sendMany([b"%d" % n for n in range(total)])
    assert push.sendQueueLength > 0, "libzmq took it all: the high-water mark did not bite"
    pull.resumeProducing()
    await push.whenSendQueueEmpty(timeout=30)
    push.send(END)
    await collector.ended
    assert collector.messages == [[b"%d" % n] for n in range(total)]
    push.shutdown()
    pull.shutdown()


@pytest.mark.parametrize("verb", ["sendMany", "send"])
@pytest_twisted.ensureDeferred
async def test_batch_queued_behind_waiting_messages_schedules_no_reactor_call(
    zmq_factory, zmq_address, verb
):
    # It touches no socket: a pass would only find libzmq still full, and that fruitless
    # flush sends the next POLLOUT to the retry timer. (send: one message, the same rule.)
    push, pull, collector = pair(zmq_factory, zmq_address("inproc"), TightPush)
    pull.pauseProducing()
    push.sendMany([b"%d" % n for n in range(10)])
    assert push.sendQueueLength > 0
    await deferLater(reactor, 0.01, lambda: None)  # the pass the first batch asked for ran
    before = len(reactor.getDelayedCalls())
    if verb == "sendMany":
        push.sendMany([b"%d" % n for n in range(10, 20)])
    else:
        for n in range(10, 20):
            push.send(b"%d" % n)
    assert len(reactor.getDelayedCalls()) == before
    pull.resumeProducing()
    await push.whenSendQueueEmpty(timeout=30)
    push.send(END)
    await collector.ended
    assert collector.messages == [[b"%d" % n] for n in range(20)]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_batches_stay_in_order_while_the_peer_reads_during_them(zmq_factory, zmq_address):
    # A blocking pyzmq PULL reading in its own thread frees room in libzmq while a batch
    # is being sent: a message after one that waits in the queue must still wait its turn.
    total, batch = 20_000, 2000
    address = zmq_address("tcp")
    peer = blockingSocket(zmq_factory.context, zmq.PULL, rcvhwm=1)
    peer.bind(address)
    address = peer.get(zmq.LAST_ENDPOINT).decode()

    def read() -> list[bytes]:
        try:
            return [peer.recv() for _ in range(total)]
        finally:
            peer.close()

    push = TightPush(zmq_factory, ZmqEndpoint(connect, address))
    reading = inThread(read)
    queued = 0
    for start in range(0, total, batch):
        push.sendMany([b"%d" % n for n in range(start, start + batch)])
        queued = max(queued, push.sendQueueLength)
    assert queued, "libzmq took it all: the high-water mark did not bite"
    assert await reading == [b"%d" % n for n in range(total)]
    push.shutdown()


@pytest_twisted.ensureDeferred
async def test_one_frame_and_multipart_messages_mixed_arrive_as_sent(zmq_factory, zmq_address):
    push, pull, collector = pair(zmq_factory, zmq_address("tcp"))
    large = b"L" * 100_000  # past zmq.COPY_THRESHOLD: a zero-copy send
    push.sendMany(
        [
            b"one",
            [b"two", b"frames"],
            (b"a", b"tuple"),
            [b""],
            bytearray(b"a bytearray"),
            [b"x", memoryview(b"a view")],
            [large, b"small"],
            large,
            [b"last"],
        ]
    )
    push.send(END)
    await collector.ended
    assert collector.messages == [
        [b"one"],
        [b"two", b"frames"],
        [b"a", b"tuple"],
        [b""],
        [b"a bytearray"],
        [b"x", b"a view"],
        [large, b"small"],
        [large],
        [b"last"],
    ]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_queued_large_and_small_messages_leave_in_order(zmq_factory, zmq_address):
    # The queue is flushed in runs that stop at each frame large enough for zero copy.
    push, pull, collector = pair(zmq_factory, zmq_address("inproc"), TightPush)
    pull.pauseProducing()
    large = b"L" * 100_000
    batch: list[Any] = []
    for n in range(40):
        batch += [b"%d" % n, [large, b"%d" % n], [b"%d" % n, b"two"], large]
    push.sendMany(batch)
    assert push.sendQueueLength > len(batch) // 2
    pull.resumeProducing()
    await push.whenSendQueueEmpty(timeout=30)
    push.send(END)
    await collector.ended
    assert collector.messages == [m if isinstance(m, list) else [m] for m in batch]
    assert push.stats().sent == len(batch) + 1
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_bad_frame_stops_the_batch_after_the_messages_before_it(zmq_factory, zmq_address):
    push, pull, collector = pair(zmq_factory, zmq_address("tcp"))
    with pytest.raises(TypeError):
        push.sendMany([b"1", [b"2", b"two"], [b"3", 3], b"4", [b"5"]])
    push.send(END)
    await collector.ended
    assert collector.messages == [[b"1"], [b"2", b"two"]]
    assert push.stats().sent == 3  # with END
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_bad_frame_among_queued_messages_stops_the_batch_there(zmq_factory, zmq_address):
    push, pull, collector = pair(zmq_factory, zmq_address("inproc"), TightPush)
    pull.pauseProducing()
    batch = [b"%d" % n for n in range(50)]
    with pytest.raises(TypeError):
        push.sendMany([*batch, [b"bad", 3], b"after"])
    stats = push.stats()
    assert stats.queued > 0, "libzmq took it all: the high-water mark did not bite"
    assert stats.sent + stats.queued == len(batch)
    pull.resumeProducing()
    await push.whenSendQueueEmpty(timeout=30)
    push.send(END)
    await collector.ended
    assert collector.messages == [[message] for message in batch]
    push.shutdown()
    pull.shutdown()


def test_one_message_instead_of_a_batch_is_refused(zmq_factory):
    push = ZmqPushConnection(zmq_factory)
    with pytest.raises(TypeError, match="iterable of messages"):
        push.sendMany(b"not a batch")
    assert push.stats().sent == 0
    push.shutdown()


def test_batch_on_a_closed_connection_raises_connection_closed(zmq_factory):
    push = ZmqPushConnection(zmq_factory)
    push.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        push.sendMany([b"1", b"2"])
    with pytest.raises(ZmqConnectionClosed):
        push.sendMany([])


class MandatoryRouter(ZmqRouterConnection):
    routerMandatory = True


@pytest_twisted.ensureDeferred
async def test_unknown_identity_under_router_mandatory_stops_the_batch_there(
    zmq_factory, zmq_address
):
    greeted: Deferred[Message] = Deferred()
    router = MandatoryRouter(
        zmq_factory, ZmqEndpoint(bind, zmq_address("tcp")), receiver=greeted.callback
    )
    collector = Collector()
    dealer = ZmqDealerConnection(
        zmq_factory,
        ZmqEndpoint(connect, router.lastEndpoint),
        identity=b"peer",
        receiver=collector,
    )
    dealer.sendMsg(b"hello")
    assert await greeted == [b"peer", b"hello"]  # the router knows the peer now
    with pytest.raises(ZmqUnroutableError):
        router.sendMany([[b"peer", b"1"], [b"peer", b"2"], [b"nobody", b"x"], [b"peer", b"3"]])
    router.send([b"peer", END])
    await collector.ended
    assert collector.messages == [[b"1"], [b"2"]]
    router.shutdown()
    dealer.shutdown()


class DroppingRouter(ZmqRouterConnection):
    routerMandatory = True
    sendHighWaterMark = 2  # and so sendQueueLimit: 2 per peer, dropped past it


class DeafDealer(ZmqDealerConnection):
    recvHighWaterMark = 1


@pytest_twisted.ensureDeferred
async def test_router_batch_to_a_peer_that_does_not_read_drops_past_the_limit_and_goes_on(
    zmq_factory, zmq_address
):
    greeted: Deferred[Message] = Deferred()
    router = DroppingRouter(
        zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")), receiver=greeted.callback
    )
    dealer = DeafDealer(
        zmq_factory,
        ZmqEndpoint(connect, router.lastEndpoint),
        identity=b"peer",
        receiver=lambda message: None,
    )
    dealer.sendMsg(b"hello")
    await greeted
    dealer.pauseProducing()
    router.sendMany([[b"peer", b"%d" % n] for n in range(100)])  # raises nothing
    stats = router.stats()
    assert stats.queued == 2
    assert stats.dropped > 0
    assert stats.sent + stats.queued + stats.dropped == 100
    router.shutdown()
    dealer.shutdown()


class LimitedPush(ZmqPushConnection):
    sendHighWaterMark = 1
    sendQueueLimit = 5


@pytest_twisted.ensureDeferred
async def test_send_queue_limit_reached_mid_batch_raises_with_the_earlier_messages_kept(
    zmq_factory, zmq_address
):
    # inproc: libzmq holds only a couple of messages, so the queue fills within the batch.
    push, pull, collector = pair(zmq_factory, zmq_address("inproc"), LimitedPush)
    pull.pauseProducing()
    batch = [b"%d" % n for n in range(100)]
    with pytest.raises(ZmqSendQueueFull):
        push.sendMany(batch)
    stats = push.stats()
    assert stats.queued == 5
    kept = stats.sent + stats.queued
    assert kept < len(batch)
    pull.resumeProducing()
    await push.whenSendQueueEmpty(timeout=30)
    push.send(END)
    await collector.ended
    assert collector.messages == [[message] for message in batch[:kept]]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_stats_sent_counts_each_message_of_a_batch_once(zmq_factory, zmq_address):
    total = 3000
    push, pull, _ = pair(zmq_factory, zmq_address("inproc"), TightPush)
    pull.pauseProducing()
    push.sendMany([b"%d" % n if n % 3 else [b"%d" % n, b"more"] for n in range(total)])
    stats = push.stats()
    assert stats.queued > 0
    assert stats.sent + stats.queued == total
    pull.resumeProducing()
    await push.whenSendQueueEmpty(timeout=30)
    stats = push.stats()
    assert (stats.sent, stats.queued, stats.dropped) == (total, 0, 0)
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_generator_of_messages_is_sent_in_order(zmq_factory, zmq_address):
    push, pull, collector = pair(zmq_factory, zmq_address("tcp"))

    def messages() -> Iterator[bytes | list[bytes]]:
        for n in range(100):
            yield b"%d" % n if n % 2 else [b"%d" % n, b"even"]

    push.sendMany(messages())
    push.send(END)
    await collector.ended
    assert collector.messages == [
        [b"%d" % n] if n % 2 else [b"%d" % n, b"even"] for n in range(100)
    ]
    push.shutdown()
    pull.shutdown()


def test_empty_batch_sends_nothing(zmq_factory):
    push = ZmqPushConnection(zmq_factory)
    push.sendMany([])
    push.sendMany(iter(()))
    stats = push.stats()
    assert (stats.sent, stats.queued) == (0, 0)
    push.shutdown()


@implementer(IPushProducer)
class ShutsDownWhenPaused:
    def __init__(self, connection: ZmqPushConnection) -> None:
        self.connection = connection

    def pauseProducing(self) -> None:
        self.connection.shutdown()

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class PacedPush(ZmqPushConnection):
    sendHighWaterMark = 1
    sendQueueHighWater = 3


def test_producer_that_shuts_down_when_paused_mid_batch_ends_it_with_connection_closed(
    zmq_factory, zmq_address
):
    push, pull, _ = pair(zmq_factory, zmq_address("inproc"), PacedPush)
    pull.pauseProducing()
    push.registerProducer(ShutsDownWhenPaused(push), True)
    with pytest.raises(ZmqConnectionClosed):
        push.sendMany([b"%d" % n for n in range(100)])
    assert push.closed
    pull.shutdown()
