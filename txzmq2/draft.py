"""
ZeroMQ's draft socket types: CLIENT/SERVER, RADIO/DISH, SCATTER/GATHER.

They exist only where libzmq was built with drafts and pyzmq with its draft API
(``txzmq2.capabilities().draftAPI``). Invariant: no socket of a draft type is ever made
otherwise; the constructor refuses first, because a libzmq without drafts aborts the whole
process when such a socket meets a tcp peer.

Their messages are single-frame and carry a routing id (SERVER) or a group (RADIO, DISH)
beside the data. Inside the connection's outbound queue such a message is two frames,
``[routing id or group, data]``, put back together into one libzmq message at the send.
"""

from __future__ import annotations

from typing import Any, cast

import zmq

from txzmq2._capabilities import creatingSocketOfType
from txzmq2.connection import Message, ZmqConnection

__all__ = [
    "ZmqClientConnection",
    "ZmqDishConnection",
    "ZmqGatherConnection",
    "ZmqRadioConnection",
    "ZmqScatterConnection",
    "ZmqServerConnection",
]


def _group(group: bytes | str) -> bytes:
    return group.encode("utf-8") if isinstance(group, str) else bytes(group)


class _DraftConnection(ZmqConnection):
    """A connection of a draft socket type: refused before any socket exists without drafts."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Takes the arguments of :class:`~txzmq2.connection.ZmqConnection`.

        :raises ZmqUnsupportedError: without the draft API (nothing is created).
        """
        with creatingSocketOfType(self.socketType):
            super().__init__(*args, **kwargs)


class _TaggedConnection(_DraftConnection):
    """
    Draft types whose messages carry a tag beside the data (SERVER: a routing id, RADIO
    and DISH: a group). Queued messages are ``[tag, data]``; :meth:`_tagFrame` sets the
    tag on the one frame libzmq gets, :meth:`_tagOf` reads it from the frame received.
    """

    _readsFrames = True  # _tagOf needs the zmq.Frame being delivered

    def _sendFrames(self, frames: list[bytes]) -> None:
        tag, data = frames
        frame = zmq.Frame(data)
        self._tagFrame(frame, tag)
        super()._sendFrames([frame])  # type: ignore[list-item]

    def _tagFrame(self, frame: zmq.Frame, tag: bytes) -> None:
        raise NotImplementedError(f"{type(self).__name__} sends nothing")

    def _currentTag(self) -> bytes:
        # The frame being delivered, which the read pass keeps for messageProperty.
        frame = self._engine.deliveringFrame
        if frame is None:
            raise RuntimeError(f"{self!r}: no message is being delivered")
        # A zmq.Frame: these connections read on the pure-Python path (_readsFrames).
        return self._tagOf(cast(zmq.Frame, frame))

    def _tagOf(self, frame: zmq.Frame) -> bytes:
        raise NotImplementedError(f"{type(self).__name__} receives nothing")


class ZmqClientConnection(_DraftConnection):
    """
    A CLIENT socket (draft): talks to SERVER peers, round-robin out, single-frame messages
    in both directions. Thread-safe in libzmq, used from the reactor thread here.
    """

    socketType = zmq.CLIENT

    def sendMsg(self, data: bytes) -> None:
        """Send one single-frame message to a SERVER."""
        self.send(data)

    def messageReceived(self, message: Message) -> None:
        self.gotMessage(message[0])

    def gotMessage(self, data: bytes) -> None:
        """Called with each message from a SERVER. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")


class ZmqServerConnection(_TaggedConnection):
    """
    A SERVER socket (draft): each CLIENT peer has a routing id (a positive ``int``) that
    comes with its messages and addresses the answers.
    """

    socketType = zmq.SERVER

    def sendMsg(self, routingId: int, data: bytes) -> None:
        """
        Send one single-frame message to the CLIENT with ``routingId``.

        :raises ZmqUnroutableError: when no connected peer has this routing id.
        """
        self.send([routingId.to_bytes(4, "big"), data])

    def _tagFrame(self, frame: zmq.Frame, tag: bytes) -> None:
        frame.routing_id = int.from_bytes(tag, "big")

    def _tagOf(self, frame: zmq.Frame) -> bytes:
        return int(frame.routing_id).to_bytes(4, "big")

    def messageReceived(self, message: Message) -> None:
        self.gotMessage(int.from_bytes(self._currentTag(), "big"), message[0])

    def gotMessage(self, routingId: int, data: bytes) -> None:
        """Called with each message and the routing id of the CLIENT that sent it."""
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")


class ZmqRadioConnection(_TaggedConnection):
    """
    A RADIO socket (draft): publishes to the DISH peers that joined a message's group,
    over tcp or udp (``udp://group:port`` reaches multicast DISHes). Drops at the
    high-water mark, as PUB does.
    """

    socketType = zmq.RADIO

    def publish(self, group: bytes | str, data: bytes) -> None:
        """Send ``data`` to the DISH peers in ``group`` (at most 255 bytes of UTF-8)."""
        self.send([_group(group), data])

    def _tagFrame(self, frame: zmq.Frame, tag: bytes) -> None:
        frame.group = tag.decode("utf-8")


class ZmqDishConnection(_TaggedConnection):
    """
    A DISH socket (draft): receives what RADIO peers publish to the groups it joined.
    """

    socketType = zmq.DISH

    def join(self, group: bytes | str) -> None:
        """Receive the messages of ``group`` from now on."""
        self._checkOpen()
        try:
            self.socket.join(_group(group))
        finally:
            # As every socket call: libzmq's pending commands run, the FD's edge may go.
            self._schedulePass()

    def leave(self, group: bytes | str) -> None:
        """Stop receiving the messages of ``group``."""
        self._checkOpen()
        try:
            self.socket.leave(_group(group))
        finally:
            self._schedulePass()

    def _tagOf(self, frame: zmq.Frame) -> bytes:
        return _group(frame.group)

    def messageReceived(self, message: Message) -> None:
        self.gotMessage(self._currentTag(), message[0])

    def gotMessage(self, group: bytes, data: bytes) -> None:
        """Called with each message of a joined group. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")


class ZmqScatterConnection(_DraftConnection):
    """A SCATTER socket (draft): single-frame messages round-robin to GATHER peers."""

    socketType = zmq.SCATTER

    def sendMsg(self, data: bytes) -> None:
        """Send one single-frame message to the next GATHER peer."""
        self.send(data)


class ZmqGatherConnection(_DraftConnection):
    """A GATHER socket (draft): single-frame messages fair-queued from SCATTER peers."""

    socketType = zmq.GATHER

    def messageReceived(self, message: Message) -> None:
        self.gotMessage(message[0])

    def gotMessage(self, data: bytes) -> None:
        """Called with each message. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")
