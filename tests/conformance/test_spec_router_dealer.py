"""
RFC 28/REQREP, the ROUTER and DEALER sockets, as ZmqRouterConnection and
ZmqDealerConnection keep them; re-expresses the checks of libzmq's
``tests/test_spec_router.cpp``, ``tests/test_spec_dealer.cpp`` and
``tests/test_router_mandatory.cpp`` that apply to them, and ``ZMQ_ROUTER_HANDOVER``.

Peers are plain pyzmq sockets. Where a check is about order among several peers, it runs
over inproc: there a message sent is already in the receiver's pipe when ``send`` returns, so
the test knows what is waiting without sleeping.
"""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
import zmq

from tests.conformance.support import (
    Dealer,
    Router,
    bound,
    connected,
    receive,
    receiveWaiting,
    serve,
    within,
)
from txzmq2 import ZmqUnroutableError


class MandatoryRouter(Router):
    routerMandatory = True


class HandoverRouter(Router):
    routerHandover = True


# -- ROUTER ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_router_fair_queues_and_prefixes_each_message_with_its_sender(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, ROUTER: "SHALL receive incoming messages from its peers using a fair-queuing
    strategy" and "SHALL prefix each incoming message with a frame containing the identity
    of the originating double queue" (libzmq test_spec_router, test_fair_queue_in): five
    DEALERs named A to E; A sends twice, then each once; each message comes with its
    sender's name, and a reply to each name reaches that DEALER.
    """
    names = [b"A", b"B", b"C", b"D", b"E"]
    router = Router(zmq_factory, bound(zmq_address(transport)))
    senders = [
        peers.socket(zmq.DEALER, connect=router.lastEndpoint, routing_id=name) for name in names
    ]

    def sendThenReceive() -> list[list[list[bytes]]]:
        senders[0].send(b"M")
        senders[0].send(b"M")
        for sender in senders:
            sender.send(b"M")
        return [receive(sender) for sender in senders]

    done = peers.run(sendThenReceive)
    messages = [await router.next() for _ in range(7)]
    for name in names:
        router.sendMsg(name, b"for " + name)

    assert Counter(messages) == {(b"A", b"M"): 3} | {(name, b"M"): 1 for name in names[1:]}
    assert await within(done) == [[[b"for " + name]] for name in names]
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_router_gives_anonymous_peers_distinct_identities(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, ROUTER: "SHALL identify each double queue using a unique identity binary
    string". Two DEALERs that set no identity get distinct ones from libzmq (five
    bytes, the first zero, so never one a peer could choose), and replies find each.
    """
    router = Router(zmq_factory, bound(zmq_address("tcp")))
    first, second = (peers.socket(zmq.DEALER, connect=router.lastEndpoint) for _ in range(2))
    await within(peers.run(lambda: (first.send(b"1"), second.send(b"2"))))
    received = dict([(await router.next())[::-1] for _ in range(2)])

    assert received[b"1"] != received[b"2"]
    assert all(len(identity) == 5 and identity[0] == 0 for identity in received.values())
    router.sendMsg(received[b"1"], b"to 1")
    router.sendMsg(received[b"2"], b"to 2")
    replies = await within(peers.run(lambda: receive(first) + receive(second)))
    assert replies == [[b"to 1"], [b"to 2"]]
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_router_drops_a_message_to_an_unknown_identity_by_default(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, ROUTER: "SHALL either silently drop the message, or return an error, depending
    on configuration, if the queue does not exist" (libzmq test_router_mandatory,
    test_basic): by default a message to an unknown identity is dropped without error and
    nothing is queued; a message to a known peer still arrives, and only it.
    """
    router = Router(zmq_factory, bound(zmq_address("tcp")))

    router.sendMsg(b"UNKNOWN", b"DATA")
    router.sendMultipart(b"UNKNOWN", [b"DATA", b"MORE"])
    assert router.sendQueueLength == 0

    dealer = peers.socket(zmq.DEALER, connect=router.lastEndpoint, routing_id=b"X")
    hello = peers.run(dealer.send, b"Hello")
    assert await router.next() == (b"X", b"Hello")
    await within(hello)
    router.sendMsg(b"X", b"Hello")
    router.sendMsg(b"UNKNOWN", b"DATA")
    router.sendMsg(b"X", b"Bye")
    assert await within(peers.run(receive, dealer, 2)) == [[b"Hello"], [b"Bye"]]
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_router_mandatory_refuses_an_unknown_identity_with_unroutable_error(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, ROUTER: "... or return an error, depending on configuration, if the queue does
    not exist" (libzmq test_router_mandatory, test_basic): with ``routerMandatory``, sending
    to an unknown identity raises ZmqUnroutableError and queues nothing; once DEALER "X" has
    said hello, sending to it works.
    """
    router = MandatoryRouter(zmq_factory, bound(zmq_address("tcp")))

    with pytest.raises(ZmqUnroutableError):
        router.sendMsg(b"UNKNOWN", b"DATA")
    with pytest.raises(ZmqUnroutableError):
        router.sendMultipart(b"UNKNOWN", [b"DATA", b"MORE"])
    assert router.sendQueueLength == 0

    dealer = peers.socket(zmq.DEALER, connect=router.lastEndpoint, routing_id=b"X")
    hello = peers.run(dealer.send, b"Hello")
    assert await router.next() == (b"X", b"Hello")
    await within(hello)
    router.sendMsg(b"X", b"Hello")
    assert await within(peers.run(receive, dealer)) == [[b"Hello"]]
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_router_handover_gives_the_identity_to_the_newest_peer(
    zmq_factory, zmq_address, peers
):
    """
    ``ZMQ_ROUTER_HANDOVER`` (our ``routerHandover``): a second peer connecting with an
    identity in use takes it over, so messages to that identity go to the newcomer.
    """
    router = HandoverRouter(zmq_factory, bound(zmq_address("inproc")))
    old = peers.socket(zmq.DEALER, connect=router.lastEndpoint, routing_id=b"X")
    await within(peers.run(old.send, b"old"))
    assert await router.next() == (b"X", b"old")
    new = peers.socket(zmq.DEALER, connect=router.lastEndpoint, routing_id=b"X")
    await within(peers.run(new.send, b"new"))
    assert await router.next() == (b"X", b"new")

    router.sendMsg(b"X", b"for X")

    assert await within(peers.run(receive, new)) == [[b"for X"]]
    # inproc: had it gone to the old peer, it would be waiting there already.
    assert receiveWaiting(old) == []
    router.shutdown()


