"""
Pipelines: PUSH and PULL connections.
"""

from __future__ import annotations

import zmq

from txzmq2.connection import Message, MessageLike, ZmqConnection

__all__ = ["ZmqPullConnection", "ZmqPushConnection"]


class ZmqPushConnection(ZmqConnection):
    """A PUSH socket: messages go round-robin to connected PULL peers."""

    socketType = zmq.PUSH

    def push(self, message: MessageLike) -> None:
        """
        Send ``message`` (one frame or a sequence of frames). The txZMQ name for
        :meth:`~txzmq2.connection.ZmqConnection.send`, kept for migration.
        """
        self.send(message)


class ZmqPullConnection(ZmqConnection):
    """A PULL socket: messages fair-queued from PUSH peers arrive in :meth:`onPull`."""

    socketType = zmq.PULL

    def messageReceived(self, message: Message) -> None:
        self.onPull(message)

    def onPull(self, message: Message) -> None:
        """Called with each message (its list of frames). Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override onPull")
