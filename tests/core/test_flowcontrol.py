"""
Never lose what libzmq would keep, and let backpressure travel both ways: the outbound
queue at the high-water mark, IConsumer for producers writing to a connection, and
IPushProducer for what a connection reads.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IPullProducer, IPushProducer
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPullConnection,
    ZmqPushConnection,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect


class TightPush(ZmqPushConnection):
    sendHighWaterMark = 1
    recvHighWaterMark = 1


class SlowPull(ZmqPullConnection):
    """
    A consumer that takes ``batch`` messages, then pauses its own reading for a few
    milliseconds, like an application that is busy elsewhere.
    """

    sendHighWaterMark = 1
    recvHighWaterMark = 1
    batch = 100
    expected = 0

    def __init__(self, *args, **kwargs):
        self.received: list[bytes] = []
        self.done: Deferred[None] = Deferred()
        self._rest = None
        super().__init__(*args, **kwargs)

    def onPull(self, message):
        self.received.append(message[0])
        if len(self.received) == self.expected:
            self.done.callback(None)
        elif len(self.received) % self.batch == 0:
            self.pauseProducing()
            self._rest = reactor.callLater(0.002, self.resumeProducing)

    def _connectionClosed(self):
        if self._rest is not None and self._rest.active():
            self._rest.cancel()


def test_connection_provides_consumer_and_push_producer(zmq_factory):
    connection = ZmqPullConnection(zmq_factory)
    assert verifyObject(IConsumer, connection)
    assert verifyObject(IPushProducer, connection)
    connection.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_sends_beyond_high_water_mark_queue_and_arrive_in_order(
    zmq_factory, zmq_address, transport
):
    total = 10_000
    pull = SlowPull(zmq_factory, ZmqEndpoint(bind, zmq_address(transport)))
    pull.expected = total
    push = TightPush(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    for n in range(total):
        push.push(b"%d" % n)  # never raises zmq.Again
    assert push.sendQueueLength > total // 2, "libzmq took it all: the HWM did not bite"
    await pull.done
    assert pull.received == [b"%d" % n for n in range(total)]
    assert push.sendQueueLength == 0
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_paused_reader_holds_messages_back_until_resumed(zmq_factory, zmq_address):
    total = 200
    pull = SlowPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    pull.expected = total
    pull.pauseProducing()
    push = TightPush(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    for n in range(total):
        push.push(b"%d" % n)
    # Let the reactor run passes on both sides for a while: nothing may be delivered, and
    # the backpressure shows as messages still queued on the sending side.
    for _ in range(20):
        await _turn()
    assert pull.received == []
    assert push.sendQueueLength > total - 10
    pull.resumeProducing()
    await pull.done
    assert pull.received == [b"%d" % n for n in range(total)]
    push.shutdown()
    pull.shutdown()


@implementer(IPushProducer)
class CountingProducer:
    """A streaming producer writing numbered messages until paused or finished."""

    def __init__(self, consumer, total):
        self.consumer = consumer
        self.total = total
        self.sent = 0
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.stopped = False

    def produce(self):
        while not self.paused and self.sent < self.total:
            self.consumer.write(b"%d" % self.sent)
            self.sent += 1
        if self.sent == self.total:
            self.consumer.unregisterProducer()

    def pauseProducing(self):
        self.paused = True
        self.pauses += 1

    def resumeProducing(self):
        self.paused = False
        self.resumes += 1
        reactor.callLater(0, self.produce)

    def stopProducing(self):
        self.stopped = True


@pytest_twisted.ensureDeferred
async def test_streaming_producer_is_paused_at_queue_bound_and_resumed(zmq_factory, zmq_address):
    total = 5_000
    pull = SlowPull(zmq_factory, ZmqEndpoint(bind, zmq_address("tcp")))
    pull.expected = total
    push = TightPush(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    push.sendQueueHighWater = 100
    push.sendQueueLowWater = 10
    producer = CountingProducer(push, total)
    push.registerProducer(producer, True)
    producer.produce()
    assert producer.paused, "the producer was not paused at the queue bound"
    assert push.sendQueueLength <= push.sendQueueHighWater + 1
    await pull.done
    assert producer.pauses >= 2 and producer.resumes >= 2
    assert pull.received == [b"%d" % n for n in range(total)]
    push.shutdown()
    pull.shutdown()


@implementer(IPullProducer)
class PullingProducer:
    """A pull producer writing one message each time it is asked."""

    def __init__(self, consumer, total):
        self.consumer = consumer
        self.total = total
        self.sent = 0

    def resumeProducing(self):
        self.consumer.write(b"%d" % self.sent)
        self.sent += 1
        if self.sent == self.total:
            self.consumer.unregisterProducer()

    def stopProducing(self):
        pass


@pytest_twisted.ensureDeferred
async def test_pull_producer_is_asked_for_each_message(zmq_factory, zmq_address):
    total = 500
    pull = SlowPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    pull.expected = total
    push = TightPush(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    push.registerProducer(PullingProducer(push, total), False)
    await pull.done
    assert pull.received == [b"%d" % n for n in range(total)]
    push.shutdown()
    pull.shutdown()


def test_second_producer_is_refused(zmq_factory):
    push = ZmqPushConnection(zmq_factory)
    push.registerProducer(CountingProducer(push, 0), True)
    with pytest.raises(RuntimeError, match="already has a producer"):
        push.registerProducer(CountingProducer(push, 0), True)
    push.unregisterProducer()
    push.shutdown()


def test_shutdown_stops_the_registered_producer(zmq_factory):
    push = ZmqPushConnection(zmq_factory)
    producer = CountingProducer(push, 0)
    push.registerProducer(producer, True)
    push.shutdown()
    assert producer.stopped


def _turn() -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, 0.001, lambda: None)


# -- whenSendQueueEmpty ---------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_send_queue_empty_fires_at_once_when_nothing_is_queued(zmq_factory):
    push = TightPush(zmq_factory)
    assert (await push.whenSendQueueEmpty()) is None
    push.shutdown()


@pytest_twisted.ensureDeferred
async def test_send_queue_empty_fires_once_the_reader_drains_the_queue(zmq_factory, zmq_address):
    total = 200
    pull = SlowPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    pull.expected = total
    pull.pauseProducing()
    push = TightPush(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    for n in range(total):
        push.push(b"%d" % n)
    drained = push.whenSendQueueEmpty(timeout=10)
    for _ in range(5):
        await _turn()
    assert not drained.called  # the reader holds everything back
    pull.resumeProducing()
    await drained
    assert push.sendQueueLength == 0
    await pull.done
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_send_queue_empty_times_out_while_nobody_reads(zmq_factory, zmq_address):
    from txzmq2 import ZmqTimeoutError

    pull = SlowPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    pull.pauseProducing()
    push = TightPush(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    for n in range(50):
        push.push(b"%d" % n)
    with pytest.raises(ZmqTimeoutError):
        await push.whenSendQueueEmpty(timeout=0.05)
    assert push._outbound._drainWaiters == []
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_send_queue_empty_fails_when_shutdown_drops_queued_messages(
    zmq_factory, zmq_address
):
    from txzmq2 import ZmqConnectionClosed

    pull = SlowPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    pull.pauseProducing()
    push = TightPush(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    for n in range(50):
        push.push(b"%d" % n)
    drained = push.whenSendQueueEmpty()
    push.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        await drained
    pull.shutdown()


def test_a_flush_that_sends_restarts_the_retry_backoff(zmq_factory, zmq_address):
    """
    A flood keeps the outbound queue from emptying: each flush that moves messages starts
    the backoff afresh, else the retry delay would climb to its maximum and stay there.
    """
    import zmq

    from tests.peers import blockingSocket
    from txzmq2._outbound import RETRY_MAX, RETRY_MIN

    address = zmq_address("inproc")
    push = TightPush(zmq_factory, ZmqEndpoint(bind, address))
    pull = blockingSocket(zmq_factory.context, zmq.PULL, rcvhwm=1)
    pull.connect(address)
    try:
        for number in range(50):
            push.send(b"%d" % number)
        outbound = push._outbound
        outbound.flush()  # the PUSH attaches the peer's pipe, and fills it
        assert outbound.length > 10  # libzmq took a few; the rest wait
        outbound._retryDelay = RETRY_MAX  # as after a long run of fruitless flushes
        assert pull.recv() == b"0"
        while pull.poll(0):  # what else the pipe holds: the PUSH may write again
            pull.recv()
        push.socket.get(zmq.EVENTS)  # as a pass does: libzmq takes in "writable again"
        assert outbound.flush() > 0
        assert outbound.length > 0 and outbound._retryDelay == RETRY_MIN
    finally:
        pull.close()
        push.shutdown()
