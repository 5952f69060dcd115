"""
The ZAP handler itself: address lists, domains, its life cycle, and what it does with
malformed requests (re-expressing libzmq's test_security_zap).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError

from tests.peers import blockingSocket, inThread
from tests.security.conftest import WAIT, assertRefused, noSecurity
from txzmq2 import ZmqConnection, ZmqEndpoint, ZmqEndpointType, ZmqError
from txzmq2.auth import CURVE_ALLOW_ANY, ZAP_ENDPOINT, ZmqAuthenticator

pytestmark = pytest.mark.timeout(30)


def nullServer(zapDomain: str | None) -> Any:
    def configure(connection: ZmqConnection) -> None:
        if zapDomain is not None:
            connection.setSocketOption(zmq.ZAP_DOMAIN, zapDomain.encode())

    return configure


@pytest_twisted.ensureDeferred
async def test_denied_address_is_refused(authenticator, startServer, connectClient):
    authenticator.deny("127.0.0.1")
    server = startServer(nullServer("global"))
    await assertRefused(server, connectClient(server.address))


@pytest_twisted.ensureDeferred
async def test_address_not_denied_is_served(authenticator, startServer, connectClient):
    authenticator.deny("192.0.2.1")
    server = startServer(nullServer("global"))
    client = connectClient(server.address)
    assert await client.sendMsg(b"hello", timeout=WAIT) == [b"anonymous", b"hello"]


@pytest_twisted.ensureDeferred
async def test_allow_list_admits_only_listed_addresses(authenticator, startServer, connectClient):
    authenticator.allow("127.0.0.2")
    server = startServer(nullServer("global"))
    port = server.address.rsplit(":", 1)[1]
    # libzmq's "source;destination" form: connect from 127.0.0.2, then from 127.0.0.1.
    await assertRefused(server, connectClient(server.address))
    listed = connectClient(f"tcp://127.0.0.2:0;127.0.0.1:{port}")
    assert await listed.sendMsg(b"hello", timeout=WAIT) == [b"anonymous", b"hello"]


@pytest_twisted.ensureDeferred
async def test_null_server_without_zap_domain_does_not_consult_the_handler(
    authenticator, startServer, connectClient
):
    # libzmq asks the ZAP handler about NULL peers only for sockets with a ZAP domain.
    authenticator.deny("127.0.0.1")
    server = startServer(nullServer(None))
    assert await connectClient(server.address).sendMsg(b"hello", timeout=WAIT) == [b"", b"hello"]


@pytest_twisted.ensureDeferred
async def test_zap_domain_class_attribute_applies(authenticator, zmq_factory, connectClient):
    from tests.security.conftest import RecordingServer

    class DomainServer(RecordingServer):
        zapDomain = "global"

    authenticator.deny("127.0.0.1")
    server = DomainServer(zmq_factory)
    failures = server.monitor(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    server.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")])
    client = connectClient(server.lastEndpoint)
    pending = client.sendMsg(b"let me in", timeout=WAIT)
    assert (await failures.waitFor(zmq.EVENT_HANDSHAKE_FAILED_AUTH, timeout=WAIT)).value == 400
    pending.cancel()
    await pending.addErrback(lambda failure: failure.trap(CancelledError))
    server.shutdown()


@pytest_twisted.ensureDeferred
async def test_address_lists_apply_to_curve_clients_too(authenticator, startServer, connectClient):
    serverKeys, clientKeys = zmq.curve_keypair(), zmq.curve_keypair()
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    authenticator.deny("127.0.0.1")
    server = startServer(lambda c: c.useCurveServer(*serverKeys))
    client = connectClient(server.address, lambda c: c.useCurveClient(*clientKeys, serverKeys[0]))
    await assertRefused(server, client)


def test_allow_and_deny_are_exclusive(zmq_factory):
    authenticator = ZmqAuthenticator(zmq_factory)
    authenticator.allow("127.0.0.1")
    with pytest.raises(ValueError):
        authenticator.deny("127.0.0.2")


def test_second_authenticator_on_one_context_is_refused(zmq_factory, authenticator):
    with pytest.raises(ZmqError, match="already has a ZAP handler"):
        ZmqAuthenticator(zmq_factory).start()


@pytest_twisted.ensureDeferred
async def test_authenticator_stops_with_its_factory(zmq_factory, authenticator):
    assert authenticator.running
    await zmq_factory.shutdown()
    assert not authenticator.running


@pytest_twisted.ensureDeferred
async def test_stopped_authenticator_can_start_again(authenticator, startServer, connectClient):
    authenticator.stop()
    assert not authenticator.running
    authenticator.start()
    authenticator.deny("127.0.0.1")
    server = startServer(nullServer("global"))
    await assertRefused(server, connectClient(server.address))


@pytest_twisted.ensureDeferred
async def test_stopped_authenticator_lets_the_next_one_bind(zmq_factory, authenticator):
    authenticator.stop()
    successor = ZmqAuthenticator(zmq_factory)
    successor.start()
    assert successor.running
    successor.stop()


# -- malformed ZAP requests -----------------------------------------------------------------
# libzmq only sends well-formed requests, but the ZAP endpoint is an inproc address anyone
# in the process can reach: a bad request must get a refusal (or nothing) and change nothing.

ZAP_REQUEST = [b"1.0", b"7", b"global", b"127.0.0.1", b"", b"NULL"]


def askZap(context: zmq.Context[Any], requests: list[list[bytes]]) -> list[list[bytes] | None]:
    """Send each request on a fresh REQ to the ZAP endpoint; its reply, or None after 500 ms."""
    replies: list[list[bytes] | None] = []
    for request in requests:
        socket = blockingSocket(context, zmq.REQ, rcvtimeo=500)
        try:
            socket.connect(ZAP_ENDPOINT)
            socket.send_multipart(request)
            try:
                replies.append(socket.recv_multipart())
            except zmq.Again:
                replies.append(None)
        finally:
            socket.close(linger=0)
    return replies


@pytest_twisted.ensureDeferred
async def test_well_formed_zap_request_is_answered(zmq_factory, authenticator):
    (reply,) = await inThread(askZap, zmq_factory.context, [ZAP_REQUEST])
    assert reply == [b"1.0", b"7", b"200", b"OK", b"anonymous", b""]


@pytest_twisted.ensureDeferred
async def test_zap_request_of_another_version_is_refused(zmq_factory, authenticator):
    (reply,) = await inThread(askZap, zmq_factory.context, [[b"2.0", *ZAP_REQUEST[1:]]])
    assert reply is not None and reply[1:3] == [b"7", b"400"]


@pytest_twisted.ensureDeferred
async def test_zap_request_with_too_few_frames_is_refused(zmq_factory, authenticator):
    (reply,) = await inThread(askZap, zmq_factory.context, [ZAP_REQUEST[:4]])
    assert reply is not None and reply[1:3] == [b"7", b"400"]


frameLists = st.lists(st.binary(max_size=24), min_size=1, max_size=9)
mechanisms = st.sampled_from([b"NULL", b"PLAIN", b"CURVE", b"GSSAPI", b"BOGUS"])
nearlyValid = st.tuples(
    st.sampled_from([b"1.0", b"0.9", b""]),
    st.binary(max_size=8),
    st.binary(max_size=8),
    st.binary(max_size=16),
    st.binary(max_size=8),
    mechanisms,
    st.lists(st.binary(max_size=40), max_size=3),
).map(lambda t: [*t[:6], *t[6]])


@pytest.mark.timeout(60)
@pytest_twisted.ensureDeferred
async def test_arbitrary_zap_requests_never_stop_the_handler(zmq_factory, authenticator):
    authenticator.configurePlain(passwords={"admin": "secret"})
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    requests: list[list[bytes]] = []

    @settings(
        max_examples=60,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.one_of(frameLists, nearlyValid))
    def collect(request: list[bytes]) -> None:
        requests.append(request)

    collect()
    replies = await inThread(askZap, zmq_factory.context, [*requests, ZAP_REQUEST])
    for request, reply in zip(requests, replies[:-1], strict=True):
        if reply is not None:
            # Every answer is a ZAP reply to that request; only well-formed ones can pass.
            assert reply[0] == b"1.0" and len(reply) == 6
            assert reply[1] == request[1]
            if reply[2] == b"200":
                assert request[0] == b"1.0" and request[5] in (b"NULL", b"PLAIN", b"CURVE")
    assert replies[-1] == [b"1.0", b"7", b"200", b"OK", b"anonymous", b""]
    assert authenticator.running


@pytest_twisted.ensureDeferred
async def test_null_client_is_served_under_any_handler_by_default(
    authenticator, startServer, connectClient
):
    server = startServer(nullServer("global"))
    assert await connectClient(server.address, noSecurity).sendMsg(b"hi", timeout=WAIT) == [
        b"anonymous",
        b"hi",
    ]


@pytest_twisted.ensureDeferred
async def test_decision_still_pending_at_shutdown_is_cancelled(
    zmq_factory, authenticator, startServer, connectClient
):
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    asked: Deferred[None] = Deferred()
    forever: Deferred[bool] = Deferred()

    def decide(domain: str, key: bytes) -> Deferred[bool]:
        reactor.callLater(0, asked.callback, None)  # once the handler holds the decision
        return forever

    serverKeys, clientKeys = zmq.curve_keypair(), zmq.curve_keypair()
    authenticator.configureCurveCallback(decide)
    server = startServer(lambda c: c.useCurveServer(*serverKeys))
    client = connectClient(server.address, lambda c: c.useCurveClient(*clientKeys, serverKeys[0]))
    pending = client.sendMsg(b"let me in", timeout=WAIT)
    await asked
    timeouts = [call for call in reactor.getDelayedCalls() if call.active()]
    authenticator.stop()
    assert forever.called  # cancelled with its handler
    # The decision's timeout went with it: nothing of the ZAP handler is left scheduled.
    assert [call for call in reactor.getDelayedCalls() if call.active()] < timeouts
    pending.cancel()
    await pending.addErrback(lambda failure: failure.trap(CancelledError))
