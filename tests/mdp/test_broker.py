"""
MajordomoBroker against peers that are not ours: reference clients (REQ) and workers
(DEALER) written from the RFC text, and raw DEALER sockets speaking frames the test writes by
hand, for the protocol violations a reference peer would never commit.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import gatherResults

from tests.mdp.conftest import INTERVAL, LIVENESS, saying, until
from tests.mdp.reference import (
    DISCONNECT,
    HEARTBEAT,
    MDPC01,
    MDPW01,
    READY,
    REPLY,
    REQUEST,
    RfcWorker,
    rfcRequest,
)
from tests.peers import inThread
from tests.stalls import stallReactor

pytestmark = pytest.mark.timeout(30)


def ask(context: Any, address: str, service: bytes, *body: bytes) -> Any:
    """A reference client's request, in a thread; a Deferred of the reply body."""
    return inThread(rfcRequest, context, address, service, *body)


def ready(service: bytes = b"echo") -> list[bytes]:
    return [b"", MDPW01, READY, service]


async def registered(broker: Any, service: bytes, count: int = 1) -> None:
    await until(lambda: broker.services.get(service, 0) == count)


# -- requests and replies --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_request_of_an_rfc_client_reaches_an_rfc_worker_and_its_reply_comes_back(
    mdp, runPeer, peerContext
):
    broker = mdp.broker()
    worker = RfcWorker(peerContext, broker.lastEndpoint, b"upper", lambda body: [body[0].upper()])
    runPeer(worker)
    reply = await ask(peerContext, broker.lastEndpoint, b"upper", b"hello", b"world")
    assert reply == [b"HELLO"]
    assert worker.bodies == [[b"hello", b"world"]]


@pytest_twisted.ensureDeferred
async def test_replies_go_to_the_client_that_asked(mdp, runPeer, peerContext):
    broker = mdp.broker()
    for _ in range(2):
        runPeer(RfcWorker(peerContext, broker.lastEndpoint, b"echo"))
    bodies = [b"client %d" % number for number in range(6)]
    replies = await gatherResults(
        [ask(peerContext, broker.lastEndpoint, b"echo", body) for body in bodies]
    )
    assert replies == [[body] for body in bodies]


@pytest_twisted.ensureDeferred
async def test_requests_go_to_the_worker_idle_the_longest(mdp, runPeer, peerContext):
    broker = mdp.broker()
    first = RfcWorker(peerContext, broker.lastEndpoint, b"echo")
    runPeer(first)
    await registered(broker, b"echo")
    second = RfcWorker(peerContext, broker.lastEndpoint, b"echo")
    runPeer(second)
    await registered(broker, b"echo", 2)
    for number in range(4):
        await ask(peerContext, broker.lastEndpoint, b"echo", b"%d" % number)
    assert first.bodies == [[b"0"], [b"2"]]
    assert second.bodies == [[b"1"], [b"3"]]


@pytest_twisted.ensureDeferred
async def test_request_meeting_a_vanished_worker_waits_for_the_next_one(mdp, runPeer, peerContext):
    # No heartbeat during the test: the request is what finds the worker gone.
    broker = mdp.broker(heartbeatInterval=10.0)
    disconnected = broker.connection.monitor(zmq.EVENT_DISCONNECTED)
    vanishing = mdp.dealer(broker.lastEndpoint)
    vanishing.send(ready())
    await registered(broker, b"echo")
    vanishing.shutdown()  # no DISCONNECT: its process died, say
    await disconnected.waitFor(zmq.EVENT_DISCONNECTED, timeout=5)
    reply = ask(peerContext, broker.lastEndpoint, b"echo", b"kept")
    await until(lambda: broker.queuedRequests == 1 and not broker.services)
    runPeer(RfcWorker(peerContext, broker.lastEndpoint, b"echo", interval=10.0))
    assert await reply == [b"kept"]
    assert broker.queuedRequests == 0


# -- requests without a worker ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_request_for_a_service_without_workers_is_held_until_one_registers(
    mdp, runPeer, peerContext
):
    broker = mdp.broker()
    reply = ask(peerContext, broker.lastEndpoint, b"later", b"waited")
    await until(lambda: broker.queuedRequests == 1)
    runPeer(RfcWorker(peerContext, broker.lastEndpoint, b"later"))
    assert await reply == [b"waited"]
    assert broker.queuedRequests == 0


@pytest_twisted.ensureDeferred
async def test_held_request_is_dropped_and_logged_after_requestExpiry(mdp, logged):
    broker = mdp.broker(requestExpiry=2 * INTERVAL)
    client = mdp.dealer(broker.lastEndpoint)
    client.send([b"", MDPC01, b"nobody", b"hello"])
    await until(lambda: broker.queuedRequests == 1)
    await until(lambda: broker.queuedRequests == 0)
    [event] = [e for e in logged if "for a worker; dropped" in (e.get("log_format") or "")]
    assert event["service"] == b"nobody"


