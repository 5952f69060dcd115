"""
CURVE: encrypted connections whose clients the ZAP handler admits by public key
(re-expressing libzmq's test_security_curve).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, fail
from twisted.protocols import portforward

from tests.security.conftest import WAIT, KeyPair, assertRefused, keyPair, noSecurity
from txzmq2 import (
    ZmqConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPubConnection,
    ZmqSubConnection,
)
from txzmq2.auth import CURVE_ALLOW_ANY, ZmqAuthenticator, createCertificates, loadCertificate
from txzmq2.testing import waitForSubscription

pytestmark = [
    pytest.mark.skipif(not zmq.has("curve"), reason="libzmq was built without CURVE"),
    pytest.mark.timeout(30),
]

SERVER = keyPair()


def curveServer(keys: KeyPair = SERVER) -> Any:
    def configure(connection: ZmqConnection) -> None:
        connection.useCurveServer(keys.public, keys.secret)

    return configure


def curveClient(keys: KeyPair, serverKey: bytes = SERVER.public) -> Any:
    def configure(connection: ZmqConnection) -> None:
        connection.useCurveClient(keys.public, keys.secret, serverKey)

    return configure


async def assertServes(server: Any, client: Any) -> str:
    """The client gets its request answered; returns the User-Id the server saw."""
    userId, body = await client.sendMsg(b"hello", timeout=WAIT)
    assert body == b"hello"
    return userId.decode()


@pytest_twisted.ensureDeferred
async def test_any_curve_client_is_served_when_any_key_is_allowed(
    authenticator, startServer, connectClient
):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    server = startServer(curveServer())
    client = keyPair()
    userId = await assertServes(server, connectClient(server.address, curveClient(client)))
    assert userId == client.public.decode()  # the default User-Id: the key in Z85


@pytest_twisted.ensureDeferred
async def test_client_whose_certificate_is_in_the_directory_is_served(
    authenticator, startServer, connectClient, tmp_path: Path
):
    publicFile, secretFile = createCertificates(tmp_path / "clients", "alice")
    aliceKeys = KeyPair(*loadCertificate(secretFile))  # type: ignore[arg-type]
    authenticator.configureCurve(location=publicFile.parent)
    server = startServer(curveServer())
    userId = await assertServes(server, connectClient(server.address, curveClient(aliceKeys)))
    assert userId == aliceKeys.public.decode()


@pytest_twisted.ensureDeferred
async def test_client_with_unknown_key_is_refused(
    authenticator, startServer, connectClient, tmp_path: Path
):
    createCertificates(tmp_path / "clients", "alice")
    authenticator.configureCurve(location=tmp_path / "clients")
    server = startServer(curveServer())
    stranger = connectClient(server.address, curveClient(keyPair()))
    await assertRefused(server, stranger, zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)


@pytest_twisted.ensureDeferred
async def test_refused_client_learns_of_the_refusal(authenticator, startServer, connectClient):
    authenticator.configureCurveCallback(lambda domain, key: False)
    server = startServer(curveServer())
    client = connectClient(server.address, curveClient(keyPair()))
    refusal = client.monitor(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    pending = client.sendMsg(b"let me in", timeout=WAIT)
    event = await refusal.waitFor(zmq.EVENT_HANDSHAKE_FAILED_AUTH, timeout=WAIT)
    assert event.value == 400  # the ZAP status code, sent back in CURVE's ERROR command
    pending.cancel()
    await pending.addErrback(lambda _: None)


@pytest_twisted.ensureDeferred
async def test_null_client_is_refused_by_curve_server(authenticator, startServer, connectClient):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    server = startServer(curveServer())
    nullClient = connectClient(server.address, noSecurity)
    await assertRefused(
        server,
        nullClient,
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH,
    )


@pytest_twisted.ensureDeferred
async def test_plain_client_is_refused_by_curve_server(authenticator, startServer, connectClient):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    authenticator.configurePlain(passwords={"admin": "password"})
    server = startServer(curveServer())
    plainClient = connectClient(server.address, lambda c: c.usePlainClient("admin", "password"))
    await assertRefused(
        server,
        plainClient,
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH,
    )


@pytest_twisted.ensureDeferred
async def test_client_expecting_another_server_key_is_refused(
    authenticator, startServer, connectClient
):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    server = startServer(curveServer())
    # The client encrypts its HELLO for a server it is not talking to: it cannot be read.
    misled = connectClient(server.address, curveClient(keyPair(), serverKey=keyPair().public))
    await assertRefused(
        server,
        misled,
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC,
    )


@pytest_twisted.ensureDeferred
async def test_refusals_leave_the_server_serving(authenticator, startServer, connectClient):
    trusted = keyPair()
    authenticator.configureCurveCallback(lambda domain, key: key == trusted.public)
    server = startServer(curveServer())
    await assertRefused(
        server,
        connectClient(server.address, curveClient(keyPair())),
        zmq.EVENT_HANDSHAKE_FAILED_AUTH,
        400,
    )
    await assertServes(server, connectClient(server.address, curveClient(trusted)))
    assert len(server.connection.requests) == 1


@pytest_twisted.ensureDeferred
async def test_garbage_on_the_wire_does_not_stop_curve_server(
    authenticator, startServer, connectClient
):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    server = startServer(curveServer())
    host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
    # A ZMTP greeting claiming CURVE, then a HELLO command of the wrong size and junk.
    greeting = b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\x00")
    greeting += b"\x00" + b"\x00" * 31
    with socket.create_connection((host, int(port)), timeout=WAIT) as raw:
        raw.sendall(greeting + b"\x04\x05\x05HELLO" + b"\x00" * 40 + b"junk" * 100)
        await server.failures.waitFor(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, timeout=WAIT)
    await assertServes(server, connectClient(server.address, curveClient(keyPair())))


@pytest_twisted.ensureDeferred
async def test_credentials_callback_returning_deferred_decides(
    authenticator, startServer, connectClient
):
    trusted, stranger = keyPair(), keyPair()
    asked: list[tuple[str, bytes]] = []
    decisions: DeferredQueue[Deferred[bool]] = DeferredQueue()

    def decide(domain: str, key: bytes) -> Deferred[bool]:
        asked.append((domain, key))
        decision: Deferred[bool] = Deferred()
        decisions.put(decision)
        return decision

    authenticator.configureCurveCallback(decide)
    server = startServer(curveServer())
    strangerClient = connectClient(server.address, curveClient(stranger))
    strangerRequest = strangerClient.sendMsg(b"let me in", timeout=WAIT)
    (await decisions.get()).callback(False)
    await server.failures.waitFor(zmq.EVENT_HANDSHAKE_FAILED_AUTH, timeout=WAIT)
    strangerRequest.cancel()
    await strangerRequest.addErrback(lambda _: None)

    trustedRequest = connectClient(server.address, curveClient(trusted)).sendMsg(b"hello")
    (await decisions.get()).callback(True)
    userId, body = await trustedRequest
    assert (userId, body) == (trusted.public, b"hello")
    assert [key for _, key in asked] == [stranger.public, trusted.public]
    assert [domain for domain, _ in asked] == ["*", "*"]


@pytest_twisted.ensureDeferred
async def test_slow_decision_on_one_client_does_not_hold_up_another(
    authenticator, startServer, connectClient
):
    slow, quick = keyPair(), keyPair()
    held: Deferred[bool] = Deferred()
    authenticator.configureCurveCallback(lambda domain, key: held if key == slow.public else True)
    server = startServer(curveServer())
    slowRequest = connectClient(server.address, curveClient(slow)).sendMsg(b"slow")
    await assertServes(server, connectClient(server.address, curveClient(quick)))
    assert not slowRequest.called
    held.callback(True)
    assert (await slowRequest)[1] == b"slow"


@pytest_twisted.ensureDeferred
async def test_failing_credentials_callback_refuses_and_logs(
    authenticator, startServer, connectClient, loggedFailures
):
    class LookupBroke(Exception):
        pass

    authenticator.configureCurveCallback(lambda domain, key: fail(LookupBroke("db down")))
    server = startServer(curveServer())
    client = connectClient(server.address, curveClient(keyPair()))
    await assertRefused(server, client, zmq.EVENT_HANDSHAKE_FAILED_AUTH, 500)
    assert [event["log_failure"].type for event in loggedFailures] == [LookupBroke]


@pytest_twisted.ensureDeferred
async def test_raising_credentials_callback_refuses(authenticator, startServer, connectClient):
    def broken(domain: str, key: bytes) -> bool:
        raise KeyError(key)

    authenticator.configureCurveCallback(broken)
    server = startServer(curveServer())
    client = connectClient(server.address, curveClient(keyPair()))
    await assertRefused(server, client, zmq.EVENT_HANDSHAKE_FAILED_AUTH, 500)


@pytest_twisted.ensureDeferred
async def test_credentials_callback_that_never_answers_refuses_after_timeout(
    authenticator, startServer, connectClient
):
    forever: Deferred[bool] = Deferred()
    authenticator.requestTimeout = 0.2
    authenticator.configureCurveCallback(lambda domain, key: forever)
    server = startServer(curveServer())
    client = connectClient(server.address, curveClient(keyPair()))
    await assertRefused(server, client, zmq.EVENT_HANDSHAKE_FAILED_AUTH, 300)
    assert forever.called  # cancelled by the timeout: nothing is left waiting on it


@pytest_twisted.ensureDeferred
async def test_user_id_mapping_can_be_overridden(zmq_factory, startServer, connectClient):
    alice = keyPair()

    class NamingAuthenticator(ZmqAuthenticator):
        def curveUserId(self, clientPublicKey: bytes) -> str:
            return {alice.public: "alice"}.get(zmq.utils.z85.encode(clientPublicKey), "?")

    authenticator = NamingAuthenticator(zmq_factory)
    authenticator.start()
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    server = startServer(curveServer())
    assert await assertServes(server, connectClient(server.address, curveClient(alice))) == "alice"
    authenticator.stop()


@pytest_twisted.ensureDeferred
async def test_without_authenticator_any_curve_client_knowing_server_key_is_served(
    startServer, connectClient
):
    # libzmq's rule, documented because it surprises: no ZAP handler, no client check.
    server = startServer(curveServer())
    assert await assertServes(server, connectClient(server.address, curveClient(keyPair()))) == ""


@pytest_twisted.ensureDeferred
async def test_raw_binary_keys_work_like_z85_keys(authenticator, startServer, connectClient):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    binary = KeyPair(*(zmq.utils.z85.decode(key) for key in SERVER))
    server = startServer(curveServer(binary))
    client = keyPair()
    rawClient = KeyPair(*(zmq.utils.z85.decode(key) for key in client))
    userId = await assertServes(
        server, connectClient(server.address, curveClient(rawClient, binary.public))
    )
    assert userId == client.public.decode()


@pytest_twisted.ensureDeferred
async def test_curve_pubsub_delivers_to_admitted_subscriber(zmq_factory, authenticator):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    received: DeferredQueue[tuple[bytes, bytes]] = DeferredQueue()

    class Subscriber(ZmqSubConnection):
        def gotMessage(self, message: bytes, tag: bytes) -> None:
            received.put((message, tag))

    publisher = ZmqPubConnection(zmq_factory)
    publisher.useCurveServer(SERVER.public, SERVER.secret)
    publisher.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")])
    subscriber = Subscriber(zmq_factory)
    curveClient(keyPair())(subscriber)
    subscriber.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, publisher.lastEndpoint)])
    subscriber.subscribe(b"news")
    await waitForSubscription(publisher, subscriber, timeout=WAIT)
    publisher.publish(b"encrypted", b"news")
    assert await received.get().addTimeout(WAIT, reactor) == (b"encrypted", b"news")
    subscriber.shutdown()
    publisher.shutdown()


class _TapClient(portforward.ProxyClient):
    def dataReceived(self, data: bytes) -> None:
        self.peer.factory.carried.append(data)
        super().dataReceived(data)


class _TapClientFactory(portforward.ProxyClientFactory):
    protocol = _TapClient


class _Tap(portforward.ProxyServer):
    """A TCP relay that keeps every byte it carries, both ways."""

    clientProtocolFactory = _TapClientFactory

    def dataReceived(self, data: bytes) -> None:
        self.factory.carried.append(data)  # type: ignore[attr-defined]
        super().dataReceived(data)


@pytest_twisted.ensureDeferred
async def test_curve_traffic_carries_no_plaintext(authenticator, startServer, connectClient):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    server = startServer(curveServer())
    host, port = server.address.removeprefix("tcp://").rsplit(":", 1)
    tap = portforward.ProxyFactory(host, int(port))
    tap.protocol = _Tap
    tap.carried = []  # type: ignore[attr-defined]
    listening = reactor.listenTCP(0, tap, interface="127.0.0.1")
    try:
        secret = b"the password is swordfish" * 4
        client = connectClient(
            f"tcp://127.0.0.1:{listening.getHost().port}", curveClient(keyPair())
        )
        _, body = await client.sendMsg(secret, timeout=WAIT)
        assert body == secret
        client.shutdown()
        wire = b"".join(tap.carried)  # type: ignore[attr-defined]
        assert b"CURVE" in wire  # the relay did carry the conversation
        assert b"swordfish" not in wire
    finally:
        await listening.stopListening()
