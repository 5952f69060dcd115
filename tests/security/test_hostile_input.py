"""
Hostile input: every parser of network input is fed arbitrary frame lists by a real peer,
on one live connection that serves all of hypothesis's examples. Whatever arrives, the
connection stays up, drops (and logs) what its socket type's contract cannot carry, never
hands the application a message that breaks that contract, and serves the next good message.

Each example sends its garbage and then a good message carrying a fresh sentinel; a peer's
messages arrive in order, so once the sentinel is delivered everything before it has been
handled, and what the application saw can be compared with what the socket type promises.
Peers are blocking pyzmq sockets that the test only sends on without blocking (and reads
from only what is already on its way). Runs are derandomized: CI sees the same examples
every time.
"""

from __future__ import annotations

import errno
import itertools
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogLevel

from tests.peers import blockingSocket
from txzmq2 import (
    ZmqConnection,
    ZmqConnectionClosed,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqPullConnection,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
    ZmqSubConnection,
    ZmqUnroutableError,
    ZmqXPubConnection,
)
from txzmq2.testing import AddressFactory, waitForSubscription

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect

WAIT = 5.0
"""Seconds a sentinel (or an event) may take: a broken library fails the test, not hangs it."""

# Every drop must be logged here: the limit on repeated warnings is lifted.
pytestmark = pytest.mark.usefixtures("everyWarningLogged")

HOSTILE = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    # The live connection in a function-scoped fixture is shared by every example on purpose.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Frames that parsers look at (delimiters, subscription bytes) come up often, alongside any
# bytes at all.
frame = st.one_of(st.sampled_from([b"", b"\x00", b"\x01", b"\x02"]), st.binary(max_size=64))
frameList = st.lists(frame, min_size=1, max_size=6)
garbageBatch = st.lists(frameList, min_size=1, max_size=4)

_sentinels = itertools.count(1)


def newSentinel() -> bytes:
    return b"sentinel-%d" % next(_sentinels)


class Arrivals:
    """What a connection handed the application, in order, and a wait for one arrival."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self._waiters: list[tuple[bytes, Deferred[None]]] = []
        self._closed = False

    def add(self, *item: Any) -> None:
        self.seen.append(item)
        for marker, waiter in list(self._waiters):
            if marker in item:
                self._waiters.remove((marker, waiter))
                # The test resumes on the next turn, not inside the connection's callback
                # (which may still have a reply to send).
                reactor.callLater(0, waiter.callback, None)

    def waitFor(self, marker: bytes) -> Deferred[None]:
        """Fires once an arrival holds ``marker``; fails if the connection closes first."""
        if self._closed:
            raise ZmqConnectionClosed("the connection under test was shut down")
        entry: tuple[bytes, Deferred[None]]

        def forget(_: Deferred[None]) -> None:
            self._waiters.remove(entry)

        entry = (marker, Deferred(forget))
        self._waiters.append(entry)
        return entry[1].addTimeout(WAIT, reactor)

    def take(self) -> list[tuple[Any, ...]]:
        seen, self.seen = self.seen, []
        return seen

    def close(self) -> None:
        self._closed = True
        waiters, self._waiters = self._waiters, []
        for _, waiter in waiters:
            waiter.errback(ZmqConnectionClosed("the connection under test was shut down"))


class Recording(ZmqConnection):
    """A connection that records arrivals and fails waits for them when it shuts down."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.arrivals = Arrivals()
        super().__init__(*args, **kwargs)

    def _connectionClosed(self) -> None:
        super()._connectionClosed()
        self.arrivals.close()


class EchoServer(Recording, ZmqREPConnection):
    def gotMessage(self, messageId: bytes, *parts: bytes) -> None:
        self.arrivals.add(*parts)
        self.reply(messageId, b"echo", *parts)


class RecordingRouter(Recording, ZmqRouterConnection):
    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.arrivals.add(senderId, *frames)


class Relay(Recording, ZmqRouterConnection):
    """Sends each message's body to the peer its first frame names; says when it cannot."""

    routerMandatory = True

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        target, *body = frames
        self.arrivals.add(senderId, *frames)
        try:
            self.sendMultipart(target, body)
        except ZmqUnroutableError:
            self.sendMultipart(senderId, [b"unroutable", target])