@pytest_twisted.ensureDeferred
async def test_requests_beyond_maxQueuedRequests_are_dropped_and_logged(mdp, logged):
    broker = mdp.broker(maxQueuedRequests=2)
    client = mdp.dealer(broker.lastEndpoint)
    for number in range(3):
        client.send([b"", MDPC01, b"nobody", b"%d" % number])

    def dropped() -> list[Any]:
        return [e for e in logged if "dropped one for" in (e.get("log_format") or "")]

    await until(lambda: dropped())
    assert broker.queuedRequests == 2
    assert len(dropped()) == 1


@pytest_twisted.ensureDeferred
async def test_full_queues_still_let_a_request_through_to_an_idle_worker(
    mdp, runPeer, peerContext
):
    broker = mdp.broker(maxQueuedRequests=1)
    runPeer(RfcWorker(peerContext, broker.lastEndpoint, b"echo"))
    await registered(broker, b"echo")
    mdp.dealer(broker.lastEndpoint).send([b"", MDPC01, b"nobody", b"waits"])
    await until(lambda: broker.queuedRequests == 1)
    assert await ask(peerContext, broker.lastEndpoint, b"echo", b"served") == [b"served"]


# -- 8/MMI -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_mmi_service_answers_200_for_a_service_with_a_worker_and_404_otherwise(
    mdp, runPeer, peerContext
):
    broker = mdp.broker()
    runPeer(RfcWorker(peerContext, broker.lastEndpoint, b"echo"))
    await registered(broker, b"echo")
    found = await ask(peerContext, broker.lastEndpoint, b"mmi.service", b"echo")
    missing = await ask(peerContext, broker.lastEndpoint, b"mmi.service", b"nope")
    assert (found, missing) == ([b"200"], [b"404"])


@pytest_twisted.ensureDeferred
async def test_other_mmi_services_answer_501(mdp, peerContext):
    broker = mdp.broker()
    assert await ask(peerContext, broker.lastEndpoint, b"mmi.stats", b"x") == [b"501"]


# -- heartbeats ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_broker_heartbeats_an_idle_worker_every_interval(mdp, runPeer, peerContext):
    broker = mdp.broker()
    worker = RfcWorker(peerContext, broker.lastEndpoint, b"echo")
    runPeer(worker)
    await registered(broker, b"echo")
    # Heard often enough that the worker never takes the broker for gone...
    await until(lambda: worker.commands.count(HEARTBEAT) >= 2 * LIVENESS)
    assert set(worker.commands) == {HEARTBEAT}
    # ...and the broker still counts the heartbeating worker as alive.
    assert broker.services == {b"echo": 1}


@pytest_twisted.ensureDeferred
async def test_worker_silent_for_liveness_intervals_is_forgotten(mdp, logged):
    from twisted.internet import reactor

    broker = mdp.broker()
    silent = mdp.dealer(broker.lastEndpoint)
    sentAt = reactor.seconds()
    silent.send(ready())
    await registered(broker, b"echo")
    await until(lambda: not broker.services)
    assert reactor.seconds() - sentAt >= LIVENESS * INTERVAL
    assert [e["why"] for e in logged if "why" in e] == ["expired: no heartbeat"]


@pytest_twisted.ensureDeferred
async def test_reactor_stall_does_not_make_the_broker_forget_heartbeating_workers(
    mdp, runPeer, peerContext, logged
):
    broker = mdp.broker()
    # Each heartbeats every interval throughout, and is patient with the broker's silence
    # while its reactor is held (that is not what this test is about).
    workers = [
        RfcWorker(peerContext, broker.lastEndpoint, b"echo", liveness=100 * LIVENESS)
        for _ in range(3)
    ]
    for worker in workers:
        runPeer(worker)
    await registered(broker, b"echo", 3)
    # Only one message per read pass: what the workers sent during the stall takes several
    # passes to read, and no verdict may come before it is all read.
    broker.connection.readBatchSize = 1
    # Three times as long as the broker waits for a silent worker; the workers' heartbeats
    # of that time wait in the broker's socket.
    await stallReactor(3 * LIVENESS * INTERVAL)
    assert broker.services == {b"echo": 3}
    replies = await gatherResults(
        [ask(peerContext, broker.lastEndpoint, b"echo", b"%d" % n) for n in range(3)]
    )
    assert sorted(replies) == [[b"0"], [b"1"], [b"2"]]
    assert not saying(logged, "forgot worker")
    assert all(DISCONNECT not in worker.commands for worker in workers)


