"""
Endpoints: where a connection binds or connects.

An endpoint is checked before libzmq sees it: libzmq's own errors for a typo'd transport or a
transport it was built without are both "Protocol not supported".
"""

from __future__ import annotations

import re
from enum import Enum
from typing import NamedTuple

from txzmq2._capabilities import TRANSPORTS, capabilities
from txzmq2.errors import ZmqUnsupportedError

__all__ = ["ZmqEndpoint", "ZmqEndpointType"]

# A port is a number, or "*" for one the OS chooses; a host a name, an IPv4 address or an
# IPv6 address in brackets.
_HOST_PORT = r"(?:\[[^\]]+\]|[^:;/\[\]]+):(?P<port>\*|[0-9]{1,5})"
# The address shapes of the transports that have one libzmq insists on; the others (ipc,
# inproc, tipc, norm's several forms) are left to libzmq.
_SHAPES: dict[str, tuple[re.Pattern[str], str]] = {
    # Optionally after a source address: "tcp://127.0.0.1:0;server:5555".
    "tcp": (re.compile(rf"(?:[^;]+;)?{_HOST_PORT}"), "host:port"),
    "udp": (re.compile(rf"(?:[^;]+;)?{_HOST_PORT}"), "host:port"),
    # The websocket's HTTP resource follows the port.
    "ws": (re.compile(rf"{_HOST_PORT}(?:/.*)?"), "host:port[/path]"),
    "wss": (re.compile(rf"{_HOST_PORT}(?:/.*)?"), "host:port[/path]"),
    # The interface (name or address) to send from, the multicast group, the port.
    "pgm": (re.compile(r"[^;:]+;[^;:]+:(?P<port>[0-9]{1,5})"), "interface;group:port"),
    "epgm": (re.compile(r"[^;:]+;[^;:]+:(?P<port>[0-9]{1,5})"), "interface;group:port"),
    "vmci": (re.compile(r"(?:\*|[0-9]+):(?P<port>\*|[0-9]{1,5})"), "cid:port"),
}


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
            a string of the form ``transport://rest`` with a transport libzmq knows, in the
            shape that transport takes (``epgm://interface;group:port``, ``ws://host:port/path``).
        :raises ZmqUnsupportedError: when the installed libzmq lacks the transport (pgm,
            norm and ws are missing from pyzmq's wheels; see :func:`txzmq2.capabilities`).
        """
        if self.type not in (ZmqEndpointType.bind, ZmqEndpointType.connect):
            raise ValueError(f"endpoint type must be 'bind' or 'connect', not {self.type!r}")
        if not isinstance(self.address, str):
            raise ValueError(f"endpoint address must be a str, not {type(self.address).__name__}")
        transport, sep, rest = self.address.partition("://")
        if not sep or not rest:
            raise ValueError(f"endpoint address {self.address!r} is not 'transport://address'")
        if transport not in TRANSPORTS:
            raise ValueError(
                f"endpoint address {self.address!r}: unknown transport {transport!r}"
                f" (expected one of {', '.join(sorted(TRANSPORTS))})"
            )
        shape = _SHAPES.get(transport)
        if shape is not None:
            pattern, form = shape
            match = pattern.fullmatch(rest)
            if match is None or (match["port"] != "*" and int(match["port"]) > 65535):
                raise ValueError(
                    f"endpoint address {self.address!r} is not '{transport}://{form}'"
                )
        available = capabilities()
        if transport not in available.transports:
            raise ZmqUnsupportedError(
                f"endpoint address {self.address!r}: this libzmq ({available.libzmq}) has no"
                f" {transport!r} transport; see docs/transports.md for a libzmq that has it"
            )
