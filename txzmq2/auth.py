"""
Authentication on the reactor: a ZAP handler, and CURVE certificates.

libzmq asks a context's ZAP handler (RFC 27, an inproc socket bound at
``inproc://zeromq.zap.01``) whether each new peer of a CURVE or PLAIN server, or of a NULL
server with a ZAP domain, may come in. :class:`ZmqAuthenticator` answers those requests on
the factory's reactor. Its policy (address lists, PLAIN passwords, CURVE keys) is pyzmq's
:class:`zmq.auth.base.Authenticator`, whose coroutine is driven here as a Deferred, so a
credentials callback may itself return a Deferred.

Set a connection's own side up with ``useCurveServer``, ``useCurveClient``,
``usePlainServer`` and ``usePlainClient`` (see :class:`~txzmq2.connection.ZmqConnection`).
"""

from __future__ import annotations

import contextvars
import datetime
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth
from twisted.internet.defer import Deferred
from twisted.internet.defer import TimeoutError as DeferredTimeout
from twisted.logger import Logger
from twisted.python.failure import Failure
from zmq.auth.base import Authenticator
from zmq.utils import z85

from txzmq2._logging import RateLimitedLogger
from txzmq2._reactor import asReactorTime
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import ZmqError, ZmqUnknownRequestError
from txzmq2.reqrep import ZmqREPConnection

if TYPE_CHECKING:
    from txzmq2.factory import ZmqFactory

__all__ = [
    "CURVE_ALLOW_ANY",
    "ZAP_ENDPOINT",
    "ZmqAuthenticator",
    "createCertificates",
    "loadCertificate",
]

CURVE_ALLOW_ANY = "*"
"""``location`` for :meth:`ZmqAuthenticator.configureCurve` letting in any CURVE client
(traffic is still encrypted; clients are not authenticated)."""

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
"""Where libzmq sends ZAP requests; one handler per context."""

CredentialsCallback = Callable[[str, bytes], "bool | Awaitable[bool]"]
"""``callback(domain, clientKey)``: ``clientKey`` is the client's public key in Z85;
return (or fire a Deferred with) whether it may connect."""

# The ZAP reply of the request the running coroutine handles. pyzmq's policy sends its
# reply through ``zap_socket.send_multipart``; each request runs in its own context copy
# (Deferred.fromCoroutine), so concurrent requests never see each other's slot.
_currentReply: contextvars.ContextVar[list[list[bytes]]] = contextvars.ContextVar(
    "txzmq2_zap_reply"
)


class _ReplySlot:
    """Stands in for pyzmq's ZAP socket: keeps the reply of the current request."""

    def send_multipart(self, frames: list[bytes]) -> None:
        _currentReply.get().append(list(frames))


class _LogBridge:
    """
    pyzmq's policy logs with ``logging``'s %-style calls; send them to twisted.logger, with
    passwords blanked out (pyzmq logs each accepted PLAIN password at debug level). Each
    pyzmq message template is its own kind of warning for the rate limit.
    """

    def __init__(self, log: Logger) -> None:
        self._log = log

    @staticmethod
    def _format(text: str, args: tuple[Any, ...]) -> str:
        if not args:
            return text
        if "password=%s" in text:
            # The placeholders before it are all %s or %r in pyzmq's messages: count them.
            position = text[: text.index("password=%s")].count("%")
            args = (*args[:position], "<hidden>", *args[position + 1 :])
        return text % args

    def debug(self, text: str, *args: Any) -> None:
        self._log.debug("ZAP: {text}", text=self._format(text, args))

    def info(self, text: str, *args: Any) -> None:
        self._log.info("ZAP: {text}", text=self._format(text, args))

    def warning(self, text: str, *args: Any) -> None:
        self._log.warn("ZAP: {text}", text=self._format(text, args), limitKind=text)

    def error(self, text: str, *args: Any) -> None:
        self._log.error("ZAP: {text}", text=self._format(text, args), limitKind=text)


class _Policy(Authenticator):
    """pyzmq's policy code, with the user-id mapping left to the ZmqAuthenticator."""

    def __init__(self, owner: ZmqAuthenticator, context: zmq.Context[Any], encoding: str):
        super().__init__(context, encoding=encoding, log=_LogBridge(owner._log))
        self._owner = owner
        self.zap_socket = _ReplySlot()  # type: ignore[assignment]

    def curve_user_id(self, client_public_key: bytes) -> str:
        return self._owner.curveUserId(client_public_key)


class _CallbackProvider:
    """The object shape pyzmq's ``configure_curve_callback`` expects, around a callable."""

    def __init__(self, callback: CredentialsCallback) -> None:
        self.callback = callback


