"""
A service that runs encrypted, with an allow-list: CURVE security and a ZAP authenticator.

What it shows, step by step:

1. Certificates: ``txzmq2.auth.createCertificates`` makes a key pair (a public ``.key`` file
   and a private ``.key_secret`` file) for the server and for two clients, alice and
   mallory, in a temporary directory. Only alice's *public* certificate is copied into the
   server's allow-list directory, ``authorized/``.
2. The authenticator: ``ZmqAuthenticator`` answers libzmq's ZAP requests on the reactor. It
   lets in connections from 127.0.0.1 only (``allow``), and CURVE clients only if their
   public key has a certificate in ``authorized/`` (``configureCurve``).
3. The server: a REP connection that serves CURVE (``useCurveServer``, before it binds).
   Every request reaches it encrypted and authenticated; ``messageProperty("User-Id")``
   tells who sent it. For CURVE that is the client's public key in Z85, unless the
   authenticator's ``curveUserId`` says otherwise: here it gives the certificate's name.
4. alice (``useCurveClient`` with her keys and the server's public key) is let in: her
   requests are answered, and the server prints her User-Id.
5. mallory knows the server's public key too, but her key is not on the list: the
   handshake is refused. Both sides' socket monitors report it
   (``EVENT_HANDSHAKE_FAILED_AUTH``, ZAP status 400), and her request times out: nothing
   she sends ever reaches the service.

Run it (it finishes by itself in a couple of seconds)::

    python examples/secure_service.py

The same set-up on the command line: ``txzmq2 keygen DIRECTORY NAME`` writes a certificate
pair like ``createCertificates``. See docs/security.md.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import zmq
from twisted.internet.task import react
from zmq.utils import z85

from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRequestTimeoutError,
)
from txzmq2.auth import ZmqAuthenticator, createCertificates, loadCertificate
from txzmq2.monitor import HANDSHAKE_FAILURES, ZmqMonitorEvent

REQUESTS = 3
REPLY_TIMEOUT = 5.0
"""Seconds alice waits for each reply (she gets them at once)."""
REFUSED_TIMEOUT = 1.0
"""Seconds mallory waits before her request times out (it never gets through)."""


class SecureEcho(ZmqREPConnection):
    """Answers each request with who sent it, as the authenticator identified them."""

    def __init__(self, factory: ZmqFactory) -> None:
        self.served: list[str | None] = []
        super().__init__(factory)

    def handleRequest(self, *parts: bytes) -> list[bytes]:
        # Only valid while this request is being delivered: read it here, not later.
        userId = self.messageProperty("User-Id")
        self.served.append(userId)
        print(f"server: request {b' '.join(parts).decode()!r} from User-Id {userId}")
        return [b"hello, " + (userId or "?").encode()]


class NamingAuthenticator(ZmqAuthenticator):
    """Names each authenticated CURVE client after its certificate in the allow-list."""

    def __init__(self, factory: ZmqFactory, allowList: Path) -> None:
        super().__init__(factory)
        self.names = {loadCertificate(path)[0]: path.stem for path in allowList.glob("*.key")}

    def curveUserId(self, clientPublicKey: bytes) -> str:
        key = z85.encode(clientPublicKey)
        return self.names.get(key, key.decode("ascii"))


def keyPair(secretCertificate: Path) -> tuple[bytes, bytes]:
    """The public and secret keys (Z85) of a secret certificate file."""
    public, secret = loadCertificate(secretCertificate)
    if secret is None:
        raise ValueError(f"{secretCertificate} holds no secret key")
    return public, secret


def describe(event: ZmqMonitorEvent) -> str:
    name = zmq.Event(event.event).name
    if event.event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return f"EVENT_{name} (ZAP status {event.value})"
    return f"EVENT_{name} (value {event.value})"


async def main(reactor: Any) -> None:
    directory = Path(tempfile.mkdtemp(prefix="txzmq2-secure-"))
    factory = ZmqFactory(reactor)
    try:
        # 1. Certificates. The secret files stay with their owners; the server's allow-list
        # directory holds public certificates only.
        serverPublic, serverSecret = keyPair(createCertificates(directory / "server", "server")[1])
        keys = {
            name: keyPair(createCertificates(directory / name, name)[1])
            for name in ("alice", "mallory")
        }
        authorized = directory / "authorized"
        authorized.mkdir()
        shutil.copy(directory / "alice" / "alice.key", authorized)
        print(f"certificates: server, alice and mallory made in {directory}")
        print("certificates: only alice's public certificate is in authorized/")

        # 2. The authenticator: who may connect, decided on the reactor.
        authenticator = NamingAuthenticator(factory, authorized)
        authenticator.start()
        authenticator.allow("127.0.0.1")
        authenticator.configureCurve(location=authorized)

        # 3. The server: CURVE set up before it binds.
        server = SecureEcho(factory)
        server.useCurveServer(serverPublic, serverSecret)
        serverRefusals = server.monitor(HANDSHAKE_FAILURES)
        server.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")])
        address = server.lastEndpoint
        print(f"server: CURVE on {address}, clients from 127.0.0.1 listed in authorized/")

        def client(name: str) -> ZmqREQConnection:
            public, secret = keys[name]
            connection = ZmqREQConnection(factory)
            connection.useCurveClient(public, secret, serverKey=serverPublic)
            connection.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, address)])
            return connection

        # 4. alice is on the list.
        alice = client("alice")
        print(f"alice: public key {keys['alice'][0].decode()}")
        for n in range(1, REQUESTS + 1):
            reply = await alice.sendMsg(b"request %d" % n, timeout=REPLY_TIMEOUT)
            print(f"alice: reply {n}: {reply!r}")

        # 5. mallory is not. Her monitor starts before she connects: no event is missed.
        mallory = ZmqREQConnection(factory)
        refusals = mallory.monitor(HANDSHAKE_FAILURES)
        public, secret = keys["mallory"]
        mallory.useCurveClient(public, secret, serverKey=serverPublic)
        mallory.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, address)])
        refused = refusals.waitFor(HANDSHAKE_FAILURES, timeout=REPLY_TIMEOUT)
        serverRefused = serverRefusals.waitFor(HANDSHAKE_FAILURES, timeout=REPLY_TIMEOUT)
        request = mallory.sendMsg(b"let me in", timeout=REFUSED_TIMEOUT)
        print(f"mallory: handshake refused: {describe(await refused)}")
        print(f"server: refused a client: {describe(await serverRefused)}")
        try:
            await request
        except ZmqRequestTimeoutError:
            print(f"mallory: no reply within {REFUSED_TIMEOUT} s; her request never got in")

        senders = ", ".join(sorted({str(userId) for userId in server.served}))
        print(f"server: {len(server.served)} requests served, from: {senders}")
    finally:
        await factory.shutdown()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    react(main)