class RecordingSub(Recording, ZmqSubConnection):
    def gotMessage(self, message: bytes, tag: bytes) -> None:
        self.arrivals.add(tag, message)


class RecordingXPub(Recording, ZmqXPubConnection):
    xpubVerbose = True  # every subscription reaches gotSubscription, not only new ones

    def gotSubscription(self, tag: bytes, subscribed: bool) -> None:
        self.arrivals.add(tag, subscribed)


class RecordingPull(Recording, ZmqPullConnection):
    def onPull(self, message: list[bytes]) -> None:
        self.arrivals.add(*message)


class RecordingDealer(Recording, ZmqDealerConnection):
    def gotMessage(self, *frames: bytes) -> None:
        self.arrivals.add(*frames)


# -- fixtures and helpers --------------------------------------------------------------------


def countLogged(events: list[dict[str, Any]], text: str, level: LogLevel) -> int:
    """How many events at ``level`` have ``text`` in their format."""
    return sum(
        1
        for event in events
        if event.get("log_level") == level and text in (event.get("log_format") or "")
    )


def failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event for event in events if "log_failure" in event]


@pytest.fixture
def peers(zmq_factory: ZmqFactory) -> Iterator[Any]:
    """``peers(socketType, **options)``: blocking pyzmq sockets, closed after the test."""
    made: list[Any] = []

    def make(socketType: int, **options: Any) -> Any:
        peer = blockingSocket(zmq_factory.context, socketType, **options)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        peer.close(linger=0)  # before the factory terminates the context


async def routeTo(peer: Any, identity: bytes, probe: list[bytes]) -> None:
    """
    Send ``[identity, *probe]`` from a ROUTER peer with ``router_mandatory`` as soon as the
    connection to ``identity`` is known to it (the identity exchange completes on the
    reactor, in the other socket's pass).
    """
    deadline = reactor.seconds() + WAIT
    while True:
        try:
            peer.send_multipart([identity, *probe])
            return
        except zmq.ZMQError as error:
            if error.errno != errno.EHOSTUNREACH or reactor.seconds() > deadline:
                raise
        await deferLater(reactor, 0.001, lambda: None)


def request(frames: list[bytes]) -> tuple[list[bytes], list[bytes]] | None:
    """
    How a REP connection reads ``frames`` arriving after the sender's identity: the envelope
    (up to and including the first empty frame) and the body, or ``None`` when it must drop
    them (no delimiter, or nothing after it).
    """
    if b"" not in frames:
        return None
    delimiter = frames.index(b"")
    if delimiter == len(frames) - 1:
        return None
    return frames[: delimiter + 1], frames[delimiter + 1 :]


# -- REP: request envelopes ------------------------------------------------------------------

REP_ID = b"rep-under-test"


class RepPeer:
    """A DEALER or ROUTER peer of a REP connection: frames in and out, minus routing."""

    def __init__(self, socket: Any, routed: bool) -> None:
        self.socket = socket
        self.routed = routed

    def send(self, frames: list[bytes]) -> None:
        self.socket.send_multipart([REP_ID, *frames] if self.routed else frames)

    def recv(self) -> list[bytes]:
        frames: list[bytes] = self.socket.recv_multipart()
        if self.routed:
            assert frames[0] == REP_ID
            return frames[1:]
        return frames


