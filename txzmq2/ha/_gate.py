"""
The seam between a Binary Star node and the connections it serves: every message such a
connection reads passes a gate first, which may count it as a client's vote and may drop it.

Until the core offers a public receiver seam, the gate wraps the connection's
``messageReceived`` on the instance (the one place the engine hands over whole messages),
the way :class:`~txzmq2.ZmqProxy` composes its sockets; this module is the only place that
knows it, so moving onto the seam changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from txzmq2.connection import Message, ZmqConnection
from txzmq2.errors import ZmqStateError
from txzmq2.ha.freelance import FreelanceServer
from txzmq2.mdp import MajordomoBroker
from txzmq2.mdp._protocol import CLIENT

__all__ = ["Gate", "attach", "connectionOf", "isRequest"]

Gate = Callable[[Message], bool]
"""Called with each whole message before the connection sees it; False drops it."""


class _HasConnection(Protocol):
    connection: ZmqConnection


def connectionOf(served: ZmqConnection | _HasConnection) -> ZmqConnection:
    """The socket a served object reads from: itself, or its ``connection`` (a broker's)."""
    if isinstance(served, ZmqConnection):
        return served
    connection = getattr(served, "connection", None)
    if not isinstance(connection, ZmqConnection):
        raise TypeError(
            f"cannot serve {served!r}: neither a connection nor an object with one"
            " (a MajordomoBroker, a FreelanceServer)"
        )
    return connection


def attach(connection: ZmqConnection, gate: Gate) -> None:
    """
    Put ``gate`` in front of ``connection``'s deliveries (its ``receiver`` seam).

    :raises ZmqStateError: when the connection already has a gate (one node serves it).
    """
    if getattr(connection, "_haGated", False):
        raise ZmqStateError(f"{connection!r} is already served by a Binary Star node")
    deliver = connection.receiver or connection.messageReceived

    def gated(message: Message) -> None:
        if gate(message):
            deliver(message)

    connection.receiver = gated
    connection._haGated = True  # type: ignore[attr-defined]


def isRequest(served: object) -> Callable[[Message], bool]:
    """
    Which messages of ``served`` are client requests (votes, dropped while passive); the
    rest (a Freelance client's pings, a Majordomo worker's commands) always pass, since
    a node must stay reachable for them whatever its state.
    """
    if isinstance(served, FreelanceServer):
        return FreelanceServer.isRequest
    if isinstance(served, MajordomoBroker):
        # [client identity, b"", MDPC01, ...]: only a client's REQUEST is a vote.
        return lambda message: len(message) > 2 and message[2] == CLIENT
    return lambda message: True