# -- DEALER ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_dealer_round_robins_over_connected_peers(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, DEALER: "SHALL route outgoing messages to available peers using a round-robin
    strategy" (libzmq test_spec_dealer, test_round_robin_out): five requests over five
    REP peers reach each once, and the five replies all come back.
    """
    names = [b"rep %d" % n for n in range(5)]
    servers = [peers.socket(zmq.REP, bind=zmq_address(transport)) for _ in names]
    dealer = Dealer(zmq_factory)
    dealer.addEndpoints(connected(server.last_endpoint.decode()) for server in servers)
    served = peers.run(serve, servers, 5, lambda index, message: [names[index]])

    for n in range(5):
        dealer.sendMultipart([b"", b"ABC %d" % n])

    replies = [await dealer.next() for _ in range(5)]
    assert sorted(replies) == [(b"", name) for name in names]
    assert [len(taken) for taken in await served] == [1] * 5
    dealer.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_dealer_fair_queues_incoming_messages(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, DEALER: "SHALL receive incoming messages from its peers using a fair-queuing
    strategy" and "SHALL deliver these to its calling application" (libzmq test_spec_dealer,
    test_fair_queue_in): one sender twice, then five at once; all seven arrive.
    """
    dealer = Dealer(zmq_factory, bound(zmq_address(transport)))
    senders = [peers.socket(zmq.DEALER, connect=dealer.lastEndpoint) for _ in range(5)]

    def send() -> None:
        senders[0].send(b"A")
        senders[0].send(b"A")
        for sender in senders:
            sender.send(b"B")

    await within(peers.run(send))
    messages = [await dealer.next() for _ in range(7)]
    assert Counter(messages) == {(b"A",): 2, (b"B",): 5}
    dealer.shutdown()


