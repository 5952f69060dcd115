"""
RFC 28/REQREP, the REQ socket, as ZmqREQConnection keeps it; re-expresses the checks of
libzmq's ``tests/test_spec_req.cpp`` that apply to it.

ZmqREQConnection is a DEALER sending each request as ``[requestId, b"", *parts]`` and
matching replies by id, so many requests can be outstanding. Of the RFC's REQ rules, these
apply unchanged: the delimiter before the data frames, round-robin over connected servers,
holding (not discarding) requests while no server is connected. "Accept a reply only from the
last peer sent a request" becomes "accept a reply only to an outstanding request": a DEALER
cannot tell peers apart, and a retried request may be answered by any server that got it.

The servers are plain pyzmq REP and ROUTER sockets, bound before our REQ connects: libzmq
round-robins only over attached pipes, and a connecting socket attaches its pipe at
``connect`` time (``ZMQ_IMMEDIATE`` off), so all servers take part from the first request.
"""

from __future__ import annotations

from collections import Counter

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import gatherResults

from tests.conformance.support import (
    Client,
    bound,
    connected,
    dataOf,
    envelopeOf,
    loggedFailures,
    serve,
    twoBrokers,
    within,
)


def answerAs(names: list[bytes], socketType: int):
    """A ``serve`` answer: the data frames back, behind the name of the socket that took them."""

    def answer(index: int, message: list[bytes]) -> list[bytes]:
        if socketType == zmq.REP:
            return [names[index], *message]
        return [*envelopeOf(message), names[index], *dataOf(message)]

    return answer


@pytest.mark.parametrize("serverType", [zmq.REP, zmq.ROUTER], ids=["rep", "router"])
@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_req_round_robins_requests_over_connected_servers(
    zmq_factory, zmq_address, peers, transport, serverType
):
    """
    RFC 28, REQ: "SHALL route outgoing messages to connected peers using a round-robin
    strategy" (libzmq test_spec_req, test_round_robin_out): six requests over three servers
    reach each server twice.
    """
    names = [b"s0", b"s1", b"s2"]
    servers = [peers.socket(serverType, bind=zmq_address(transport)) for _ in names]
    client = Client(zmq_factory)
    client.addEndpoints(connected(server.last_endpoint.decode()) for server in servers)
    served = peers.run(serve, servers, 6, answerAs(names, serverType))

    replies = await within(gatherResults([client.sendMsg(b"%d" % n) for n in range(6)]))

    assert Counter(reply[0] for reply in replies) == dict.fromkeys(names, 2)
    assert sorted(reply[1] for reply in replies) == [b"%d" % n for n in range(6)]
    taken = await served
    assert [len(messages) for messages in taken] == [2, 2, 2]
    client.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_req_request_is_envelope_then_delimiter_then_data_frames(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, REQ: a request is "a delimiter, consisting of an empty frame" then "one or more
    data frames"; ours puts its request id before the delimiter, as libzmq's REQ does with
    ``ZMQ_REQ_CORRELATE`` (libzmq test_spec_req, test_req_message_format). A one-frame reply
    behind the same envelope answers a two-frame request.
    """
    server = peers.socket(zmq.ROUTER, bind=zmq_address(transport))
    client = Client(zmq_factory, connected(server.last_endpoint.decode()), identity=b"client")

    def answerOnce(message: list[bytes]) -> list[bytes]:
        server.send_multipart([*envelopeOf(message), b"GHI"])
        return message

    served = peers.run(lambda: answerOnce(server.recv_multipart()))
    reply = await within(client.sendMsg(b"ABC", b"DEF"))

    assert reply == [b"GHI"]
    identity, requestId, delimiter, *data = await served
    assert (identity, delimiter, data) == (b"client", b"", [b"ABC", b"DEF"])
    assert requestId
    client.shutdown()


@pytest.mark.parametrize("transport", ["inproc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_rfc28_req_holds_requests_while_no_server_is_connected(
    zmq_factory, zmq_address, peers, transport
):
    """
    RFC 28, REQ: "SHALL block on sending, or return a suitable error, when it has no
    connected peers" and "SHALL NOT discard messages that it cannot send" (libzmq
    test_spec_req, test_block_on_send_no_peers). Ours neither blocks nor raises: the
    requests wait in order in the outbound queue and leave once a server connects.
    """
    client = Client(zmq_factory, bound(zmq_address(transport)))
    first, second = client.sendMsg(b"one"), client.sendMsg(b"two")
    assert client.sendQueueLength == 2
    assert client.pendingRequests == 2

    server = peers.socket(zmq.REP, connect=client.lastEndpoint)
    served = peers.run(serve, [server], 2, lambda index, message: [b"re", *message])

    assert await within(first) == [b"re", b"one"]
    assert await within(second) == [b"re", b"two"]
    assert await served == [[[b"one"], [b"two"]]]
    assert client.sendQueueLength == 0
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_req_discards_replies_to_no_outstanding_request(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, REQ: "SHALL discard silently any messages received from other peers" (libzmq
    test_spec_req, test_req_only_listens_to_current_peer), as it applies to a REQ with many
    requests outstanding: every server sends replies to unknown ids and malformed replies
    before the right one; those are dropped without a logged error, and each request gets
    its own reply.
    """
    servers = [peers.socket(zmq.ROUTER, bind=zmq_address("tcp")) for _ in range(3)]
    client = Client(zmq_factory, identity=b"A")
    client.addEndpoints(connected(server.last_endpoint.decode()) for server in servers)

    def answerAfterNoise(index: int, message: list[bytes]) -> None:
        socket = servers[index]
        identity, requestId = message[0], message[1]
        for noise in (
            [identity, b"no-such-request", b"", b"WRONG"],
            [identity, b"", b"WRONG"],
            [identity, b"WRONG"],
            [identity, requestId, b"WRONG: no delimiter"],
        ):
            socket.send_multipart(noise)
        # Same pipe, so it comes after the noise: once it is in, the noise was handled.
        socket.send_multipart([identity, requestId, b"", b"GOOD %d" % index])

    served = peers.run(serve, servers, 3, answerAfterNoise)
    with loggedFailures() as failures:
        replies = await within(gatherResults([client.sendMsg(b"%d" % n) for n in range(3)]))
        await served

    assert replies == [[b"GOOD 0"], [b"GOOD 1"], [b"GOOD 2"]]
    assert failures == []
    assert client.pendingRequests == 0
    client.shutdown()


