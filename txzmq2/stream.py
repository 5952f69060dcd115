"""
ZmqStreamConnection: a STREAM socket, raw TCP peers (HTTP clients, legacy protocols) with no
ZeroMQ framing on the wire.

Invariant: ``peerConnected`` and ``peerDisconnected`` are called once each per peer, in that
order, and nothing for a peer after its ``peerDisconnected``. libzmq announces a connect and a
peer's hang-up with the same message (an empty frame), told apart here by whether the peer is
known; it announces nothing when this side closes a peer, so :meth:`closePeer` does.
"""

from __future__ import annotations

from typing import Any

import zmq

from txzmq2.connection import Message, ZmqConnection

__all__ = ["ZmqStreamConnection"]

# How many peers closed by this side are remembered, to drop what was already on its way
# from them (read after closePeer); libzmq never reuses a routing id in a socket's life.
_CLOSED_MEMORY = 1024


class ZmqStreamConnection(ZmqConnection):
    """
    A STREAM socket: each TCP peer, accepted (bind) or dialled (connect), gets a routing id;
    bytes arrive as they came off the wire, in chunks of any size, with no message
    boundaries. Override :meth:`peerConnected`, :meth:`dataReceived` and
    :meth:`peerDisconnected`; send with :meth:`sendData`, hang up with :meth:`closePeer`.
    Only ``tcp://`` endpoints work.
    """

    socketType = zmq.STREAM

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes the arguments of :class:`~txzmq2.connection.ZmqConnection`."""
        self.peers: set[bytes] = set()
        """Routing ids of the peers connected now."""
        # Peers closePeer closed, oldest first (a dict keeps insertion order).
        self._closedHere: dict[bytes, None] = {}
        super().__init__(*args, **kwargs)

    def applySocketOptions(self) -> None:
        # The empty-frame connect and disconnect notices are what peerConnected and
        # peerDisconnected are made of (libzmq's default, said explicitly).
        self.socket.set(zmq.STREAM_NOTIFY, 1)

    def messageReceived(self, message: Message) -> None:
        if len(message) != 2:
            self._log.warn(
                "{connection}: STREAM message of {count} frame(s) ignored",
                connection=self,
                count=len(message),
            )
            return
        peerId, data = message
        if peerId in self._closedHere:
            return  # sent before closePeer took effect
        if data:
            self.dataReceived(peerId, data)
        elif peerId in self.peers:
            self.peers.discard(peerId)
            self.peerDisconnected(peerId)
        else:
            self.peers.add(peerId)
            self.peerConnected(peerId)

    def sendData(self, peerId: bytes, data: bytes) -> None:
        """
        Write ``data`` to the peer's TCP stream. Empty data sends nothing (libzmq would take
        it for :meth:`closePeer`).

        :raises ZmqUnroutableError: when no peer has this id (it disconnected).
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        if data:
            self.send([peerId, data])

    def closePeer(self, peerId: bytes) -> None:
        """
        Close the peer's TCP connection once the data sent before has been written.
        :meth:`peerDisconnected` is called before this returns; anything the peer had sent
        that was not delivered yet is dropped.

        :raises ZmqUnroutableError: when no peer has this id.
        :raises ZmqConnectionClosed: after :meth:`shutdown`.
        """
        self.send([peerId, b""])
        self._closedHere[peerId] = None
        if len(self._closedHere) > _CLOSED_MEMORY:
            del self._closedHere[next(iter(self._closedHere))]
        if peerId in self.peers:
            self.peers.discard(peerId)
            self.peerDisconnected(peerId)

    def peerConnected(self, peerId: bytes) -> None:
        """A TCP peer connected (or this socket's connect succeeded). Override it."""

    def dataReceived(self, peerId: bytes, data: bytes) -> None:
        """Bytes from a peer, as TCP delivered them. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override dataReceived")

    def peerDisconnected(self, peerId: bytes) -> None:
        """A peer's TCP connection ended (either side closed it). Override it."""