class _ZapHandler(ZmqREPConnection):
    """
    The ZAP socket. libzmq's requests come with a REQ envelope, which a REP connection
    keeps and returns, and several may be in flight at once (a slow credentials callback
    holds only its own peer).
    """

    # inproc produces no socket events: a monitor would be an idle socket.
    monitored = False

    def __init__(self, authenticator: ZmqAuthenticator) -> None:
        self.authenticator = authenticator
        # Decisions still being made (a slow credentials callback), cancelled on shutdown
        # so that neither they nor their timeouts outlive the socket.
        self._deciding: dict[bytes, Deferred[list[bytes] | None]] = {}
        super().__init__(authenticator.factory)

    def gotMessage(self, messageId: bytes, *frames: bytes) -> None:
        authenticator = self.authenticator
        decided = Deferred.fromCoroutine(authenticator._decide(list(frames)))
        self._deciding[messageId] = decided
        decided.addTimeout(authenticator.requestTimeout, asReactorTime(self.factory.reactor))
        decided.addBoth(self._decided, messageId)
        decided.addCallbacks(
            self._answer,
            self._failed,
            callbackArgs=(messageId,),
            errbackArgs=(messageId, frames),
        )

    def _decided(self, result: object, messageId: bytes) -> object:
        self._deciding.pop(messageId, None)
        return result

    def _answer(self, reply: list[bytes] | None, messageId: bytes) -> None:
        if self.closed:
            return
        if reply is None:
            # Too short to carry a request id: nothing to answer (pyzmq logged it).
            self.forget(messageId)
            return
        self._replyIfPending(messageId, reply)

    def _failed(self, failure: Failure, messageId: bytes, frames: tuple[bytes, ...]) -> None:
        if self.closed:
            return
        if isinstance(failure.value, DeferredTimeout):
            status, text = b"300", b"Authentication timed out"
            self._log.warn(
                "ZAP: no decision within {timeout} s; peer refused",
                timeout=self.authenticator.requestTimeout,
            )
        else:
            status, text = b"500", b"Internal error"
            self._log.failure("ZAP: authentication failed with an error; peer refused", failure)
        if len(frames) < 2:
            self.forget(messageId)
            return
        # Refuse rather than leave the peer's handshake waiting on us.
        self._replyIfPending(messageId, _zapReply(frames[1], status, text))

    def _replyIfPending(self, messageId: bytes, reply: list[bytes]) -> None:
        try:
            self.reply(messageId, *reply)
        except ZmqUnknownRequestError:
            # Evicted past maxPendingRequests while its decision took long: libzmq has
            # given up on that handshake, or will; nothing to answer.
            self._log.warn("ZAP: a decision came after its request was forgotten")

    def connectionClosed(self) -> None:
        super().connectionClosed()
        for decision in list(self._deciding.values()):
            decision.cancel()


def _zapReply(requestId: bytes, status: bytes, text: bytes) -> list[bytes]:
    return [b"1.0", requestId, status, text, b"", b""]


