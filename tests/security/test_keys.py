"""
Keys and security set-up: certificate files, key validation, and the order rules of the
connection methods.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import pytest_twisted
import zmq

from tests.security.conftest import WAIT
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqPullConnection
from txzmq2.auth import ZmqAuthenticator, createCertificates, loadCertificate

pytestmark = pytest.mark.timeout(30)


def test_certificates_hold_a_matching_key_pair(tmp_path: Path):
    publicFile, secretFile = createCertificates(tmp_path / "keys", "server")
    assert (publicFile.name, secretFile.name) == ("server.key", "server.key_secret")
    public, secret = loadCertificate(secretFile)
    assert secret is not None
    assert zmq.curve_public(secret) == public
    assert loadCertificate(publicFile) == (public, None)


def test_secret_certificate_is_readable_by_its_owner_only(tmp_path: Path):
    _, secretFile = createCertificates(tmp_path, "server")
    assert stat.S_IMODE(secretFile.stat().st_mode) == 0o600


def test_each_certificate_pair_is_new(tmp_path: Path):
    first = loadCertificate(createCertificates(tmp_path / "a", "x")[1])
    second = loadCertificate(createCertificates(tmp_path / "b", "x")[1])
    assert first != second


def test_loading_a_file_without_public_key_fails(tmp_path: Path):
    junk = tmp_path / "junk.key"
    junk.write_text('metadata\n    name = "nothing"\n')
    with pytest.raises(ValueError):
        loadCertificate(junk)


def test_certificate_directory_must_exist(zmq_factory, tmp_path: Path):
    with pytest.raises(ValueError, match="no certificate directory"):
        ZmqAuthenticator(zmq_factory).configureCurve(location=tmp_path / "missing")


@pytest.mark.parametrize(
    "key",
    [b"short", "~" * 40, b"\x00" * 31, "é" * 20],
    ids=["too short", "not z85", "31 bytes", "not ascii"],
)
def test_malformed_curve_key_is_refused(zmq_factory, key):
    connection = ZmqPullConnection(zmq_factory)
    public, secret = zmq.curve_keypair()
    with pytest.raises(ValueError):
        connection.useCurveServer(key, secret)
    with pytest.raises(ValueError):
        connection.useCurveClient(public, secret, key)
    connection.shutdown()


def test_security_after_an_endpoint_is_refused(zmq_factory):
    connection = ZmqPullConnection(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")
    )
    with pytest.raises(RuntimeError, match="before the first bind or connect"):
        connection.useCurveServer(*zmq.curve_keypair())
    with pytest.raises(RuntimeError):
        connection.usePlainServer()
    with pytest.raises(RuntimeError):
        connection.usePlainClient("user", "password")
    connection.shutdown()


def test_message_property_outside_delivery_is_none(zmq_factory):
    connection = ZmqPullConnection(zmq_factory)
    assert connection.messageProperty("User-Id") is None
    connection.shutdown()


@pytest_twisted.ensureDeferred
async def test_message_properties_describe_the_sending_peer(startServer, connectClient):
    seen: dict[str, str | None] = {}

    server = startServer(lambda connection: None)

    def handle(*parts: bytes) -> list[bytes]:
        for name in ("Peer-Address", "Socket-Type", "No-Such-Property"):
            seen[name] = server.connection.messageProperty(name)
        return list(parts)

    server.connection.handleRequest = handle
    assert await connectClient(server.address).sendMsg(b"hi", timeout=WAIT) == [b"hi"]
    assert seen == {"Peer-Address": "127.0.0.1", "Socket-Type": "DEALER", "No-Such-Property": None}


def test_certificates_replace_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path):
    target = tmp_path / "elsewhere"
    target.write_text("untouched")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "server.key_secret").symlink_to(target)
    _, secretFile = createCertificates(tmp_path / "keys", "server")
    assert target.read_text() == "untouched"
    assert not secretFile.is_symlink()
    assert stat.S_IMODE(secretFile.stat().st_mode) == 0o600
    # No temporary file is left behind.
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "server.key",
        "server.key_secret",
    ]
