"""
Endpoints: where a connection binds or connects.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

__all__ = ["ZmqEndpoint", "ZmqEndpointType"]

# Transports libzmq knows; an address outside these is almost certainly a typo
# ("tpc://...") and libzmq's own error for it ("Protocol not supported") is unhelpful.
_TRANSPORTS = frozenset(
    {"tcp", "ipc", "inproc", "pgm", "epgm", "norm", "tipc", "vmci", "ws", "wss", "udp"}
)


class ZmqEndpointType(str, Enum):
    """
    Whether an endpoint is bound (listens) or connected (dials out).

    The members compare equal to the strings ``"bind"`` and ``"connect"``, as txZMQ's
    plain class attributes did.
    """

    bind = "bind"
    connect = "connect"


class ZmqEndpoint(NamedTuple):
    """
    One address a connection binds to or connects to.

    :param type: :class:`ZmqEndpointType.bind` or :class:`ZmqEndpointType.connect`.
    :param address: a ZeroMQ address such as ``"tcp://127.0.0.1:*"``,
        ``"ipc:///tmp/sock"`` or ``"inproc://name"``.
    """

    type: ZmqEndpointType
    address: str

    def validate(self) -> None:
        """
        Check the endpoint's shape before it reaches libzmq.

        :raises ValueError: when the type is neither bind nor connect, or the address is not
            a string of the form ``transport://rest`` with a transport libzmq knows.
        """
        if self.type not in (ZmqEndpointType.bind, ZmqEndpointType.connect):
            raise ValueError(f"endpoint type must be 'bind' or 'connect', not {self.type!r}")
        if not isinstance(self.address, str):
            raise ValueError(f"endpoint address must be a str, not {type(self.address).__name__}")
        transport, sep, rest = self.address.partition("://")
        if not sep or not rest:
            raise ValueError(f"endpoint address {self.address!r} is not 'transport://address'")
        if transport not in _TRANSPORTS:
            raise ValueError(
                f"endpoint address {self.address!r}: unknown transport {transport!r}"
                f" (expected one of {', '.join(sorted(_TRANSPORTS))})"
            )