class ZmqAuthenticator:
    """
    The ZAP handler of a factory's context, answering on the factory's reactor.

    Until it is configured it lets NULL peers in and refuses PLAIN and CURVE ones. Address
    lists apply to every mechanism; PLAIN and CURVE peers must then also authenticate.

    :param factory: the factory whose context it serves (one authenticator per context).
    :param encoding: how domains, addresses, user names and passwords are decoded.
    :param requestTimeout: seconds a decision may take (a credentials callback that never
        answers); after it the peer is refused with ZAP status 300.
    """

    _log = RateLimitedLogger()

    def __init__(
        self, factory: ZmqFactory, encoding: str = "utf-8", requestTimeout: float = 10.0
    ) -> None:
        self.factory = factory
        self.requestTimeout = requestTimeout
        self._policy = _Policy(self, factory.context, encoding)
        self._handler: _ZapHandler | None = None

    @property
    def running(self) -> bool:
        """Whether the handler is serving ZAP requests."""
        return self._handler is not None and not self._handler.closed

    def start(self) -> None:
        """
        Bind the ZAP socket and start answering. It stops with the factory.

        :raises ZmqError: when this context already has a ZAP handler.
        :raises ZmqConnectionClosed: when the factory is shutting down.
        """
        if self.running:
            return
        handler = _ZapHandler(self)
        try:
            handler.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, ZAP_ENDPOINT)])
        except zmq.ZMQError as error:
            handler.shutdown()
            if error.errno == zmq.EADDRINUSE:
                raise ZmqError("this factory's context already has a ZAP handler") from None
            raise
        self._handler = handler

    def stop(self) -> None:
        """
        Stop answering and unbind. From then on libzmq, finding no handler, lets every
        NULL and CURVE peer in (and refuses PLAIN ones): stop servers that rely on it first.
        """
        handler, self._handler = self._handler, None
        if handler is not None and not handler.closed:
            try:
                # Closing releases an inproc address later, on libzmq's reaper thread;
                # unbind now, so that a new handler can bind at once.
                handler.socket.unbind(ZAP_ENDPOINT)
            except zmq.ZMQError:
                pass  # a terminated context: closing below is all there is to do
            finally:
                handler.shutdown()

    def allow(self, *addresses: str) -> None:
        """
        Let in only peers from these IP addresses (PLAIN and CURVE peers must still
        authenticate). Exclusive with :meth:`deny`.

        :raises ValueError: after :meth:`deny`.
        """
        self._policy.allow(*addresses)

    def deny(self, *addresses: str) -> None:
        """
        Refuse peers from these IP addresses. Exclusive with :meth:`allow`.

        :raises ValueError: after :meth:`allow`.
        """
        self._policy.deny(*addresses)

    def configurePlain(
        self, domain: str = "*", passwords: Mapping[str, str] | None = None
    ) -> None:
        """
        Check PLAIN peers of ``domain`` (``"*"``: connections without a ZAP domain) against
        ``passwords`` (user name to password).
        """
        self._policy.configure_plain(domain, dict(passwords or {}))

    def configureCurve(
        self, domain: str = "*", location: str | os.PathLike[str] = CURVE_ALLOW_ANY
    ) -> None:
        """
        Let in CURVE peers whose public key has a certificate in the directory
        ``location`` (read now: call again after changing it), or any CURVE peer with
        :data:`CURVE_ALLOW_ANY`.

        :raises ValueError: when ``location`` is not a directory.
        """
        if location != CURVE_ALLOW_ANY and not Path(location).is_dir():
            raise ValueError(f"no certificate directory at {os.fspath(location)!r}")
        self._policy.configure_curve(domain, location)

    def configureCurveCallback(self, callback: CredentialsCallback, domain: str = "*") -> None:
        """
        Let ``callback(domain, clientKey)`` decide on CURVE peers of ``domain``: it gets the
        client's public key in Z85 and returns, or fires a Deferred with, whether it may
        connect. A callback that raises, fails or takes longer than ``requestTimeout``
        refuses the peer.
        """
        self._policy.configure_curve_callback(domain, _CallbackProvider(callback))

    def curveUserId(self, clientPublicKey: bytes) -> str:
        """
        The ``User-Id`` given to an authenticated CURVE peer (what
        ``messageProperty("User-Id")`` returns on its messages). Default: its public key in
        Z85. Override to map keys to names.
        """
        return z85.encode(clientPublicKey).decode("ascii")

    async def _decide(self, frames: list[bytes]) -> list[bytes] | None:
        slot: list[list[bytes]] = []
        _currentReply.set(slot)
        await self._policy.handle_zap_message(frames)
        return slot[0] if slot else None


def createCertificates(directory: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """
    Create a CURVE key pair as two certificate files in ``directory`` (created if missing):
    ``name.key`` (public key only, to hand out) and ``name.key_secret`` (both keys, to
    keep private: readable by its owner only, from the moment it exists). Files of those
    names are replaced. The format is the ZPL certificate of czmq and pyzmq.

    :return: the paths of the public and the secret certificate.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    public, secret = zmq.curve_keypair()
    publicFile, secretFile = target / f"{name}.key", target / f"{name}.key_secret"
    _writeCertificate(secretFile, public, secret)
    _writeCertificate(publicFile, public, None)
    return publicFile, secretFile


def _writeCertificate(path: Path, public: bytes, secret: bytes | None) -> None:
    """
    Write a certificate whole, or not at all: to a new file created with its final mode
    (never readable by others, even for a moment; no symlink followed), then renamed.
    """
    if secret is None:
        kind, advice = "Public", "Exchange securely, or check its contents after exchange."
    else:
        kind, advice = "Secret", "DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its mode."
    lines = [
        f"#   ****  Generated on {datetime.datetime.now():%Y-%m-%d %H:%M:%S} by txzmq2  ****",
        f"#   ZeroMQ CURVE **{kind}** Certificate",
        f"#   {advice}",
        "",
        "metadata",
        "curve",
        f'    public-key = "{public.decode("ascii")}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode("ascii")}"')
    mode = 0o600 if secret is not None else 0o644
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(handle, "w", encoding="ascii") as file:
            file.write("\n".join(lines) + "\n")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def loadCertificate(path: str | os.PathLike[str]) -> tuple[bytes, bytes | None]:
    """
    Read a certificate file written by :func:`createCertificates` (or pyzmq, or czmq).

    :return: the public key and the secret key (``None`` for a public certificate), in Z85.
    :raises ValueError: when the file holds no public key.
    :raises OSError: when it cannot be read.
    """
    public, secret = zmq.auth.load_certificate(path)
    return public, secret
