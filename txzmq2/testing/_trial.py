"""A trial test case with a ZeroMQ factory and addresses."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from txzmq2.factory import ZmqFactory
from txzmq2.reqrep import ZmqREQConnection
from txzmq2.testing._addresses import AddressFactory

__all__ = ["ZmqTestCase"]


class ZmqTestCase(unittest.TestCase):
    """
    A ``twisted.trial`` test case giving each test ``self.zmqFactory`` (a factory on the
    global reactor) and ``self.zmqAddress(transport)`` (fresh inproc, ipc or tcp-loopback
    addresses). After the test the factory is shut down (every connection closed, the
    context terminated, waited for) and the test fails if a request was left pending.
    """

    zmqFactory: ZmqFactory
    zmqAddress: AddressFactory

    def setUp(self) -> Any:
        from twisted.internet import reactor

        result = super().setUp()
        self.zmqFactory = ZmqFactory(reactor)
        self.zmqAddress = AddressFactory()
        self.addCleanup(self._shutDownZmq)
        return result

    def _shutDownZmq(self) -> Deferred[None]:
        pending = {
            repr(connection): connection.pendingRequests
            for connection in self.zmqFactory.connections
            if isinstance(connection, ZmqREQConnection) and connection.pendingRequests
        }
        done = self.zmqFactory.shutdown()

        def check(_: None) -> None:
            self.zmqAddress.cleanup()
            if pending:
                self.fail(f"test left requests pending: {pending}")

        return done.addCallback(check)
