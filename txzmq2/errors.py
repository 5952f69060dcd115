"""
Exceptions raised by txzmq2, or delivered as the Failure of a Deferred it handed out.
"""

from __future__ import annotations

import zmq

__all__ = [
    "RemoteError",
    "ZmqConnectionClosed",
    "ZmqEndpointError",
    "ZmqError",
    "ZmqProtocolError",
    "ZmqRequestTimeoutError",
    "ZmqSendQueueFull",
    "ZmqSerializationError",
    "ZmqStateError",
    "ZmqTimeoutError",
    "ZmqUnknownRequestError",
    "ZmqUnroutableError",
    "ZmqUnsupportedError",
]


class ZmqError(Exception):
    """
    Base class of every txzmq2 exception.
    """


class ZmqConnectionClosed(ZmqError):
    """
    The connection (or its factory) was shut down.

    Raised by ``send`` and the verbs built on it after ``shutdown()``; also the Failure of
    every request Deferred still pending when its connection shuts down.
    """


class ZmqStateError(ZmqError, RuntimeError):
    """
    A call that the object's state does not allow: security set up after the first bind,
    a second producer, socket events on a connection that cannot have them...

    Also a ``RuntimeError``, which these were before.
    """


class ZmqTimeoutError(ZmqError):
    """
    Something awaited did not happen in time (a socket event, a connection).
    """


class ZmqRequestTimeoutError(ZmqTimeoutError):
    """
    A request got no reply within its timeout (after its last retry, when retries were
    asked for).
    """


class ZmqUnroutableError(ZmqError):
    """
    A ROUTER with ``routerMandatory`` set was asked to send to an identity that is not
    connected.
    """


class ZmqUnknownRequestError(ZmqError, KeyError):
    """
    ``ZmqREPConnection.reply`` was given a message id that is not an outstanding request:
    it was already answered, evicted, or never existed. Also the failure of
    ``TitanicClient.reply`` for a request id Titanic does not know (never stored, or
    closed).
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the plain message.
        return str(self.args[0]) if self.args else ""


class ZmqEndpointError(ZmqError, zmq.ZMQError):
    """
    A bind or connect failed: the address is in use, its host does not resolve, its
    transport is missing from this libzmq...

    Also a ``zmq.ZMQError``, so code written for pyzmq's errors keeps catching it.

    :ivar endpoint: the address that failed, as given.
    :ivar errno: libzmq's error number, when libzmq gave one.
    """

    def __init__(self, endpoint: str, reason: str, errno: int | None = None) -> None:
        ZmqError.__init__(self, reason)
        # Not ZMQError.__init__: with errno=None it would read zmq_errno(), which by now may
        # belong to some other call on this thread.
        self.errno = errno
        self.strerror = reason
        self.endpoint = endpoint

    def __str__(self) -> str:
        return self.strerror


class ZmqSendQueueFull(ZmqError):
    """
    A connection's outbound queue already holds ``sendQueueLimit`` messages for that
    destination (a peer that does not read, at libzmq's high-water mark): the message was
    not queued.
    """


class ZmqUnsupportedError(ZmqError):
    """
    The installed libzmq or pyzmq lacks what was asked for: a draft socket type, a
    transport (ws, pgm, norm...), a security mechanism. The message says what is missing.
    """


class RemoteError(ZmqError):
    """
    A remote call failed on the other side: the method raised, or the call itself was refused.

    :ivar remoteType: what went wrong: the class name of the exception the remote method
        raised, or one of the refusals documented in ``docs/rpc.md`` (``NoSuchMethod``,
        ``BadArguments``, ...).
    :ivar message: the ``str`` of the remote exception, or the reason for the refusal.
    :ivar remoteTraceback: the remote traceback text when the server sends tracebacks,
        else ``None``.
    """

    def __init__(self, remoteType: str, message: str, remoteTraceback: str | None = None) -> None:
        super().__init__(remoteType, message)
        self.remoteType = remoteType
        self.message = message
        self.remoteTraceback = remoteTraceback

    def __str__(self) -> str:
        return f"{self.remoteType}: {self.message}"


class ZmqSerializationError(ZmqError):
    """
    A value could not be encoded by the RPC serializer (msgpack or JSON): an argument of
    ``RPCClient.callRemote`` or ``notify``, raised or failed on the side that produced it.
    A server whose method returns such a value answers with a ``RemoteError`` of type
    ``UnserializableResult`` instead.
    """


class ZmqProtocolError(ZmqError):
    """
    A message broke the RPC wire format described in ``docs/rpc.md``: an ``RPCClient`` got a
    reply it cannot read (an unknown header or version, an undecodable payload). The call
    it answered fails with this error.
    """
