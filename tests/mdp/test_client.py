"""
MajordomoClient against brokers that are not ours: a raw ROUTER the test answers frame by
frame, and the reference broker with a reference worker, written from the RFC text. Every
request's Deferred fires exactly once: reply, timeout, cancel or shutdown.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError, gatherResults

from tests.mdp.conftest import INTERVAL, LIVENESS, saying, until
from tests.mdp.reference import MDPC01, RfcBroker, RfcWorker
from txzmq2 import ZmqConnectionClosed, ZmqRequestTimeoutError

pytestmark = pytest.mark.timeout(30)


def reply(clientId: bytes, service: bytes, *body: bytes) -> list[bytes]:
    return [clientId, b"", MDPC01, service, *body]


@pytest_twisted.ensureDeferred
async def test_request_goes_out_as_the_rfc_frames_and_fires_with_the_reply_body(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    answer = client.request("echo", b"a", b"b")
    clientId, *frames = await router.inbox.next()
    assert frames == [b"", MDPC01, b"echo", b"a", b"b"]
    router.send(reply(clientId, b"echo", b"c", b"d"))
    assert await answer == [b"c", b"d"]
    assert client.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_outstanding_requests_answered_in_reverse_order_reach_their_own_deferreds(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    answers = [client.request(b"echo", b"%d" % number) for number in range(10)]
    requests = [await router.inbox.next() for _ in answers]
    assert len({clientId for clientId, *_ in requests}) == 10  # a socket each
    for clientId, _, _, _, number in reversed(requests):
        router.send(reply(clientId, b"echo", b"reply to " + number))
    assert await gatherResults(answers) == [[b"reply to %d" % n] for n in range(10)]


@pytest_twisted.ensureDeferred
async def test_an_answered_requests_socket_serves_the_next_request(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    identities = []
    for number in range(3):
        answer = client.request(b"echo", b"%d" % number)
        clientId, *_ = await router.inbox.next()
        identities.append(clientId)
        router.send(reply(clientId, b"echo", b"ok"))
        await answer
    assert len(set(identities)) == 1


@pytest_twisted.ensureDeferred
async def test_client_talks_to_an_rfc_worker_through_an_rfc_broker(mdp, runPeer, peerContext):
    broker = RfcBroker(peerContext, interval=INTERVAL, liveness=LIVENESS)
    runPeer(broker)
    runPeer(RfcWorker(peerContext, broker.address, b"upper", lambda body: [body[0].upper()]))
    client = mdp.client(broker.address)
    answers = [client.request(b"upper", b"word %d" % number, timeout=5) for number in range(5)]
    assert await gatherResults(answers) == [[b"WORD %d" % number] for number in range(5)]


# -- timeouts and retries --------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_unanswered_request_fails_with_ZmqRequestTimeoutError(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    with pytest.raises(ZmqRequestTimeoutError):
        await client.request(b"echo", b"x", timeout=INTERVAL)
    assert client.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_retry_goes_out_on_a_fresh_socket_and_its_reply_answers(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    answer = client.request(b"echo", b"x", timeout=INTERVAL, retries=2)
    firstTry, *frames = await router.inbox.next()
    secondTry, *again = await router.inbox.next()
    assert secondTry != firstTry and again == frames
    router.send(reply(secondTry, b"echo", b"second"))
    assert await answer == [b"second"]


@pytest_twisted.ensureDeferred
async def test_late_reply_to_a_timed_out_request_never_answers_a_later_one(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    with pytest.raises(ZmqRequestTimeoutError):
        await client.request(b"echo", b"first", timeout=INTERVAL)
    firstId, *_ = await router.inbox.next()
    answer = client.request(b"echo", b"second")
    secondId, *_ = await router.inbox.next()
    router.send(reply(firstId, b"echo", b"late answer to first"))
    router.send(reply(secondId, b"echo", b"answer to second"))
    assert await answer == [b"answer to second"]


@pytest_twisted.ensureDeferred
async def test_cancelled_request_fails_with_CancelledError_and_its_socket_is_not_reused(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    cancelled = client.request(b"echo", b"x", timeout=5)
    cancelledId, *_ = await router.inbox.next()
    cancelled.cancel()
    with pytest.raises(CancelledError):
        await cancelled
    answer = client.request(b"echo", b"y")
    nextId, *_ = await router.inbox.next()
    assert nextId != cancelledId
    router.send(reply(nextId, b"echo", b"ok"))
    assert await answer == [b"ok"]
    assert client.pendingRequests == 0


# -- replies that are not ours ---------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_reply_naming_another_service_or_malformed_is_dropped_and_logged(mdp, logged):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    answer = client.request(b"echo", b"x")
    clientId, *_ = await router.inbox.next()
    router.send(reply(clientId, b"other", b"wrong"))
    router.send([clientId, b"", b"MDPC02", b"echo", b"wrong"])
    router.send(reply(clientId, b"echo", b"right"))
    assert await answer == [b"right"]
    assert len(saying(logged, "dropped a reply from {service!r}")) == 1
    assert len(saying(logged, "dropped a malformed reply")) == 1


# -- shutdown --------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_shutdown_fails_pending_requests_with_ZmqConnectionClosed(mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    answers = [client.request(b"echo", b"%d" % number, timeout=5) for number in range(3)]
    client.shutdown()
    for answer in answers:
        with pytest.raises(ZmqConnectionClosed):
            await answer
    with pytest.raises(ZmqConnectionClosed):
        await client.request(b"echo", b"after")
    assert client.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_factory_shutdown_fails_pending_requests_with_ZmqConnectionClosed(zmq_factory, mdp):
    router = mdp.router()
    client = mdp.client(router.lastEndpoint)
    answer = client.request(b"echo", b"x", timeout=5)
    await router.inbox.next()
    await zmq_factory.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        await answer
    with pytest.raises(ZmqConnectionClosed):
        await client.request(b"echo", b"after")


@pytest.mark.parametrize(
    ("frames", "options", "error"),
    [
        ((), {}, ValueError),
        ((b"x",), {"retries": 1}, ValueError),
        ((b"x",), {"timeout": -1}, ValueError),
        ((b"x",), {"timeout": 1, "retries": -1}, ValueError),
        (("text",), {}, TypeError),
    ],
    ids=["no frames", "retries without timeout", "negative timeout", "negative retries", "str"],
)
def test_invalid_request_raises_at_once(mdp, frames, options, error):
    client = mdp.client("tcp://127.0.0.1:1")
    with pytest.raises(error):
        client.request(b"echo", *frames, **options)
    with pytest.raises(ValueError):
        client.request(b"", b"x")
    assert client.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_request_held_for_a_missing_worker_ends_at_its_timeout(mdp):
    broker = mdp.broker()
    client = mdp.client(broker.lastEndpoint)
    with pytest.raises(ZmqRequestTimeoutError):
        await client.request(b"nobody", b"x", timeout=INTERVAL)
    await until(lambda: broker.queuedRequests == 1)  # the broker still holds it
