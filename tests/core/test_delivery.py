"""
No stranded message: ZeroMQ's edge-triggered FD must never leave a message unread, whatever
consumed the edge (a send, a subscribe, a bind), and reads must yield to the reactor.
"""

from __future__ import annotations

import time

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall, deferLater

from tests.peers import CollectingPull, blockingSocket, inThread
from tests.stalls import StallMeter
from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPairConnection,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqSubConnection,
    ZmqXPubConnection,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect


@pytest_twisted.ensureDeferred
async def test_ping_pong_of_100000_messages_over_inproc(zmq_factory, zmq_address):
    total = 100_000
    finished: Deferred[int] = Deferred()

    class Player(ZmqPairConnection):
        def gotMessage(self, *frames):
            count = int(frames[0])
            if count >= total:
                finished.callback(count)
            else:
                # Sending from inside the delivery callback, every time.
                self.sendMsg(b"%d" % (count + 1))

    address = zmq_address("inproc")
    ping = Player(zmq_factory, ZmqEndpoint(bind, address))
    pong = Player(zmq_factory, ZmqEndpoint(connect, address))
    ping.sendMsg(b"1")
    assert await finished == total
    ping.shutdown()
    pong.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_sender_that_only_sends_reaches_receiver_that_only_receives(
    zmq_factory, zmq_address, transport
):
    total = 20_000
    pull = CollectingPull(zmq_factory, ZmqEndpoint(bind, zmq_address(transport)))
    pull.expected = total
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    sent = iter(range(total))

    def sendSome():
        # Bursts spread over reactor turns, never reading on the sending side.
        for n in sent:
            push.push(b"%d" % n)
            if n % 500 == 499:
                return
        loop.stop()

    loop = LoopingCall(sendSome)
    loop.start(0)
    await pull.done
    # The last burst may end exactly at a boundary: the loop then stops one tick later.
    if loop.running:
        loop.stop()
    assert [int(m[0]) for m in pull.received] == list(range(total))
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_dealer_receives_while_it_only_ever_sends_elsewhere(zmq_factory, zmq_address):
    """A connection that keeps sending still sees messages that arrive meanwhile."""
    total = 5_000
    received: list[bytes] = []
    allIn: Deferred[None] = Deferred()

    class Dealer(ZmqDealerConnection):
        def gotMessage(self, *frames):
            received.append(frames[0])
            if len(received) == total:
                allIn.callback(None)

    address = zmq_address("inproc")
    dealer = Dealer(zmq_factory, ZmqEndpoint(bind, address))

    def peer():
        socket = blockingSocket(zmq_factory.context, zmq.DEALER)
        socket.connect(address)
        try:
            for n in range(total):
                socket.send(b"%d" % n)
            for _ in range(total):
                socket.recv()
        finally:
            socket.close()

    finishedPeer = inThread(peer)
    for n in range(total):
        # Each send can consume the FD's edge while the peer's messages are waiting.
        dealer.sendMsg(b"%d" % n)
    await allIn
    await finishedPeer
    assert received == [b"%d" % n for n in range(total)]
    dealer.shutdown()


@pytest_twisted.ensureDeferred
async def test_sub_that_subscribes_after_first_messages_gets_later_ones(zmq_factory, zmq_address):
    subscribed: Deferred[bytes] = Deferred()

    class Pub(ZmqXPubConnection):
        def gotSubscription(self, tag, isSubscribed):
            if isSubscribed and not subscribed.called:
                subscribed.callback(tag)

    class Sub(ZmqSubConnection):
        def __init__(self, *args, **kwargs):
            self.messages: list[tuple[bytes, bytes]] = []
            self.done: Deferred[None] = Deferred()
            super().__init__(*args, **kwargs)

        def gotMessage(self, message, tag):
            self.messages.append((tag, message))
            if len(self.messages) == 1000:
                self.done.callback(None)

    pub = Pub(zmq_factory, ZmqEndpoint(bind, zmq_address("tcp")))
    sub = Sub(zmq_factory, ZmqEndpoint(connect, pub.lastEndpoint))
    for n in range(100):
        pub.publish(b"early %d" % n, b"news")  # nobody subscribed yet: dropped by design
    sub.subscribe("news")
    assert await subscribed == b"news"
    for n in range(1000):
        pub.publish(b"%d" % n, b"news")
    await sub.done
    assert sub.messages == [(b"news", b"%d" % n) for n in range(1000)]
    sub.shutdown()
    pub.shutdown()


