"""
Shared set-up of the security tests: a started authenticator, key pairs, a recording
server and clients whose security is configured before they connect.

Every refusal is observed twice: the server's monitor reports the handshake failure, and the
application saw nothing from the refused peer. Then a trusted client is served, which shows
the server survived the refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
import zmq
from twisted.internet.defer import CancelledError

from txzmq2 import (
    ZmqConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqREPConnection,
    ZmqREQConnection,
)
from txzmq2.auth import ZmqAuthenticator
from txzmq2.monitor import HANDSHAKE_FAILURES, ZmqSocketMonitor

WAIT = 5.0
"""Seconds any single expected event may take before the test fails."""

pytestmark = pytest.mark.skipif(not zmq.has("curve"), reason="libzmq was built without CURVE")


class KeyPair(NamedTuple):
    public: bytes
    secret: bytes


def keyPair() -> KeyPair:
    return KeyPair(*zmq.curve_keypair())


class RecordingServer(ZmqREPConnection):
    """Answers every request with the peer's User-Id and the request, and keeps a record."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.requests: list[tuple[str | None, tuple[bytes, ...]]] = []
        super().__init__(*args, **kwargs)

    def handleRequest(self, *parts: bytes) -> list[bytes]:
        userId = self.messageProperty("User-Id")
        self.requests.append((userId, parts))
        return [(userId or "").encode(), *parts]


class Client(ZmqREQConnection):
    defaultRequestTimeout = WAIT


class Server(NamedTuple):
    connection: RecordingServer
    failures: ZmqSocketMonitor
    address: str


Configure = Callable[[ZmqConnection], object]


def noSecurity(connection: ZmqConnection) -> None:
    """The NULL mechanism: nothing to configure."""


@pytest.fixture
def authenticator(zmq_factory: ZmqFactory) -> Iterator[ZmqAuthenticator]:
    """A started ZAP handler on the test's factory, stopped after the test."""
    authenticator = ZmqAuthenticator(zmq_factory)
    authenticator.start()
    yield authenticator
    authenticator.stop()


@pytest.fixture
def startServer(zmq_factory: ZmqFactory) -> Iterator[Callable[..., Server]]:
    """
    Starts a RecordingServer set up by ``configure`` and bound to tcp loopback; shuts it
    down after the test.
    """
    servers: list[RecordingServer] = []

    def start(configure: Configure, address: str = "tcp://127.0.0.1:*") -> Server:
        connection = RecordingServer(zmq_factory)
        servers.append(connection)
        configure(connection)
        failures = connection.monitor(HANDSHAKE_FAILURES)
        connection.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, address)])
        return Server(connection, failures, connection.lastEndpoint)

    yield start
    for connection in servers:
        connection.shutdown()


@pytest.fixture
def connectClient(zmq_factory: ZmqFactory) -> Iterator[Callable[..., Client]]:
    """Connects a Client set up by ``configure`` to ``address``; shuts it down after the test."""
    clients: list[Client] = []

    def connect(address: str, configure: Configure = noSecurity) -> Client:
        client = Client(zmq_factory)
        clients.append(client)
        configure(client)
        client.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, address)])
        return client

    yield connect
    for client in clients:
        client.shutdown()


async def assertRefused(
    server: Server,
    client: Client,
    event: int = zmq.EVENT_HANDSHAKE_FAILED_AUTH,
    value: int = 400,
) -> None:
    """The server reports ``event`` with ``value`` and its application never saw the client."""
    pending = client.sendMsg(b"let me in", timeout=WAIT)
    refused = await server.failures.waitFor(event, timeout=WAIT)
    assert (refused.event, refused.value) == (event, value)
    pending.cancel()
    with pytest.raises(CancelledError):
        await pending
    assert server.connection.requests == []
