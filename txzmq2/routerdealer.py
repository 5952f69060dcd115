"""
ROUTER and DEALER connections, and the frame-list framing they share with PAIR.
"""

from __future__ import annotations

from collections.abc import Sequence

import zmq

from txzmq2.connection import Frame, Message, ZmqConnection

__all__ = ["ZmqDealerConnection", "ZmqRouterConnection"]


class _FramesConnection(ZmqConnection):
    """
    Framing of socket types that pass whole frame lists through: ``sendMsg`` and
    ``sendMultipart`` out, ``gotMessage(*frames)`` in.
    """

    def sendMsg(self, message: bytes) -> None:
        """Send a one-frame message."""
        self.send(message)

    def sendMultipart(self, parts: Sequence[Frame]) -> None:
        """Send a multipart message."""
        self.send(parts)

    def messageReceived(self, message: Message) -> None:
        self.gotMessage(*message)

    def gotMessage(self, *frames: bytes) -> None:
        """Called with the frames of each message received. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")


class ZmqDealerConnection(_FramesConnection):
    """
    A DEALER socket: round-robin out, fair-queued in, envelopes passed through untouched.
    """

    socketType = zmq.DEALER


class ZmqRouterConnection(ZmqConnection):
    """
    A ROUTER socket: every message in starts with the sender's identity, every message out
    with the recipient's.

    Options (class attributes, ``None`` keeps libzmq's default):

    - ``routerMandatory``: sending to an unknown identity raises
      :class:`~txzmq2.errors.ZmqUnroutableError` instead of dropping silently.
    - ``probeRouter``: send an empty message to each peer on connect, so a ROUTER peer
      learns this socket's identity before it says anything.
    - ``routerHandover``: a new peer with an identity already in use takes it over.
    """

    socketType = zmq.ROUTER
    routerMandatory: bool | None = None
    probeRouter: bool | None = None
    routerHandover: bool | None = None

    def applySocketOptions(self) -> None:
        for value, option in (
            (self.routerMandatory, zmq.ROUTER_MANDATORY),
            (self.probeRouter, zmq.PROBE_ROUTER),
            (self.routerHandover, zmq.ROUTER_HANDOVER),
        ):
            if value is not None:
                self.socket.set(option, int(value))

    def sendMsg(self, recipientId: bytes, message: bytes) -> None:
        """
        Send a one-frame message to the peer ``recipientId``.

        :raises ZmqUnroutableError: with ``routerMandatory``, when no such peer is connected.
        """
        self.send([recipientId, message])

    def sendMultipart(self, recipientId: bytes, parts: Sequence[Frame]) -> None:
        """
        Send a multipart message to the peer ``recipientId``.

        :raises ZmqUnroutableError: with ``routerMandatory``, when no such peer is connected.
        """
        self.send([recipientId, *parts])

    def messageReceived(self, message: Message) -> None:
        self.gotMessage(message[0], *message[1:])

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        """Called with the sender's identity and the frames of each message. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")
