from __future__ import annotations

import pytest_twisted
from twisted.internet.defer import Deferred

from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqPullConnection, ZmqPushConnection


@pytest_twisted.ensureDeferred
async def test_push_pull_roundtrip(zmq_factory, zmq_address):
    got: Deferred[list[bytes]] = Deferred()

    class Pull(ZmqPullConnection):
        def onPull(self, message):
            got.callback(message)

    pull = Pull(zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, zmq_address("tcp")))
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, pull.lastEndpoint))
    push.push([b"a", b"b"])
    assert await got == [b"a", b"b"]
    push.shutdown()
    pull.shutdown()