@pytest_twisted.ensureDeferred
async def test_worker_saying_DISCONNECT_is_forgotten_and_sent_nothing_more(mdp):
    broker = mdp.broker()
    worker = mdp.dealer(broker.lastEndpoint)
    worker.send(ready())
    assert await worker.inbox.next() == [b"", MDPW01, HEARTBEAT]  # greeted
    worker.send([b"", MDPW01, DISCONNECT])
    await until(lambda: not broker.services)
    # A request the worker would have got, were it still listed, waits instead.
    client = mdp.dealer(broker.lastEndpoint)
    client.send([b"", MDPC01, b"echo", b"hello"])
    await until(lambda: broker.queuedRequests == 1)
    assert worker.inbox.messages == [[b"", MDPW01, HEARTBEAT]]


# -- protocol violations ---------------------------------------------------------------------

VIOLATIONS = {
    "REPLY before READY": [[b"", MDPW01, REPLY, b"client", b"", b"body"]],
    "HEARTBEAT before READY": [[b"", MDPW01, HEARTBEAT]],
    "a second READY": [ready(), ready()],
    "REPLY while idle": [ready(), [b"", MDPW01, REPLY, b"client", b"", b"body"]],
    "REQUEST from a worker": [ready(), [b"", MDPW01, REQUEST, b"client", b"", b"body"]],
    "an unknown command": [ready(), [b"", MDPW01, b"\x06"]],
    "a READY without service": [[b"", MDPW01, READY]],
    "a HEARTBEAT with a body": [ready(), [b"", MDPW01, HEARTBEAT, b"extra"]],
    "a REPLY without delimiter": [ready(), [b"", MDPW01, REPLY, b"client", b"x", b"body"]],
    "READY for an mmi service": [ready(b"mmi.service")],
}


@pytest.mark.parametrize("violation", sorted(VIOLATIONS))
@pytest_twisted.ensureDeferred
async def test_worker_breaking_the_protocol_gets_DISCONNECT_and_is_forgotten(
    mdp, logged, violation
):
    broker = mdp.broker()
    worker = mdp.dealer(broker.lastEndpoint)
    for message in VIOLATIONS[violation]:
        worker.send(message)
    while (message := await worker.inbox.next()) != [b"", MDPW01, DISCONNECT]:
        assert message == [b"", MDPW01, HEARTBEAT]
    assert broker.services == {}
    assert len([e for e in logged if "sent DISCONNECT" in (e.get("log_format") or "")]) == 1


@pytest_twisted.ensureDeferred
async def test_reply_for_another_client_than_the_request_came_from_gets_DISCONNECT(mdp):
    broker = mdp.broker()
    worker = mdp.dealer(broker.lastEndpoint)
    worker.send(ready())
    await worker.inbox.next()  # the greeting heartbeat
    client = mdp.dealer(broker.lastEndpoint)
    client.send([b"", MDPC01, b"echo", b"hello"])
    request = await worker.inbox.next()
    assert request[:3] == [b"", MDPW01, REQUEST] and request[4:] == [b"", b"hello"]
    worker.send([b"", MDPW01, REPLY, request[3] + b"-not", b"", b"hello"])
    assert await worker.inbox.next() == [b"", MDPW01, DISCONNECT]
    assert broker.services == {}


# -- malformed client messages ---------------------------------------------------------------

MALFORMED = [
    [b"no empty frame", MDPC01, b"echo", b"body"],
    [b"", b"MDPX01", b"echo", b"body"],
    [b"", MDPC01, b"echo"],  # a REQUEST has a body frame
    [b"", MDPC01, b"", b"body"],  # and a service name
    [b""],
]


@pytest_twisted.ensureDeferred
async def test_malformed_client_messages_are_dropped_and_logged_and_the_broker_serves_on(
    mdp, runPeer, peerContext, logged
):
    broker = mdp.broker()
    runPeer(RfcWorker(peerContext, broker.lastEndpoint, b"echo"))
    peer = mdp.dealer(broker.lastEndpoint)
    for message in MALFORMED:
        peer.send(message)
    assert await ask(peerContext, broker.lastEndpoint, b"echo", b"still here") == [b"still here"]
    drops = [e for e in logged if "dropped a message" in (e.get("log_format") or "")]
    assert [e["frames"] for e in drops] == MALFORMED
    assert peer.inbox.messages == []


# -- shutdown --------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_shutdown_sends_every_worker_DISCONNECT(mdp, runPeer, peerContext):
    broker = mdp.broker()
    workers = [RfcWorker(peerContext, broker.lastEndpoint, b"echo") for _ in range(2)]
    ended = gatherResults([runPeer(worker) for worker in workers])
    await registered(broker, b"echo", 2)
    broker.shutdown()
    assert await ended == ["DISCONNECT", "DISCONNECT"]


def test_broker_bounds_frame_size_by_default_and_on_request(mdp):
    assert mdp.broker().connection.socket.get(zmq.MAXMSGSIZE) == 1 << 20
    assert mdp.broker(maxMessageSize=4096).connection.socket.get(zmq.MAXMSGSIZE) == 4096
    assert mdp.broker(maxMessageSize=None).connection.socket.get(zmq.MAXMSGSIZE) == -1
