"""
Socket options a connection sets from its class attributes, before any bind or connect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import zmq

from txzmq2._security import utf8

if TYPE_CHECKING:
    from txzmq2.connection import ZmqConnection

__all__ = ["applyOptions"]

# Class attribute -> socket option, applied (when not None) before any bind or connect.
_SOCKET_OPTIONS: tuple[tuple[str, int], ...] = (
    ("sendHighWaterMark", zmq.SNDHWM),
    ("recvHighWaterMark", zmq.RCVHWM),
    ("maxMessageSize", zmq.MAXMSGSIZE),
    ("tcpKeepalive", zmq.TCP_KEEPALIVE),
    ("tcpKeepaliveCount", zmq.TCP_KEEPALIVE_CNT),
    ("tcpKeepaliveIdle", zmq.TCP_KEEPALIVE_IDLE),
    ("tcpKeepaliveInterval", zmq.TCP_KEEPALIVE_INTVL),
    ("reconnectInterval", zmq.RECONNECT_IVL),
    ("reconnectIntervalMax", zmq.RECONNECT_IVL_MAX),
    ("allowLoopbackMulticast", zmq.MULTICAST_LOOP),
    ("multicastRate", zmq.RATE),
    ("immediate", zmq.IMMEDIATE),
    ("heartbeatInterval", zmq.HEARTBEAT_IVL),
    ("heartbeatTimeout", zmq.HEARTBEAT_TIMEOUT),
    ("heartbeatTtl", zmq.HEARTBEAT_TTL),
    ("zapDomain", zmq.ZAP_DOMAIN),
)


def applyOptions(connection: ZmqConnection, socket: zmq.Socket[bytes]) -> None:
    """
    Set ``socket``'s options from ``connection``: linger, high-water marks, the options of
    :data:`_SOCKET_OPTIONS` that are not ``None``, routing id, security, then the socket
    type's own (:meth:`~txzmq2.connection.ZmqConnection.applySocketOptions`).
    """
    socket.set(zmq.LINGER, connection.factory.lingerPeriod)
    if connection.highWaterMark is not None:
        socket.set(zmq.SNDHWM, connection.highWaterMark)
        socket.set(zmq.RCVHWM, connection.highWaterMark)
    for attribute, option in _SOCKET_OPTIONS:
        value = getattr(connection, attribute)
        if value is not None:
            socket.set(option, utf8(value) if isinstance(value, str) else value)
    if connection.identity is not None:
        socket.set(zmq.ROUTING_ID, connection.identity)
    if connection.security is not None:
        for option, setting in connection.security.options:
            socket.set(option, setting)
    connection.applySocketOptions()