@pytest_twisted.ensureDeferred
async def test_messages_sent_before_connect_are_read_without_fd_activity(zmq_factory, zmq_address):
    """inproc: the peer's messages wait in the pipe before our socket ever polls."""
    address = zmq_address("inproc")
    sender = blockingSocket(zmq_factory.context, zmq.PUSH)
    sender.bind(address)
    try:
        pull = CollectingPull(zmq_factory, ZmqEndpoint(connect, address))
        pull.expected = 10
        # Sent before the reactor has turned once: no doRead has happened yet.
        for n in range(10):
            sender.send(b"%d" % n)
        await pull.done
        assert [m[0] for m in pull.received] == [b"%d" % n for n in range(10)]
    finally:
        sender.close()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_flood_of_200000_messages_never_stalls_the_reactor(zmq_factory, zmq_address):
    total = 200_000

    class Pull(ZmqPullConnection):
        recvHighWaterMark = 0  # let the whole flood queue up in libzmq
        count = 0

        def onPull(self, message):
            # Count, not keep: 200,000 retained lists make the garbage collector's own
            # pauses the longest stall, which would measure Python, not this connection.
            self.count += 1
            if self.count == total:
                done.callback(None)

    done: Deferred[None] = Deferred()
    pull = Pull(zmq_factory, ZmqEndpoint(bind, zmq_address("tcp")))
    address = pull.lastEndpoint
    meter = StallMeter()
    meter.__enter__()

    def flood():
        socket = blockingSocket(zmq.Context.instance(), zmq.PUSH, sndhwm=0)
        socket.connect(address)
        try:
            for _ in range(total):
                socket.send(b"x" * 100)
        finally:
            socket.close(linger=5_000)

    flooding = inThread(flood)
    try:
        await done
    finally:
        meter.__exit__()
    await flooding
    assert pull.count == total
    assert meter.ticks > 10, "the reactor never got to tick during the flood"
    # CPU time of the reactor thread: the flooding thread and a loaded machine stretch
    # wall-time gaps without the connection holding the reactor any longer.
    assert meter.longestCpu < 0.050, f"reactor stalled: {meter}"
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_one_read_pass_delivers_at_most_a_batch(zmq_factory, zmq_address):
    """The budget, not the queue, ends a pass: the rest comes in later turns."""
    perTurn: list[int] = []
    turn = {"count": 0}

    class Pull(CollectingPull):
        readBatchSize = 50
        readBatchSeconds = 60.0

        def onPull(self, message):
            turn["count"] += 1
            super().onPull(message)

    def tick():
        perTurn.append(turn["count"])
        turn["count"] = 0

    address = zmq_address("inproc")
    sender = blockingSocket(zmq_factory.context, zmq.PUSH)
    sender.bind(address)
    try:
        pull = Pull(zmq_factory, ZmqEndpoint(connect, address))
        pull.expected = 500
        for n in range(500):
            sender.send(b"%d" % n)
        clock = LoopingCall(tick)
        clock.start(0)
        await pull.done
        clock.stop()
        tick()
    finally:
        sender.close()
    assert max(perTurn) <= 50
    assert sum(perTurn) == 500
    pull.shutdown()


def test_reactor_under_test_is_the_one_asked_for(request):
    choice = request.config.getoption("--reactor-impl") or request.config.getoption("--reactor")
    name = type(reactor).__name__.lower()
    expected = {"poll": "poll", "select": "select", "asyncio": "asyncio"}.get(choice)
    if expected is not None:
        assert expected in name


