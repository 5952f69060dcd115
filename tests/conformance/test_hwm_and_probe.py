"""
High-water marks and router probes: re-expresses the checks of libzmq's
``tests/test_hwm.cpp``, the high-water-mark half of ``tests/test_router_mandatory.cpp``,
and ``tests/test_probe_router.cpp``, as they apply to our connections.

libzmq tells a sender at the high-water mark ``EAGAIN`` (DEALER, and ROUTER with
``ZMQ_ROUTER_MANDATORY``) or drops (ROUTER by default). Ours never raises ``zmq.Again``: what
libzmq refuses waits in the connection's outbound queue (``sendQueueLength``) and leaves in
order once the peer reads. These checks count exactly how much libzmq takes first, so they
run over inproc, where a pipe's limit is the sender's ``SNDHWM`` plus the receiver's
``RCVHWM`` and a message libzmq took is already in the receiver's pipe.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.task import deferLater

from tests.conformance.support import (
    Dealer,
    Peers,
    Router,
    bound,
    connected,
    receive,
    receiveWaiting,
    within,
)


def numbered(count: int) -> list[list[bytes]]:
    return [[b"%d" % n] for n in range(count)]


# -- high-water marks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sendHwm", "receiveHwm", "taken"),
    [(1, 1, 2), (2, 3, 5), (1, 0, 20), (0, 1, 20)],
    ids=["1+1", "2+3", "unbounded-receive", "unbounded-send"],
)
@pytest.mark.parametrize("order", ["bind-first", "connect-first"])
@pytest_twisted.ensureDeferred
async def test_hwm_dealer_takes_sndhwm_plus_rcvhwm_then_queues_in_order(
    zmq_factory, zmq_address, peers, order, sendHwm, receiveHwm, taken
):
    """
    libzmq test_hwm (count_msg, bind first and connect first): over inproc libzmq takes
    ``SNDHWM + RCVHWM`` messages (all of them when either is 0, unbounded) before it says
    EAGAIN; RFC 28, DEALER: "SHALL NOT discard messages that it cannot queue". Ours holds
    the rest in order, and the peer gets all twenty, in order.
    """

    class TightDealer(Dealer):
        sendHighWaterMark = sendHwm

    address = zmq_address("inproc")
    if order == "connect-first":
        dealer = TightDealer(zmq_factory, connected(address))
        peer = peers.socket(zmq.DEALER, bind=address, rcvhwm=receiveHwm)
    else:
        peer = peers.socket(zmq.DEALER, bind=address, rcvhwm=receiveHwm)
        dealer = TightDealer(zmq_factory, connected(address))

    for [message] in numbered(20):
        dealer.sendMsg(message)

    assert dealer.sendQueueLength == 20 - taken
    assert await within(peers.run(receive, peer, 20)) == numbered(20)
    assert dealer.sendQueueLength == 0
    dealer.shutdown()


@pytest_twisted.ensureDeferred
async def test_hwm_defaults_let_libzmq_take_two_thousand_messages_over_inproc(
    zmq_factory, zmq_address, peers
):
    """
    libzmq test_hwm (test_defaults): with the default high-water marks (1000 each way)
    libzmq takes 2000 messages over inproc; ours queues the next 500 and delivers all 2500
    in order.
    """
    peer = peers.socket(zmq.DEALER, bind=zmq_address("inproc"))
    dealer = Dealer(zmq_factory, connected(peer.last_endpoint.decode()))

    for [message] in numbered(2500):
        dealer.sendMsg(message)

    assert dealer.sendQueueLength == 500
    assert await within(peers.run(receive, peer, 2500)) == numbered(2500)
    assert dealer.sendQueueLength == 0
    dealer.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_dealer_round_robin_skips_a_peer_whose_queue_is_full(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, DEALER: "SHALL consider a peer as available only when it has an outgoing queue
    that is not full" and "SHALL route outgoing messages to available peers using a
    round-robin strategy". Two peers take two messages each (``SNDHWM`` 1 + ``RCVHWM`` 1),
    alternately; the other six wait in our queue, and once peer B reads they all go to B,
    past A, which still does not read.
    """

    class TightDealer(Dealer):
        sendHighWaterMark = 1

    a, b = (peers.socket(zmq.DEALER, bind=zmq_address("inproc"), rcvhwm=1) for _ in "ab")
    dealer = TightDealer(zmq_factory)
    dealer.addEndpoints([connected(a.last_endpoint.decode()), connected(b.last_endpoint.decode())])

    for [message] in numbered(10):
        dealer.sendMsg(message)
    assert dealer.sendQueueLength == 6

    assert await within(peers.run(receive, b, 8)) == [[b"1"], [b"3"], *numbered(10)[4:]]
    assert dealer.sendQueueLength == 0
    assert receiveWaiting(a) == [[b"0"], [b"2"]]
    dealer.shutdown()


class TightRouter(Router):
    sendHighWaterMark = 1


class TightMandatoryRouter(TightRouter):
    routerMandatory = True
    # Above the high-water mark it would default to: these tests look at the queue itself.
    sendQueueLimit = 100


async def helloFrom(router: Router, peers: Peers, *names: bytes) -> list[Any]:
    """
    Connect a pyzmq DEALER (``RCVHWM`` 1) per name and have each say hello, so that the
    router knows them all; returns the DEALERs.
    """
    dealers = [
        peers.socket(zmq.DEALER, connect=router.lastEndpoint, routing_id=name, rcvhwm=1)
        for name in names
    ]
    await within(peers.run(lambda: [dealer.send(b"hello") for dealer in dealers]))
    greeted = {(await router.next())[0] for _ in names}
    assert greeted == set(names)
    return dealers