async def repAndPeer(
    zmq_factory: ZmqFactory, zmq_address: AddressFactory, socket: Any
) -> tuple[EchoServer, RepPeer]:
    """An echo REP on inproc and ``socket`` (a DEALER or ROUTER) connected and answered."""
    server = EchoServer(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")), identity=REP_ID)
    routed = socket.type == zmq.ROUTER
    socket.connect(server.lastEndpoint)
    peer = RepPeer(socket, routed)
    if routed:
        await routeTo(socket, REP_ID, [b"", b"ready"])
    else:
        peer.send([b"", b"ready"])
    await server.arrivals.waitFor(b"ready")
    assert peer.recv() == [b"", b"echo", b"ready"]
    server.arrivals.take()
    return server, peer


# (Two fixtures and two tests rather than a parametrized one: pytest-twisted rewraps a
# hypothesis test per parametrized item and then nests the wrappers.)
@pytest_twisted.async_yield_fixture
async def repWithDealer(zmq_factory, zmq_address, peers) -> AsyncIterator[Any]:
    server, peer = await repAndPeer(zmq_factory, zmq_address, peers(zmq.DEALER))
    yield server, peer
    server.shutdown()


@pytest_twisted.async_yield_fixture
async def repWithRouter(zmq_factory, zmq_address, peers) -> AsyncIterator[Any]:
    server, peer = await repAndPeer(
        zmq_factory, zmq_address, peers(zmq.ROUTER, router_mandatory=1)
    )
    yield server, peer
    server.shutdown()


@HOSTILE
@given(garbage=garbageBatch)
@pytest_twisted.ensureDeferred
async def test_rep_serves_only_requests_with_an_envelope_from_a_dealer(
    repWithDealer, logged, garbage
):
    await checkRep(*repWithDealer, logged, garbage)


@HOSTILE
@given(garbage=garbageBatch)
@pytest_twisted.ensureDeferred
async def test_rep_serves_only_requests_with_an_envelope_from_a_router(
    repWithRouter, logged, garbage
):
    await checkRep(*repWithRouter, logged, garbage)


async def checkRep(
    server: EchoServer, peer: RepPeer, logged: list[dict[str, Any]], garbage: list[list[bytes]]
) -> None:
    """
    Feed ``garbage`` then a good request: the handler sees only well-formed requests, each
    reply carries its request's envelope, and every drop is logged.
    """
    logged.clear()
    sentinel = newSentinel()
    for frames in garbage:
        peer.send(frames)
    peer.send([b"", sentinel])
    await server.arrivals.waitFor(sentinel)

    requests = [parsed for parsed in map(request, garbage) if parsed is not None]
    assert server.arrivals.take() == [tuple(body) for _, body in requests] + [(sentinel,)]
    expected = [[*envelope, b"echo", *body] for envelope, body in requests]
    assert [peer.recv() for _ in range(len(requests) + 1)] == [
        *expected,
        [b"", b"echo", sentinel],
    ]
    withoutDelimiter = sum(b"" not in frames for frames in garbage)
    withoutBody = len(garbage) - withoutDelimiter - len(requests)
    assert countLogged(logged, "without an empty delimiter", LogLevel.warn) == withoutDelimiter
    assert countLogged(logged, "with no body", LogLevel.debug) == withoutBody
    assert failures(logged) == []
    assert server.pendingRequests == 0


ZMTP_GREETING = b"\xff" + bytes(8) + b"\x7f\x03\x00" + b"NULL".ljust(20, b"\x00") + bytes(32)

rawBytes = st.one_of(
    st.binary(max_size=512),
    st.binary(max_size=256).map(lambda tail: ZMTP_GREETING + tail),
    st.binary(max_size=64).map(lambda tail: ZMTP_GREETING[: len(tail) % 64] + tail),
)


@pytest_twisted.async_yield_fixture
async def tcpServer(zmq_factory: ZmqFactory, peers: Any) -> AsyncIterator[tuple[EchoServer, Any]]:
    """An echo REP on tcp loopback, and a DEALER client it has already answered."""
    server = EchoServer(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    client = peers(zmq.DEALER)
    client.connect(server.lastEndpoint)
    client.send_multipart([b"", b"ready"])
    await server.arrivals.waitFor(b"ready")
    assert client.recv_multipart() == [b"", b"echo", b"ready"]
    server.arrivals.take()
    yield server, client
    server.shutdown()


@settings(HOSTILE, max_examples=30)
@given(data=rawBytes)
@pytest_twisted.ensureDeferred
async def test_rep_survives_arbitrary_bytes_on_its_tcp_port(tcpServer, logged, data):
    server, client = tcpServer
    logged.clear()
    sentinel = newSentinel()
    port = int(server.lastEndpoint.rsplit(":", 1)[1])
    disconnects = server.monitor(zmq.EVENT_DISCONNECTED)
    disconnected = disconnects.waitFor(zmq.EVENT_DISCONNECTED, timeout=WAIT)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as raw:
        try:
            raw.sendall(data)
        except ConnectionError:
            pass  # libzmq hung up on the garbage before it was all sent: just as good
    # libzmq drops the raw connection (a failed handshake, or the end of its stream).
    await disconnected
    disconnects.stop()
    client.send_multipart([b"", sentinel])
    await server.arrivals.waitFor(sentinel)
    assert client.recv_multipart() == [b"", b"echo", sentinel]
    assert server.arrivals.take() == [(sentinel,)]
    assert failures(logged) == []


# -- ROUTER: identities and frames -----------------------------------------------------------

_peerNumbers = itertools.count(1)


@pytest.fixture
def router(zmq_factory: ZmqFactory, zmq_address: AddressFactory) -> Iterator[RecordingRouter]:
    router = RecordingRouter(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    yield router
    router.shutdown()


@HOSTILE
@given(
    identity=st.one_of(st.none(), st.binary(min_size=1, max_size=240)),
    garbage=garbageBatch,
)
@pytest_twisted.ensureDeferred
async def test_router_delivers_any_frames_with_the_identity_its_peer_chose(
    router, peers, logged, identity, garbage
):
    logged.clear()
    sentinel = newSentinel()
    options = {}
    if identity is not None:
        # Unique per example: libzmq refuses a peer whose identity is still in use, and the
        # previous example's peer may not be fully gone yet.
        options["routing_id"] = identity + b"#%d" % next(_peerNumbers)
    peer = peers(zmq.DEALER, **options)
    peer.connect(router.lastEndpoint)
    try:
        for frames in garbage:
            peer.send_multipart(frames)
        peer.send_multipart([sentinel])
        await router.arrivals.waitFor(sentinel)
    finally:
        peer.close(linger=0)
    seen = router.arrivals.take()
    senderId = seen[-1][0]
    if identity is None:
        assert len(senderId) == 5 and senderId[0] == 0  # one libzmq made up
    else:
        assert senderId == options["routing_id"]
    assert seen == [(senderId, *frames) for frames in garbage] + [(senderId, sentinel)]
    assert failures(logged) == []


@pytest_twisted.async_yield_fixture
async def relayWithPeer(zmq_factory, zmq_address, peers) -> AsyncIterator[tuple[Relay, Any]]:
    relay = Relay(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    peer = peers(zmq.DEALER, routing_id=b"peer")
    peer.connect(relay.lastEndpoint)
    peer.send_multipart([b"peer", b"ready"])
    await relay.arrivals.waitFor(b"ready")
    assert peer.recv_multipart() == [b"ready"]
    relay.arrivals.take()
    yield relay, peer
    relay.shutdown()


@HOSTILE
@given(targets=st.lists(st.binary(max_size=64).filter(lambda t: t != b"peer"), min_size=1))
@pytest_twisted.ensureDeferred
async def test_router_mandatory_refuses_sends_to_unknown_identities_and_routes_the_next(
    relayWithPeer, logged, targets
):
    relay, peer = relayWithPeer
    logged.clear()
    sentinel = newSentinel()
    for target in targets:
        peer.send_multipart([target, b"payload"])
    peer.send_multipart([b"peer", sentinel])
    await relay.arrivals.waitFor(sentinel)
    # Each unknown identity was refused at once: nothing waits for it in the queue.
    answers = [peer.recv_multipart() for _ in range(len(targets) + 1)]
    assert answers == [[b"unroutable", target] for target in targets] + [[sentinel]]
    assert relay.sendQueueLength == 0
    assert failures(logged) == []


# -- SUB and XPUB: topics and subscriptions --------------------------------------------------


class PyzmqPublisher:
    """A pyzmq PUB socket with the ``publish`` that ``waitForSubscription`` drives."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket

    def publish(self, message: bytes, tag: bytes = b"") -> None:
        self.socket.send_multipart([tag, message])


@pytest_twisted.async_yield_fixture
async def subWithPub(zmq_factory, zmq_address, peers) -> AsyncIterator[tuple[RecordingSub, Any]]:
    sub = RecordingSub(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    sub.subscribe(b"")
    pub = peers(zmq.PUB)
    pub.connect(sub.lastEndpoint)
    await waitForSubscription(PyzmqPublisher(pub), sub, timeout=WAIT)
    yield sub, pub
    sub.shutdown()


def oneFrame(frame: bytes) -> tuple[bytes, bytes]:
    """(tag, message) of a one-frame publication, split at its first b"\0" if it has one."""
    tag, separator, message = frame.partition(b"\0")
    return (tag, message) if separator else (b"", frame)


@HOSTILE
@given(garbage=garbageBatch)
@pytest_twisted.ensureDeferred
async def test_sub_delivers_publications_and_drops_longer_messages(subWithPub, logged, garbage):
    sub, pub = subWithPub
    logged.clear()
    sentinel = newSentinel()
    for frames in garbage:
        pub.send_multipart(frames)
    pub.send_multipart([b"tag", sentinel])
    await sub.arrivals.waitFor(sentinel)
    # A publication is [tag, message], or one frame tag + b"\0" + message (txZMQ's), or a
    # bare [message] without b"\0" under the tag b"".
    expected = [oneFrame(frames[0]) if len(frames) == 1 else tuple(frames) for frames in garbage]
    assert sub.arrivals.take() == [
        *(publication for publication in expected if len(publication) == 2),
        (b"tag", sentinel),
    ]
    longer = sum(len(frames) > 2 for frames in garbage)
    assert countLogged(logged, "-frame message; publications are", LogLevel.warn) == longer
    assert failures(logged) == []


class SubscriptionModel:
    """
    What an XPUB with ``xpubVerbose`` tells its application, given what one pyzmq XSUB sent:
    the XSUB counts its subscriptions per tag and passes an unsubscription on only when it
    ends the last one; the XPUB reports every subscription and each such unsubscription.
    """

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}

    def reported(self, frame: bytes) -> tuple[bytes, bool] | None:
        if not frame or frame[0] not in (0, 1):
            return None
        tag = frame[1:]
        if frame[0] == 1:
            self.counts[tag] = self.counts.get(tag, 0) + 1
            return tag, True
        if self.counts.get(tag, 0) == 0:
            return None  # never subscribed: the XSUB does not pass it on
        self.counts[tag] -= 1
        if self.counts[tag]:
            return None
        del self.counts[tag]
        return tag, False


@pytest.fixture
def xpubWithXSub(
    zmq_factory, zmq_address, peers
) -> Iterator[tuple[RecordingXPub, Any, SubscriptionModel]]:
    xpub = RecordingXPub(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    xsub = peers(zmq.XSUB)
    xsub.connect(xpub.lastEndpoint)
    yield xpub, xsub, SubscriptionModel()
    xpub.shutdown()


# (Un)subscriptions, and frames whose first byte is next to the two that mean something.
subscriptionFrame = st.one_of(
    frame,
    st.builds(
        lambda first, tag: bytes([first]) + tag,
        st.one_of(st.sampled_from([0, 1, 2, 255]), st.integers(0, 255)),
        st.binary(max_size=8),
    ),
)


@HOSTILE
@given(garbage=st.lists(subscriptionFrame, min_size=1, max_size=6))
@pytest_twisted.ensureDeferred
async def test_xpub_reports_subscriptions_and_drops_other_one_frame_messages(
    xpubWithXSub, logged, garbage
):
    xpub, xsub, model = xpubWithXSub
    logged.clear()
    sentinel = newSentinel()
    for frame in garbage:
        xsub.send(frame)
    xsub.send(b"\x01" + sentinel)
    await xpub.arrivals.waitFor(sentinel)
    reports = [model.reported(frame) for frame in [*garbage, b"\x01" + sentinel]]
    assert xpub.arrivals.take() == [report for report in reports if report is not None]
    notSubscriptions = sum(not frame or frame[0] not in (0, 1) for frame in garbage)
    assert countLogged(logged, "not a subscription", LogLevel.warn) == notSubscriptions
    assert failures(logged) == []


# libzmq's XPUB keeps a subscription frame that is not the first of its message to itself
# (and an XSUB swallows an unsubscription it never subscribed), so one message from a
# subscriber can leave the XPUB handing over a frame flagged "more" whose next frame never
# comes: the next recv raises zmq.Again. The connection must end the message there, not
# take the Again for a broken socket and shut down (and a ZmqProxy forwarder with it).


class QuietXPub(RecordingXPub):
    xpubVerbose = None  # libzmq's default: a repeated subscription is not reported


@pytest.fixture
def quietXPubWithXSub(zmq_factory, zmq_address, peers) -> Iterator[tuple[QuietXPub, Any]]:
    xpub = QuietXPub(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    xsub = peers(zmq.XSUB)
    xsub.connect(xpub.lastEndpoint)
    yield xpub, xsub
    xpub.shutdown()


@pytest_twisted.ensureDeferred
async def test_xpub_survives_a_repeated_subscription_inside_a_multipart_message(
    quietXPubWithXSub, logged
):
    xpub, xsub = quietXPubWithXSub
    xsub.send(b"\x01news")
    await xpub.arrivals.waitFor(b"news")
    xsub.send_multipart([b"junk", b"\x01news"])
    # Read now, as the reactor would on the FD's signal, before anything completes the
    # message that libzmq cut short (inproc: the frames are in the XPUB's pipe already).
    xpub.doRead()
    xsub.send(b"\x01sport")
    xsub.send(b"\x01weather")
    await xpub.arrivals.waitFor(b"weather")
    assert failures(logged) == []
    assert not xpub.closed


@HOSTILE
@given(garbage=st.lists(st.lists(subscriptionFrame, min_size=2, max_size=4), min_size=1))
@pytest_twisted.ensureDeferred
async def test_xpub_survives_multipart_messages_from_a_subscriber(
    quietXPubWithXSub, logged, garbage
):
    xpub, xsub = quietXPubWithXSub
    logged.clear()
    sentinel = newSentinel()
    for frames in garbage:
        xsub.send_multipart(frames)
        xpub.doRead()  # read each as it lands (as the reactor may), not all glued together
    # A one-frame message that is no subscription ends whatever message libzmq left open,
    # so that the sentinel arrives on its own.
    xsub.send(b"end of garbage")
    xsub.send(b"\x01" + sentinel)
    await xpub.arrivals.waitFor(sentinel)
    # What libzmq makes of subscriptions inside multipart messages is its own business; the
    # contract is that the application hears only subscriptions, and nothing fails.
    assert all(type(subscribed) is bool for _, subscribed in xpub.arrivals.take())
    assert failures(logged) == []
    assert not xpub.closed


# -- PULL and DEALER: frames passed through --------------------------------------------------


@pytest.fixture
def pullWithPush(zmq_factory, zmq_address, peers) -> Iterator[tuple[RecordingPull, Any]]:
    pull = RecordingPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    push = peers(zmq.PUSH)
    push.connect(pull.lastEndpoint)
    yield pull, push
    pull.shutdown()


@HOSTILE
@given(garbage=garbageBatch)
@pytest_twisted.ensureDeferred
async def test_pull_delivers_any_frames_exactly_as_sent(pullWithPush, logged, garbage):
    pull, push = pullWithPush
    logged.clear()
    sentinel = newSentinel()
    for frames in garbage:
        push.send_multipart(frames)
    push.send(sentinel)
    await pull.arrivals.waitFor(sentinel)
    assert pull.arrivals.take() == [*map(tuple, garbage), (sentinel,)]
    assert failures(logged) == []


DEALER_ID = b"dealer-under-test"


@pytest_twisted.async_yield_fixture
async def dealerWithRouter(
    zmq_factory, zmq_address, peers
) -> AsyncIterator[tuple[RecordingDealer, Any]]:
    router = peers(zmq.ROUTER, router_mandatory=1)
    address = zmq_address("inproc")
    router.bind(address)
    dealer = RecordingDealer(zmq_factory, ZmqEndpoint(connect, address), identity=DEALER_ID)
    await routeTo(router, DEALER_ID, [b"ready"])
    await dealer.arrivals.waitFor(b"ready")
    dealer.arrivals.take()
    yield dealer, router
    dealer.shutdown()


@HOSTILE
@given(garbage=garbageBatch)
@pytest_twisted.ensureDeferred
async def test_dealer_delivers_any_frames_exactly_as_sent(dealerWithRouter, logged, garbage):
    dealer, router = dealerWithRouter
    logged.clear()
    sentinel = newSentinel()
    for frames in garbage:
        router.send_multipart([DEALER_ID, *frames])
    router.send_multipart([DEALER_ID, sentinel])
    await dealer.arrivals.waitFor(sentinel)
    assert dealer.arrivals.take() == [*map(tuple, garbage), (sentinel,)]
    assert failures(logged) == []


# -- REQ: replies ----------------------------------------------------------------------------


class ReqState:
    """A REQ connection, the ROUTER peer answering it, and the request ids answered so far."""

    def __init__(self, client: ZmqREQConnection, server: Any) -> None:
        self.client = client
        self.server = server
        self.answered: list[bytes] = []


@pytest.fixture
def reqWithRouter(zmq_factory, zmq_address, peers) -> Iterator[ReqState]:
    server = peers(zmq.ROUTER)
    address = zmq_address("inproc")
    server.bind(address)
    state = ReqState(ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, address)), server)
    yield state
    state.client.shutdown()


def garbageReplies(requestId: bytes, answered: list[bytes]) -> st.SearchStrategy[list[bytes]]:
    """Replies that must not answer ``requestId``: malformed, or for another request."""
    wrongIds = st.one_of(
        st.sampled_from(
            [
                requestId[:-1],
                requestId + b"\x00",
                bytes([requestId[0] ^ 1]) + requestId[1:],
                requestId[:-1] + bytes([requestId[-1] ^ 0x80]),
                b"",
                # Late replies to requests answered already (always three choices: the shape
                # of what hypothesis draws must not depend on earlier examples).
                *(answered[-3:] + [b"never-sent"] * 3)[:3],
            ]
        ),
        st.binary(max_size=16),
    )
    short = st.lists(frame, max_size=3)
    return st.one_of(
        frameList,
        # The right id without a delimiter after it (or nothing after it at all).
        st.lists(st.binary(min_size=1, max_size=16), max_size=3).map(
            lambda rest: [requestId, *rest]
        ),
        st.builds(lambda wrong, rest: [wrong, b"", *rest], wrongIds, short),
        st.builds(lambda wrong, rest: [wrong, *rest], wrongIds, short),
    ).filter(lambda reply: not (len(reply) >= 2 and reply[0] == requestId and reply[1] == b""))


@HOSTILE
@given(data=st.data())
@pytest_twisted.ensureDeferred
async def test_req_drops_garbage_replies_and_takes_the_real_one(reqWithRouter, logged, data):
    state = reqWithRouter
    client, server = state.client, state.server
    logged.clear()
    sentinel = newSentinel()
    reply = client.sendMsg(b"question", timeout=WAIT)
    try:
        # Already in the server's pipe (inproc): this read does not wait on the reactor.
        peerId, requestId, empty, question = server.recv_multipart()
        assert (empty, question) == (b"", b"question")
        garbage = data.draw(
            st.lists(garbageReplies(requestId, state.answered), min_size=1, max_size=4),
            label="garbage replies",
        )
        for frames in garbage:
            server.send_multipart([peerId, *frames])
        server.send_multipart([peerId, requestId, b"", sentinel])
        # Garbage before it never fired the request: it fires once, with the real reply.
        assert await reply == [sentinel]
    finally:
        if not reply.called:  # the test failed before the reply: end the request quietly
            reply.addErrback(lambda _: None)
            reply.cancel()
    state.answered.append(requestId)
    assert client.pendingRequests == 0
    drops = countLogged(logged, "dropped a reply without envelope", LogLevel.debug)
    drops += countLogged(logged, "dropped a reply to an unknown", LogLevel.debug)
    assert drops == len(garbage)
    assert failures(logged) == []
