"""
RFC 28/REQREP, the REP socket, as ZmqREPConnection keeps it; re-expresses the checks of
libzmq's ``tests/test_spec_rep.cpp`` that apply to it.

ZmqREPConnection is a ROUTER that keeps each request's envelope (every frame up to and
including the first empty one after the sender's identity) and sends it back with the reply.
It answers asynchronously, so "receive and then send exactly one message at a time" does not
apply; the envelope, fair-queuing and never-block rules do. Clients are plain pyzmq REQ and
DEALER sockets, our own ZmqREQConnection, and chains of libzmq proxies.
"""

from __future__ import annotations

import threading

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import gatherResults

from tests.conformance.support import (
    Answering,
    Client,
    Holding,
    Signal,
    bound,
    connected,
    receive,
    receiveWaiting,
    released,
    request,
    twoBrokers,
    within,
)
from txzmq2 import ZmqUnknownRequestError


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_rep_fair_queues_requests_from_several_clients(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, REP: "SHALL receive incoming messages from its peers using a fair-queuing
    strategy" and "SHALL deliver this message back to the originating peer" (libzmq
    test_spec_rep, test_fair_queue_in): one client twice in lock-step, then five at once;
    each gets the reply to its own request.
    """
    server = Answering(zmq_factory, bound(zmq_address(transport)))
    clients = [peers.socket(zmq.REQ, connect=server.lastEndpoint) for _ in range(5)]

    def fiveClients() -> list[list[bytes]]:
        replies = request(clients[0], [b"A"], [b"A"])
        for n, client in enumerate(clients):
            client.send_multipart([b"client %d" % n])
        return replies + [client.recv_multipart() for client in clients]

    replies = await within(peers.run(fiveClients))

    assert replies == [[b"re", b"A"]] * 2 + [[b"re", b"client %d" % n] for n in range(5)]
    assert sorted(server.requests) == [(b"A",)] * 2 + [(b"client %d" % n,) for n in range(5)]
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_rep_fair_queuing_does_not_starve_a_client_while_another_floods(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, REP: "SHALL receive incoming messages from its peers using a fair-queuing
    strategy". With 500 requests of one client and one of another waiting when the REP
    starts reading, the lone request is taken among the first few, not after the flood.
    (inproc: a request sent is already in the REP's pipe, so both wait when reading starts.)
    """
    flood = 500
    server = Answering(zmq_factory, bound(zmq_address("inproc")))
    server.pauseProducing()
    flooder = peers.socket(zmq.DEALER, connect=server.lastEndpoint)
    loner = peers.socket(zmq.REQ, connect=server.lastEndpoint)
    sent = Signal()

    def clients() -> tuple[list[list[bytes]], list[list[bytes]]]:
        for n in range(flood):
            flooder.send_multipart([b"", b"flood", b"%d" % n])
        loner.send_multipart([b"lone"])
        sent()
        return receive(loner), receive(flooder, flood)

    done = peers.run(clients)
    await within(sent.fired)
    server.resumeProducing()
    lone, flooded = await within(done)

    assert lone == [[b"re", b"lone"]]
    assert flooded == [[b"", b"re", b"flood", b"%d" % n] for n in range(flood)]
    position = server.requests.index((b"lone",))
    # libzmq attaches and reactivates pipes at least every 100 receives; fair queuing then
    # takes the lone request next. Behind the whole flood would be position 500.
    assert position <= 110, f"the lone request waited behind {position} flood requests"
    server.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_rep_returns_the_envelope_frame_for_frame(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, REP: "SHALL remove and store the address envelope, including the delimiter",
    "SHALL pass the remaining data frames to its calling application", "SHALL prepend the
    address envelope and delimiter" (libzmq test_spec_rep, test_envelope): a minimal and a
    multi-frame envelope from a pyzmq DEALER come back unchanged, and the application sees
    only the data frames. Only the first empty frame is the delimiter: later ones are data.
    """
    server = Answering(zmq_factory, bound(zmq_address(transport)))
    client = peers.socket(zmq.DEALER, connect=server.lastEndpoint)

    replies = await within(
        peers.run(
            request, client, [b"", b"A"], [b"X", b"Y", b"", b"A"], [b"X", b"", b"", b"A", b""]
        )
    )

    assert replies == [
        [b"", b"re", b"A"],
        [b"X", b"Y", b"", b"re", b"A"],
        [b"X", b"", b"re", b"", b"A", b""],
    ]
    assert server.requests == [(b"A",), (b"A",), (b"", b"A", b"")]
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_rep_returns_req_correlate_ids_to_a_relaxed_req(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, REP: "SHALL prepend the address envelope and delimiter", here with the request
    id frame a pyzmq REQ with ``ZMQ_REQ_CORRELATE`` puts before the delimiter. With
    ``ZMQ_REQ_RELAXED`` the REQ sends a second request before the first is answered; it then
    takes only the reply carrying the second id, so it gets "re:two" only if our REP sent
    each id back frame for frame.
    """
    server = Holding(zmq_factory, bound(zmq_address("tcp")))
    client = peers.socket(zmq.REQ, connect=server.lastEndpoint, req_correlate=1, req_relaxed=1)

    def twoRequests() -> list[list[bytes]]:
        client.send_multipart([b"one"])
        client.send_multipart([b"two"])
        return receive(client)

    done = peers.run(twoRequests)
    (firstId, first), (secondId, second) = await server.holding(2)
    server.reply(firstId, b"re:" + first[0])
    server.reply(secondId, b"re:" + second[0])

    assert await within(done) == [[b"re:two"]]
    assert (first, second) == ((b"one",), (b"two",))
    server.shutdown()


@pytest.mark.parametrize("clientType", [zmq.REQ, zmq.DEALER], ids=["req", "dealer"])
@pytest_twisted.ensureDeferred
async def test_rfc28_rep_keeps_the_envelope_across_two_brokers(
    zmq_factory, zmq_address, peers, clientType
):
    """
    RFC 28, REP: "SHALL deliver this message back to the originating peer" through two
    chained libzmq proxies, whose ROUTERs each add a routing frame: the reply retraces both
    hops, and a DEALER client's own routing frames come back too.
    """
    clientSide, serverSide = twoBrokers(peers, "inproc", zmq_address)
    server = Answering(zmq_factory, connected(serverSide))
    client = peers.socket(clientType, connect=clientSide)
    envelope = [] if clientType == zmq.REQ else [b"mine", b""]

    replies = await within(peers.run(request, client, [*envelope, b"a", b"b"]))

    assert replies == [[*envelope, b"re", b"a", b"b"]]
    assert server.requests == [(b"a", b"b")]
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_rep_answers_out_of_order_across_two_brokers(zmq_factory, zmq_address, peers):
    """
    RFC 28, REP: each reply goes back with its own request's envelope, even when our REP
    answers three outstanding requests of our REQ in reverse order across two brokers.
    """
    clientSide, serverSide = twoBrokers(peers, "tcp", zmq_address)
    server = Holding(zmq_factory, connected(serverSide))
    client = Client(zmq_factory, connected(clientSide))

    requests = [client.sendMsg(b"%d" % n) for n in range(3)]
    for messageId, parts in reversed(await server.holding(3)):
        server.reply(messageId, b"re", *parts)

    assert await within(gatherResults(requests)) == [[b"re", b"%d" % n] for n in range(3)]
    client.shutdown()
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_rep_drops_a_request_without_delimiter(zmq_factory, zmq_address, peers):
    """
    RFC 28, REP: a request is "an address envelope", "a delimiter, consisting of an empty
    frame", then data frames. Like libzmq's REP, ours drops a message without the delimiter
    and answers the next well-formed request.
    """
    server = Answering(zmq_factory, bound(zmq_address("inproc")))
    client = peers.socket(zmq.DEALER, connect=server.lastEndpoint)

    def malformedThenRequest() -> list[list[bytes]]:
        client.send_multipart([b"no", b"delimiter"])
        return request(client, [b"", b"real"])

    assert await within(peers.run(malformedThenRequest)) == [[b"", b"re", b"real"]]
    assert server.requests == [(b"real",)]
    server.shutdown()


@pytest.mark.parametrize("probe", [False, True], ids=["empty-request", "probe-router"])
@pytest_twisted.ensureDeferred
async def test_rfc28_rep_ignores_a_request_without_data_frames(
    zmq_factory, zmq_address, peers, probe
):
    """
    RFC 28, REP: a request carries "one or more data frames" after the delimiter. libzmq's
    REP drops a message that ends at the delimiter, such as the empty message a DEALER with
    ``ZMQ_PROBE_ROUTER`` sends on connect; the application never sees it and the client
    gets no reply to it.
    """
    server = Answering(zmq_factory, bound(zmq_address("inproc")))
    client = peers.socket(zmq.DEALER, connect=server.lastEndpoint, probe_router=int(probe))

    def emptyThenRequest() -> list[list[bytes]]:
        if not probe:
            client.send_multipart([b""])
        return request(client, [b"", b"real"])

    assert await within(peers.run(emptyThenRequest)) == [[b"", b"re", b"real"]]
    assert server.requests == [(b"real",)]
    server.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_rep_silently_drops_the_reply_to_a_client_gone_away(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, REP: "SHALL silently discard the reply, or return an error, if the originating
    peer is no longer connected", and "SHALL not block on sending". Ours discards: reply()
    returns, nothing is queued, and the next client is served.
    """
    server = Holding(zmq_factory, bound(zmq_address(transport)))
    gone = peers.socket(zmq.REQ, connect=server.lastEndpoint)
    await within(peers.run(gone.send_multipart, [b"hello"]))
    [(messageId, parts)] = await server.holding(1)
    gone.close(linger=0)

    server.reply(messageId, b"re", *parts)

    assert server.sendQueueLength == 0
    assert server.pendingRequests == 0
    stays = peers.socket(zmq.REQ, connect=server.lastEndpoint)
    done = peers.run(request, stays, [b"again"])
    [_, (nextId, nextParts)] = await server.holding(2)
    server.reply(nextId, b"re", *nextParts)
    assert await within(done) == [[b"re", b"again"]]
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_rep_sends_a_single_reply_per_request(zmq_factory, zmq_address, peers):
    """
    RFC 28, REP: "SHALL wait for a single reply message from its calling application". A
    second reply to the same request is refused with ZmqUnknownRequestError and sends
    nothing: the client's next reply is the answer to its next request.
    """
    server = Holding(zmq_factory, bound(zmq_address("inproc")))
    client = peers.socket(zmq.DEALER, connect=server.lastEndpoint)
    done = peers.run(request, client, [b"", b"one"], [b"", b"two"])
    [(firstId, _)] = await server.holding(1)

    server.reply(firstId, b"first")
    with pytest.raises(ZmqUnknownRequestError):
        server.reply(firstId, b"second")

    [_, (secondId, _)] = await server.holding(2)
    server.reply(secondId, b"third")
    assert await within(done) == [[b"", b"first"], [b"", b"third"]]
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_rep_does_not_block_on_sending_to_a_client_that_does_not_read(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, REP: "SHALL not block on sending". Its ROUTER drops replies to a client whose
    queue is full rather than hold them: with ``SNDHWM`` 1 on ours and ``RCVHWM`` 1 on the
    client, inproc, two replies wait for the client and the other three are gone; nothing
    waits in our outbound queue.
    """

    class TightServer(Holding):
        sendHighWaterMark = 1

    server = TightServer(zmq_factory, bound(zmq_address("inproc")))
    client = peers.socket(zmq.DEALER, connect=server.lastEndpoint, rcvhwm=1)
    go = threading.Event()

    def requestsThenRead() -> list[list[bytes]]:
        for n in range(5):
            client.send_multipart([b"", b"%d" % n])
        released(go)
        return receiveWaiting(client)

    done = peers.run(requestsThenRead)
    for messageId, parts in await server.holding(5):
        server.reply(messageId, b"re", *parts)
    assert server.sendQueueLength == 0
    go.set()

    assert await within(done) == [[b"", b"re", b"0"], [b"", b"re", b"1"]]
    server.shutdown()
