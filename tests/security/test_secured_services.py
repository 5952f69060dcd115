"""
ZmqSecurity: one CURVE or PLAIN set-up given to a connection's constructor, or to the
Majordomo and RPC classes, which apply it to every socket they make (reconnections too).
"""

from __future__ import annotations

import pytest
import pytest_twisted
import zmq

from tests.security.conftest import WAIT, RecordingServer, keyPair
from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqREQConnection,
    ZmqRequestTimeoutError,
    ZmqSecurity,
)
from txzmq2.auth import CURVE_ALLOW_ANY
from txzmq2.mdp import MajordomoBroker, MajordomoClient, MajordomoWorker
from txzmq2.rpc import RPCClient, RPCServer, expose

pytestmark = [
    pytest.mark.skipif(not zmq.has("curve"), reason="libzmq was built without CURVE"),
    pytest.mark.timeout(30),
]

SERVER = keyPair()
BIND = ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")


def connectTo(address: str) -> ZmqEndpoint:
    return ZmqEndpoint(ZmqEndpointType.connect, address)


@pytest_twisted.ensureDeferred
async def test_security_given_to_the_constructor_applies_before_the_endpoint(
    zmq_factory, authenticator
):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    client = keyPair()
    server = RecordingServer(zmq_factory, BIND, security=ZmqSecurity.curveServer(*SERVER))
    requester = ZmqREQConnection(
        zmq_factory,
        connectTo(server.lastEndpoint),
        security=ZmqSecurity.curveClient(*client, SERVER.public),
    )
    try:
        assert server.socket.get(zmq.CURVE_SERVER) == 1
        reply = await requester.sendMsg(b"hello", timeout=WAIT)
        assert reply == [client.public, b"hello"]  # the User-Id is the client's key
    finally:
        requester.shutdown()
        server.shutdown()


def echo(*frames: bytes) -> list[bytes]:
    return list(frames)


@pytest_twisted.ensureDeferred
async def test_majordomo_broker_worker_and_client_speak_curve(zmq_factory, authenticator):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    broker = MajordomoBroker(
        zmq_factory, BIND, heartbeatInterval=0.1, security=ZmqSecurity.curveServer(*SERVER)
    )
    address = broker.connection.lastEndpoint
    clientSide = ZmqSecurity.curveClient(*keyPair(), SERVER.public)
    worker = MajordomoWorker(
        zmq_factory, connectTo(address), "echo", echo, heartbeatInterval=0.1, security=clientSide
    )
    client = MajordomoClient(zmq_factory, connectTo(address), security=clientSide)
    stranger = MajordomoClient(zmq_factory, connectTo(address))  # NULL: refused
    try:
        assert await client.request("echo", b"secret", timeout=WAIT) == [b"secret"]
        with pytest.raises(ZmqRequestTimeoutError):
            await stranger.request("echo", b"let me in", timeout=0.3)
    finally:
        for part in (stranger, client, worker, broker):
            part.shutdown()


class Calculator:
    @expose
    def add(self, a: int, b: int) -> int:
        return a + b


@pytest_twisted.ensureDeferred
async def test_rpc_server_and_client_speak_curve(zmq_factory, authenticator):
    authenticator.configureCurve(location=CURVE_ALLOW_ANY)
    server = RPCServer(zmq_factory, BIND, Calculator(), security=ZmqSecurity.curveServer(*SERVER))
    client = RPCClient(
        zmq_factory,
        connectTo(server.lastEndpoint),
        timeout=WAIT,
        security=ZmqSecurity.curveClient(*keyPair(), SERVER.public),
    )
    try:
        assert await client.callRemote("add", 1, 2) == 3
    finally:
        client.shutdown()
        server.shutdown()


def test_malformed_key_is_refused_when_the_security_is_built():
    with pytest.raises(ValueError):
        ZmqSecurity.curveClient(b"short", SERVER.secret, SERVER.public)