@pytest.mark.parametrize("serverType", [zmq.REP, zmq.ROUTER], ids=["rep", "router"])
@pytest_twisted.ensureDeferred
async def test_rfc28_req_reaches_a_server_across_two_brokers(
    zmq_factory, zmq_address, peers, serverType
):
    """
    RFC 28, REP and ROUTER: each ROUTER on the way prefixes the request with the identity of
    the queue it came in on, and routes the reply back by it; a REP server strips and
    restores the whole envelope. Over two chained libzmq proxies, a pyzmq ROUTER server sees
    three identity frames (each broker's and its own) before our request id and the
    delimiter, and our REQ gets the reply.
    """
    clientSide, serverSide = twoBrokers(peers, "inproc", zmq_address)
    server = peers.socket(serverType, connect=serverSide)
    client = Client(zmq_factory, connected(clientSide))
    served = peers.run(serve, [server], 1, answerAs([b"server"], serverType))

    assert await within(client.sendMsg(b"hello", b"world")) == [b"server", b"hello", b"world"]
    [[request]] = await served
    if serverType == zmq.ROUTER:
        *routing, requestId, delimiter = envelopeOf(request)
        assert len(routing) == 3
        assert delimiter == b"" and requestId
        assert dataOf(request) == [b"hello", b"world"]
    else:
        assert request == [b"hello", b"world"]
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_rfc28_req_does_not_discard_requests_beyond_the_high_water_mark(
    zmq_factory, zmq_address, peers
):
    """
    RFC 28, REQ: "SHALL NOT discard messages that it cannot send to a connected peer". With
    ``SNDHWM`` and the server's ``RCVHWM`` at 1, libzmq takes two requests over inproc (libzmq
    test_hwm); the rest wait in our outbound queue, and every request is answered in order.
    """

    class TightClient(Client):
        sendHighWaterMark = 1

    server = peers.socket(zmq.REP, bind=zmq_address("inproc"), rcvhwm=1)
    client = TightClient(zmq_factory, connected(server.last_endpoint.decode()))
    requests = [client.sendMsg(b"%d" % n) for n in range(10)]
    assert client.sendQueueLength == 8

    served = peers.run(serve, [server], 10, lambda index, message: [b"re", *message])

    assert await within(gatherResults(requests)) == [[b"re", b"%d" % n] for n in range(10)]
    assert await served == [[[b"%d" % n] for n in range(10)]]
    assert client.sendQueueLength == 0
    client.shutdown()
