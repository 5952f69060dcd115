"""Waiting for a PUB/SUB subscription to take effect, without sleeping."""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from txzmq2._reactor import asReactorTime
from txzmq2.connection import Message, ZmqConnection
from txzmq2.errors import ZmqTimeoutError

__all__ = ["waitForSubscription"]

_PROBE_PREFIX = b"\x00txzmq2-probe-"
_probes = itertools.count(1)


async def waitForSubscription(
    publisher: Any, subscriber: ZmqConnection, timeout: float = 5.0
) -> None:
    """
    Return once the subscriptions ``subscriber`` has made so far have reached ``publisher``
    (the slow-joiner problem), so that what is published next is not dropped.

    ``publisher`` is a PUB or XPUB connection (anything with ``publish(message, tag)``);
    ``subscriber`` a SUB or XSUB connection. The subscriber subscribes to a private probe
    tag, the publisher publishes probes until one arrives, and then a last probe marks the
    end of the stream so that no probe ever reaches the subscriber's ``gotMessage``.
    ZeroMQ applies a subscriber's subscriptions in order, so once the probe's subscription
    works, every earlier one does too.

    :raises ZmqTimeoutError: when no probe arrives within ``timeout`` seconds.
    """
    reactor = subscriber.factory.reactor
    # The trailing "/" keeps probe 1 from being a prefix of probe 10.
    probe = _PROBE_PREFIX + b"%d/" % next(_probes)
    arrived: Deferred[None] = Deferred()
    finished: Deferred[None] = Deferred()
    previous = subscriber.receiver
    deliver = previous or subscriber.messageReceived

    def intercept(message: Message) -> None:
        # A probe is [probe, body], or one frame probe + topicSep + body from a publisher
        # with singleFrame set.
        if not message or not message[0].startswith(probe):
            deliver(message)
        elif message[-1].endswith(b"end"):
            finished.callback(None)
        elif not arrived.called:
            arrived.callback(None)

    subscriber.receiver = intercept
    subscriber.subscribe(probe)  # type: ignore[attr-defined]
    sender = LoopingCall(publisher.publish, b"probe", probe)
    sender.clock = asReactorTime(reactor)
    sender.start(0.001)
    try:
        arrived.addTimeout(timeout, asReactorTime(reactor))
        try:
            await arrived
        except Exception:
            raise ZmqTimeoutError(
                f"subscription did not reach the publisher within {timeout} s"
            ) from None
        sender.stop()
        # Probes still in flight come before this one; swallow them all.
        publisher.publish(b"end", probe)
        finished.addTimeout(timeout, asReactorTime(reactor))
        await finished
    finally:
        if sender.running:
            sender.stop()
        if subscriber.receiver == intercept:
            subscriber.receiver = previous
        if not subscriber.closed:
            subscriber.unsubscribe(probe)  # type: ignore[attr-defined]