@pytest.mark.parametrize("connectionClass", [Dealer, Router], ids=["dealer", "router"])
@pytest_twisted.ensureDeferred
async def test_rfc28_fair_queuing_does_not_starve_a_peer_while_another_floods(
    zmq_factory, zmq_address, peers, connectionClass
):
    """
    RFC 28, DEALER and ROUTER: "SHALL receive incoming messages from its peers using a
    fair-queuing strategy". With 500 messages of one peer and one of another waiting when
    reading starts, the lone message is delivered among the first few, not after the flood.
    """
    flood = 500
    ours = connectionClass(zmq_factory, bound(zmq_address("inproc")))
    ours.pauseProducing()
    flooder = peers.socket(zmq.DEALER, connect=ours.lastEndpoint)
    loner = peers.socket(zmq.DEALER, connect=ours.lastEndpoint)

    def send() -> None:
        for n in range(flood):
            flooder.send_multipart([b"flood", b"%d" % n])
        loner.send_multipart([b"lone", b"0"])

    await within(peers.run(send))
    ours.resumeProducing()
    messages = [(await ours.next())[-2:] for _ in range(flood + 1)]

    assert [m for m in messages if m[0] == b"flood"] == [
        (b"flood", b"%d" % n) for n in range(flood)
    ]
    position = messages.index((b"lone", b"0"))
    # libzmq attaches and reactivates pipes at least every 100 receives; fair queuing then
    # takes the lone message next. Behind the whole flood would be position 500.
    assert position <= 110, f"the lone message waited behind {position} flood messages"
    ours.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_dealer_holds_messages_while_no_peer_is_connected(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, DEALER: "SHALL block on sending, or return a suitable error, when it has no
    available peers" and "SHALL NOT discard messages that it cannot queue" (libzmq
    test_spec_dealer, test_block_on_send_no_peers). Ours neither blocks nor raises: the
    messages wait in order in the outbound queue and leave once a peer connects.
    """
    dealer = Dealer(zmq_factory, bound(zmq_address(transport)))
    for n in range(3):
        dealer.sendMsg(b"%d" % n)
    assert dealer.sendQueueLength == 3

    peer = peers.socket(zmq.DEALER, connect=dealer.lastEndpoint)
    assert await within(peers.run(receive, peer, 3)) == [[b"0"], [b"1"], [b"2"]]
    assert dealer.sendQueueLength == 0
    dealer.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_dealer_keeps_a_queue_for_a_connection_not_yet_established(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, DEALER: "SHALL create a double queue when initiating an outgoing connection to
    a peer, and SHALL maintain the double queue whether or not the connection is
    established". Connected to an ipc address nobody listens on yet, ours hands its
    messages to libzmq (nothing waits in our queue); a peer binding there later gets them.
    """

    class QuickDealer(Dealer):
        reconnectInterval = 10  # ms: retry the connection soon after the peer binds

    address = zmq_address("ipc")
    dealer = QuickDealer(zmq_factory, connected(address))
    for n in range(3):
        dealer.sendMsg(b"%d" % n)
    assert dealer.sendQueueLength == 0

    peer = peers.socket(zmq.DEALER, bind=address)
    assert await within(peers.run(receive, peer, 3)) == [[b"0"], [b"1"], [b"2"]]
    dealer.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_dealer_does_not_filter_or_modify_messages(zmq_factory, zmq_address, peers):
    """
    RFC 28, DEALER: "SHALL not filter or modify outgoing or incoming messages in any way":
    empty frames anywhere, in either direction, pass through untouched.
    """
    router = peers.socket(zmq.ROUTER, bind=zmq_address("tcp"))
    dealer = Dealer(zmq_factory, connected(router.last_endpoint.decode()), identity=b"D")
    dealer.sendMultipart([b"", b"", b"x", b""])
    dealer.sendMsg(b"")

    def echoTwice() -> list[list[bytes]]:
        messages = receive(router, 2)
        for message in messages:
            router.send_multipart([*message, b"", b"y"])
        return messages

    done = peers.run(echoTwice)
    assert await dealer.next() == (b"", b"", b"x", b"", b"", b"y")
    assert await dealer.next() == (b"", b"", b"y")
    assert await within(done) == [[b"D", b"", b"", b"x", b""], [b"D", b""]]
    dealer.shutdown()
