"""
Publish-subscribe: PUB, SUB, XPUB and XSUB connections.

A published message is two frames, ``[tag, message]``, or, for txZMQ's peers and plain
single-frame readers, one frame ``tag + topicSep + message``; subscriptions match prefixes of
the first frame. Subscribers decode both.
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


def _bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a {what} is bytes or str, not {type(value).__name__}")


def _topic(tag: bytes | str) -> bytes:
    return _bytes(tag, "subscription tag")


class _Publisher(ZmqConnection):
    """``publish`` for PUB and XPUB."""

    topicSep: bytes | None = b"\0"
    """
    What separates tag and message in a one-frame publication (see :attr:`singleFrame`);
    ``None``: nothing, the frame is ``tag + message``.
    """
    singleFrame: bool = False
    """
    Publish one frame, ``tag + topicSep + message``, instead of the two frames
    ``[tag, message]``: what txZMQ's subscribers and plain single-frame SUB readers expect
    (and one frame per message costs a little less).
    """

    def publish(self, message: bytes | str, tag: bytes | str = b"") -> None:
        """
        Publish ``message`` under ``tag``: the two frames ``[tag, message]``, or one frame
        when :attr:`singleFrame` is set.

        Subscribers whose subscription is a prefix of ``tag`` receive it; at the high-water
        mark libzmq drops it for that subscriber (PUB semantics).

        :param message: the body; a ``str`` is sent UTF-8 encoded.
        :param tag: the topic subscribers match by prefix; a ``str`` is sent UTF-8 encoded.
        """
        body = _bytes(message, "message")
        if self.singleFrame:
            self.send(_topic(tag) + (self.topicSep or b"") + body)
        else:
            self.send([_topic(tag), body])


class _Subscriber(ZmqConnection):
    """Decoding of published messages for SUB and XSUB."""

    topicSep: bytes | None = b"\0"
    """
    Where a one-frame publication is split into tag and message (at its first occurrence),
    as txZMQ publishes them; ``None``: never split, the frame is the message and the tag is
    ``b""``.
    """

    def messageReceived(self, message: Message) -> None:
        if len(message) == 2:
            self.gotMessage(message[1], message[0])
        elif len(message) == 1:
            # txZMQ's publishers send tag + topicSep + message; a plain PUB may send a
            # frame without any separator: then it is all message.
            frame = message[0]
            tag, sep, body = frame.partition(self.topicSep) if self.topicSep else (b"", b"", b"")
            if sep:
                self.gotMessage(body, tag)
            else:
                self.gotMessage(frame, b"")
        else:
            self._log.warn(
                "{connection}: dropped a {count}-frame message; publications are [tag, message]",
                connection=self,
                count=len(message),
            )

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        """
        Called with each publication received: its body and its tag (``b""`` for a one-frame
        publication without :attr:`topicSep`). Override it.

        :param message: the body.
        :param tag: the topic it was published under.
        """
        raise NotImplementedError(f"{type(self).__name__} must override gotMessage")


class ZmqPubConnection(_Publisher):
    """A PUB socket: :meth:`publish` to every matching subscriber."""

    socketType = zmq.PUB


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

    def applySocketOptions(self) -> None:
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
