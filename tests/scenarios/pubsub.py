"""
One small scenario, written once, run under both runners: a SUB subscribed to everything
waits for its subscription (no sleep), receives exactly what is published next, and no
probe of the wait leaks into its callback.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqPubConnection,
    ZmqSubConnection,
)
from txzmq2.testing import AddressFactory, waitForSubscription


async def publishAfterSubscription(factory: ZmqFactory, addresses: AddressFactory) -> list:
    """Run the scenario; returns what the subscriber received."""
    received: list[tuple[bytes, bytes]] = []
    done: Deferred[None] = Deferred()

    class Sub(ZmqSubConnection):
        def gotMessage(self, message: bytes, tag: bytes) -> None:
            received.append((tag, message))
            if message == b"last":
                done.callback(None)

    pub = ZmqPubConnection(factory, ZmqEndpoint(ZmqEndpointType.bind, addresses("tcp")))
    sub = Sub(factory, ZmqEndpoint(ZmqEndpointType.connect, pub.lastEndpoint))
    try:
        sub.subscribe(b"")
        await waitForSubscription(pub, sub)
        for n in range(3):
            pub.publish(b"%d" % n, b"news")
        pub.publish(b"last", b"news")
        await done
    finally:
        # The test helpers check that a test closes what it opened.
        sub.shutdown()
        pub.shutdown()
    return received


EXPECTED = [(b"news", b"0"), (b"news", b"1"), (b"news", b"2"), (b"news", b"last")]