class Collector(ZmqDealerConnection):
    """A DEALER whose messages arrive as Deferreds, one per ``nextMessage()`` call."""

    def __init__(self, *args, **kwargs):
        self._waiting: list[Deferred[tuple[bytes, ...]]] = []
        self._arrived: list[tuple[bytes, ...]] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, *frames):
        if self._waiting:
            self._waiting.pop(0).callback(frames)
        else:
            self._arrived.append(frames)

    def nextMessage(self) -> Deferred[tuple[bytes, ...]]:
        if self._arrived:
            return _fired(self._arrived.pop(0))
        waiting: Deferred[tuple[bytes, ...]] = Deferred()
        waiting.addTimeout(5, reactor)
        self._waiting.append(waiting)
        return waiting


def _fired(value):
    done: Deferred = Deferred()
    done.callback(value)
    return done


async def _dealerWithPeer(zmq_factory, zmq_address):
    """A Collector bound on inproc, a blocking DEALER peer, and one message already read."""
    address = zmq_address("inproc")
    collector = Collector(zmq_factory, ZmqEndpoint(bind, address))
    peer = blockingSocket(zmq_factory.context, zmq.DEALER)
    peer.connect(address)
    peer.send(b"first")
    assert await collector.nextMessage() == (b"first",)
    # We resumed inside the collector's read pass; leave it, so that pass cannot pick up
    # what the test sends next.
    await deferLater(reactor, 0, lambda: None)
    return collector, peer


@pytest_twisted.ensureDeferred
async def test_message_arriving_before_a_bind_is_not_stranded(zmq_factory, zmq_address):
    collector, peer = await _dealerWithPeer(zmq_factory, zmq_address)
    try:
        peer.send(b"second")
        # bind() processes libzmq's pending commands, swallowing the FD's signal for "second".
        collector.addEndpoints([ZmqEndpoint(bind, zmq_address("inproc"))])
        assert await collector.nextMessage() == (b"second",)
    finally:
        peer.close()
    collector.shutdown()


@pytest_twisted.ensureDeferred
async def test_message_arriving_before_a_send_is_not_stranded(zmq_factory, zmq_address):
    collector, peer = await _dealerWithPeer(zmq_factory, zmq_address)
    try:
        peer.send(b"second")
        # libzmq throttles command processing in send() to once per ~1 ms (by TSC); let that
        # window pass so the send below deterministically consumes the FD's signal.
        time.sleep(0.005)
        collector.sendMsg(b"out")
        assert await collector.nextMessage() == (b"second",)
        assert peer.recv() == b"out"
    finally:
        peer.close()
    collector.shutdown()


@pytest_twisted.ensureDeferred
async def test_message_arriving_before_a_burst_of_sends_is_not_stranded(zmq_factory, zmq_address):
    collector, peer = await _dealerWithPeer(zmq_factory, zmq_address)
    try:
        peer.send(b"second")
        time.sleep(0.005)  # as above: the first send below consumes the FD's signal
        for n in range(10):
            collector.sendMsg(b"out %d" % n)
        assert await collector.nextMessage() == (b"second",)
        assert [peer.recv() for _ in range(10)] == [b"out %d" % n for n in range(10)]
    finally:
        peer.close()
    collector.shutdown()


@pytest.mark.parametrize("verb", ["send", "sendMany"])
@pytest.mark.parametrize("kind", ["dealer", "push"])
@pytest_twisted.ensureDeferred
async def test_send_with_nothing_to_read_schedules_no_reactor_call(
    zmq_factory, zmq_address, kind, verb
):
    """A send made outside a pass looks at EVENTS itself instead of scheduling a pass."""
    address = zmq_address("inproc")
    peer = blockingSocket(zmq_factory.context, zmq.DEALER if kind == "dealer" else zmq.PULL)
    peer.bind(address)
    connectionType = ZmqDealerConnection if kind == "dealer" else ZmqPushConnection
    connection = connectionType(zmq_factory, ZmqEndpoint(connect, address))
    try:
        connection.send(b"warm-up")
        assert peer.recv() == b"warm-up"
        await deferLater(reactor, 0.01, lambda: None)  # set-up's own calls have run
        before = len(reactor.getDelayedCalls())
        if verb == "send":
            connection.send(b"one")
        else:
            connection.sendMany([b"one", [b"two"]])
        assert len(reactor.getDelayedCalls()) == before
        assert peer.recv() == b"one"
        if verb == "sendMany":
            assert peer.recv() == b"two"
    finally:
        peer.close()
    connection.shutdown()
