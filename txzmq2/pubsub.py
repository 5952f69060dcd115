"""
Publish-subscribe: PUB, SUB, XPUB and XSUB connections.

On the wire a published message is two frames, ``[tag, message]``; subscriptions match
prefixes of the first frame.
"""

from __future__ import annotations

import zmq

from txzmq2.connection import Message, ZmqConnection

__all__ = [
    "ZmqPubConnection",
    "ZmqSubConnection",
    "ZmqXPubConnection",
    "ZmqXSubConnection",
]


def _topic(tag: bytes | str) -> bytes:
    if isinstance(tag, str):
        return tag.encode("utf-8")
    if isinstance(tag, (bytes, bytearray, memoryview)):
        return bytes(tag)
    raise TypeError(f"a subscription tag is bytes or str, not {type(tag).__name__}")


class _Publisher(ZmqConnection):
    """``publish`` for PUB and XPUB."""

    def publish(self, message: bytes, tag: bytes | str = b"") -> None:
        """
        Publish ``message`` under ``tag``: sends the two frames ``[tag, message]``.

        Subscribers whose subscription is a prefix of ``tag`` receive it; at the high-water
        mark libzmq drops it for that subscriber (PUB semantics).
        """
        self.send([_topic(tag), message])


class _Subscriber(ZmqConnection):
    """Decoding of published messages for SUB and XSUB."""

    def messageReceived(self, message: Message) -> None:
        if len(message) == 2:
            self.gotMessage(message[1], message[0])
        elif len(message) == 1:
            # A peer that does not frame its tag (a plain PUB sending one frame).
            self.gotMessage(message[0], b"")
        else:
            self._log.warn(
                "{connection}: dropped a {count}-frame message; publications are [tag, message]",
                connection=self,
                count=len(message),
            )

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        """
        Called with each publication received: its body and its tag (``b""`` for a one-frame
        publication). Override it.
        """
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")


class ZmqPubConnection(_Publisher):
    """A PUB socket: :meth:`publish` to every matching subscriber."""

    socketType = zmq.PUB
    receives = False


class ZmqSubConnection(_Subscriber):
    """
    A SUB socket: :meth:`subscribe` to tags, receive them in :meth:`gotMessage`.

    ZeroMQ subscribers are slow joiners: publications sent before a subscription reaches
    the publisher are dropped by design.
    """

    socketType = zmq.SUB

    def subscribe(self, tag: bytes | str) -> None:
        """Receive publications whose tag starts with ``tag`` (``b""`` means all)."""
        self.setSocketOption(zmq.SUBSCRIBE, _topic(tag))

    def unsubscribe(self, tag: bytes | str) -> None:
        """Undo one earlier :meth:`subscribe` of the same ``tag``."""
        self.setSocketOption(zmq.UNSUBSCRIBE, _topic(tag))


class ZmqXPubConnection(_Publisher):
    """
    An XPUB socket: publishes like PUB, and sees subscribers' (un)subscriptions in
    :meth:`gotSubscription`.
    """

    socketType = zmq.XPUB
    xpubVerbose: bool | None = None
    """``ZMQ_XPUB_VERBOSE``: pass on every subscription, not only the first of each tag."""

    def _applyTypeOptions(self) -> None:
        if self.xpubVerbose is not None:
            self.socket.set(zmq.XPUB_VERBOSE, int(self.xpubVerbose))

    def messageReceived(self, message: Message) -> None:
        frame = message[0]
        if len(message) != 1 or not frame or frame[0] not in (0, 1):
            self._log.warn(
                "{connection}: dropped a message that is not a subscription", connection=self
            )
            return
        self.gotSubscription(frame[1:], frame[0] == 1)

    def gotSubscription(self, tag: bytes, subscribed: bool) -> None:
        """
        Called when a subscriber subscribes to (``subscribed`` true) or unsubscribes from
        ``tag``. The default ignores it.
        """


class ZmqXSubConnection(_Subscriber):
    """
    An XSUB socket: receives like SUB; subscriptions are messages it sends upstream.
    """

    socketType = zmq.XSUB

    def subscribe(self, tag: bytes | str) -> None:
        """Send a subscription to ``tag`` upstream."""
        self.send(b"\x01" + _topic(tag))

    def unsubscribe(self, tag: bytes | str) -> None:
        """Send an unsubscription from ``tag`` upstream."""
        self.send(b"\x00" + _topic(tag))
