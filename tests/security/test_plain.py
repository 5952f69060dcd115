"""
PLAIN: user name and password checked by the ZAP handler (re-expressing libzmq's
test_security_plain). PLAIN sends the password in clear: use it inside trusted networks,
or with CURVE's encryption elsewhere.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
import zmq

from tests.security.conftest import WAIT, assertRefused, noSecurity
from txzmq2 import ZmqConnection

pytestmark = pytest.mark.timeout(30)

PASSWORDS = {"admin": "secret", "guest": "guest"}


def plainServer(zapDomain: str | None = None) -> Any:
    def configure(connection: ZmqConnection) -> None:
        connection.usePlainServer(zapDomain=zapDomain)

    return configure


def plainClient(username: str, password: str) -> Any:
    def configure(connection: ZmqConnection) -> None:
        connection.usePlainClient(username, password)

    return configure


@pytest_twisted.ensureDeferred
async def test_user_with_right_password_is_served_as_that_user(
    authenticator, startServer, connectClient
):
    authenticator.configurePlain(passwords=PASSWORDS)
    server = startServer(plainServer())
    client = connectClient(server.address, plainClient("admin", "secret"))
    assert await client.sendMsg(b"hello", timeout=WAIT) == [b"admin", b"hello"]


@pytest_twisted.ensureDeferred
async def test_wrong_password_is_refused(authenticator, startServer, connectClient):
    authenticator.configurePlain(passwords=PASSWORDS)
    server = startServer(plainServer())
    client = connectClient(server.address, plainClient("admin", "guess"))
    await assertRefused(server, client, zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)


@pytest_twisted.ensureDeferred
async def test_unknown_user_is_refused(authenticator, startServer, connectClient):
    authenticator.configurePlain(passwords=PASSWORDS)
    server = startServer(plainServer())
    client = connectClient(server.address, plainClient("mallory", "secret"))
    await assertRefused(server, client, zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)


@pytest_twisted.ensureDeferred
async def test_null_client_is_refused_by_plain_server(authenticator, startServer, connectClient):
    authenticator.configurePlain(passwords=PASSWORDS)
    server = startServer(plainServer())
    await assertRefused(
        server,
        connectClient(server.address, noSecurity),
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
        zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH,
    )


@pytest_twisted.ensureDeferred
async def test_plain_server_refuses_everyone_until_passwords_are_configured(
    authenticator, startServer, connectClient
):
    server = startServer(plainServer())
    client = connectClient(server.address, plainClient("admin", "secret"))
    await assertRefused(server, client, zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400)


@pytest_twisted.ensureDeferred
async def test_passwords_apply_to_their_zap_domain_only(authenticator, startServer, connectClient):
    authenticator.configurePlain("accounts", passwords={"clerk": "ledger"})
    accounts = startServer(plainServer(zapDomain="accounts"))
    other = startServer(plainServer(zapDomain="other"))
    clerk = connectClient(accounts.address, plainClient("clerk", "ledger"))
    assert await clerk.sendMsg(b"hello", timeout=WAIT) == [b"clerk", b"hello"]
    await assertRefused(
        other,
        connectClient(other.address, plainClient("clerk", "ledger")),
        zmq.EVENT_HANDSHAKE_FAILED_AUTH,
        400,
    )


@pytest_twisted.ensureDeferred
async def test_passwords_never_reach_the_log(authenticator, startServer, connectClient):
    from twisted.logger import formatEvent, globalLogPublisher

    logged: list[str] = []

    def observe(event: dict) -> None:
        logged.append(formatEvent(event))

    authenticator.configurePlain(passwords={"admin": "hunter2-secret"})
    server = startServer(plainServer())
    globalLogPublisher.addObserver(observe)
    try:
        client = connectClient(server.address, plainClient("admin", "hunter2-secret"))
        assert await client.sendMsg(b"hello", timeout=WAIT) == [b"admin", b"hello"]
    finally:
        globalLogPublisher.removeObserver(observe)
    assert any("ALLOWED (PLAIN)" in line and "admin" in line for line in logged)
    assert not [line for line in logged if "hunter2" in line]
