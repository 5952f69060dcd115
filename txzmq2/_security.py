"""
ZmqSecurity: a connection's CURVE or PLAIN set-up as a value (socket options of one mechanism).
"""

from __future__ import annotations

from typing import NamedTuple

import zmq
from zmq.utils import z85

__all__ = ["ZmqSecurity"]


def _curveKey(key: bytes | str, name: str) -> bytes:
    """A CURVE key as libzmq takes it: 40 characters of Z85, or 32 raw bytes."""
    try:
        data = key.encode("ascii") if isinstance(key, str) else bytes(key)
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Z85 text") from None
    if len(data) == 40:
        try:
            z85.decode(data)
        except (ValueError, KeyError):
            raise ValueError(f"{name} is not valid Z85 text") from None
        return data
    if len(data) == 32:
        return data
    raise ValueError(f"{name} must be 40 characters of Z85 or 32 raw bytes, not {len(data)}")


def utf8(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


class ZmqSecurity(NamedTuple):
    """
    How a connection authenticates and encrypts: the socket options of one mechanism.
    Give it to a connection's constructor (``security=``), or to the Majordomo and RPC
    classes, which apply it to every socket they make. Build one with the class methods.
    """

    options: tuple[tuple[int, int | bytes], ...]

    @classmethod
    def curveServer(
        cls, publicKey: bytes | str, secretKey: bytes | str, zapDomain: str | None = None
    ) -> ZmqSecurity:
        """Serve CURVE with this key pair (see :meth:`ZmqConnection.useCurveServer`).

        :raises ValueError: for a malformed key."""
        return cls(
            (
                (zmq.CURVE_SERVER, 1),
                (zmq.CURVE_PUBLICKEY, _curveKey(publicKey, "publicKey")),
                (zmq.CURVE_SECRETKEY, _curveKey(secretKey, "secretKey")),
                *_zapDomain(zapDomain),
            )
        )

    @classmethod
    def curveClient(
        cls, publicKey: bytes | str, secretKey: bytes | str, serverKey: bytes | str
    ) -> ZmqSecurity:
        """Talk CURVE to the server with ``serverKey`` (see
        :meth:`ZmqConnection.useCurveClient`).

        :raises ValueError: for a malformed key."""
        return cls(
            (
                (zmq.CURVE_PUBLICKEY, _curveKey(publicKey, "publicKey")),
                (zmq.CURVE_SECRETKEY, _curveKey(secretKey, "secretKey")),
                (zmq.CURVE_SERVERKEY, _curveKey(serverKey, "serverKey")),
            )
        )

    @classmethod
    def plainServer(cls, zapDomain: str | None = None) -> ZmqSecurity:
        """Accept PLAIN clients (see :meth:`ZmqConnection.usePlainServer`)."""
        return cls(((zmq.PLAIN_SERVER, 1), *_zapDomain(zapDomain)))

    @classmethod
    def plainClient(cls, username: str | bytes, password: str | bytes) -> ZmqSecurity:
        """Log in to PLAIN servers (see :meth:`ZmqConnection.usePlainClient`)."""
        return cls(((zmq.PLAIN_USERNAME, utf8(username)), (zmq.PLAIN_PASSWORD, utf8(password))))


def _zapDomain(zapDomain: str | None) -> tuple[tuple[int, bytes], ...]:
    return () if zapDomain is None else ((zmq.ZAP_DOMAIN, utf8(zapDomain)),)