@pytest_twisted.ensureDeferred
async def test_rfc28_router_drops_beyond_the_high_water_mark_by_default(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, ROUTER: "SHALL either silently drop the message, or return an error, depending
    on configuration, if the queue ... is full" and "SHALL NOT block on sending". By
    default: the first two messages wait for the peer, the other eight are dropped, and
    nothing is queued on our side.
    """
    router = TightRouter(zmq_factory, bound(zmq_address("inproc")))
    [peer] = await helloFrom(router, peers, b"X")

    for [message] in numbered(10):
        router.sendMsg(b"X", message)

    assert router.sendQueueLength == 0
    assert receiveWaiting(peer) == numbered(2)
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_router_mandatory_queues_beyond_the_high_water_mark_and_delivers_in_order(
    zmq_factory, zmq_address, peers
):
    """
    libzmq test_router_mandatory: with ``ZMQ_ROUTER_MANDATORY`` a full queue answers EAGAIN
    instead of dropping. Ours keeps what libzmq refused (eight of ten here) in its outbound
    queue, up to ``sendQueueLimit`` per peer, and the peer gets all ten, in order, once it
    reads.
    """
    router = TightMandatoryRouter(zmq_factory, bound(zmq_address("inproc")))
    [peer] = await helloFrom(router, peers, b"X")

    for [message] in numbered(10):
        router.sendMsg(b"X", message)

    assert router.sendQueueLength == 8
    assert await within(peers.run(receive, peer, 10)) == numbered(10)
    assert router.sendQueueLength == 0
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_router_mandatory_full_peer_does_not_hold_back_messages_to_another(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, ROUTER: "SHALL maintain a double queue for each connected peer, allowing
    outgoing and incoming messages to be queued independently" and "SHALL NOT block on
    sending". With ``routerMandatory``, peer X at its high-water mark (it does not read)
    must not delay a message to peer Y, which has room: over inproc it is in Y's pipe as
    soon as ``sendMsg`` returns.
    """
    router = TightMandatoryRouter(zmq_factory, bound(zmq_address("inproc")))
    x, y = await helloFrom(router, peers, b"X", b"Y")

    for [message] in numbered(3):
        router.sendMsg(b"X", message)
    router.sendMsg(b"Y", b"for Y")

    try:
        assert receiveWaiting(y) == [[b"for Y"]]
        assert router.sendQueueLength == 1
    finally:
        # Whatever happened, X reads everything, so nothing is left queued.
        await within(peers.run(receive, x, 3))
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_router_mandatory_waiting_on_a_full_peer_does_not_spin_the_reactor(
    zmq_factory, zmq_address, peers
):
    """
    Flow control must not busy-loop: while a message for peer X (at its high-water mark,
    not reading) waits in our queue, EVENTS keeps reporting POLLOUT because peer Y has
    room. The connection then retries on a backoff timer (1 ms doubling to 50 ms) instead
    of a pass on every reactor turn, and the message still leaves once X reads.
    """
    from twisted.internet import reactor

    class Counting(TightMandatoryRouter):
        passes = 0

        def _runPass(self, woken=False):
            self.passes += 1
            super()._runPass(woken)

    router = Counting(zmq_factory, bound(zmq_address("inproc")))
    x, _ = await helloFrom(router, peers, b"X", b"Y")
    for [message] in numbered(3):
        router.sendMsg(b"X", message)
    assert router.sendQueueLength == 1

    try:
        before = router.passes
        await deferLater(reactor, 0.3, lambda: None)
        # Busy-looping would be thousands of passes; backoff is about a dozen.
        assert router.passes - before < 25
    finally:
        await within(peers.run(receive, x, 3))
    assert router.sendQueueLength == 0
    router.shutdown()


# -- probe router ------------------------------------------------------------------------------


class ProbingRouter(Router):
    probeRouter = True


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_probe_router_a_probing_dealer_announces_itself_to_our_router(
    zmq_factory, zmq_address, peers, transport
):
    """
    libzmq test_probe_router (test_probe_router_dealer): a DEALER with
    ``ZMQ_PROBE_ROUTER`` sends an empty message on connect, so our ROUTER learns its
    identity ("X") before it says anything, and can send to it.
    """
    router = Router(zmq_factory, bound(zmq_address(transport)))
    dealer = peers.socket(zmq.DEALER, connect=router.lastEndpoint, routing_id=b"X", probe_router=1)

    assert await router.next() == (b"X", b"")
    router.sendMsg(b"X", b"Hello")
    assert await within(peers.run(receive, dealer)) == [[b"Hello"]]
    router.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_probe_router_our_probing_router_announces_itself_to_a_router(
    zmq_factory, zmq_address, peers, transport
):
    """
    libzmq test_probe_router (test_probe_router_router): our ROUTER with ``probeRouter``
    and identity "X" sends an empty message on connect; the pyzmq ROUTER sees
    ``[b"X", b""]`` and answers; ours gets the answer from the server's generated identity
    (five bytes), and can answer back by it.
    """
    server = peers.socket(zmq.ROUTER, bind=zmq_address(transport))

    def answerProbe() -> list[bytes]:
        probe = server.recv_multipart()
        server.send_multipart([probe[0], b"Hello"])
        return probe

    probed = peers.run(answerProbe)
    router = ProbingRouter(zmq_factory, connected(server.last_endpoint.decode()), identity=b"X")

    assert await within(probed) == [b"X", b""]
    serverId, hello = await router.next()
    assert hello == b"Hello"
    assert len(serverId) == 5
    router.sendMsg(serverId, b"back")
    assert await within(peers.run(receive, server)) == [[b"X", b"back"]]
    router.shutdown()
