"""A trial test case with a ZeroMQ factory and addresses."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from txzmq2.factory import ZmqFactory
from txzmq2.testing._addresses import AddressFactory
from txzmq2.testing._checks import leftovers

__all__ = ["ZmqTestCase"]


class ZmqTestCase(unittest.TestCase):
    """
    A ``twisted.trial`` test case giving each test ``self.zmqFactory`` (a factory on the
    global reactor) and ``self.zmqAddress(transport)`` (fresh inproc, ipc or tcp-loopback
    addresses). After the test (and after its own cleanups) the factory is shut down (every
    connection closed, the context terminated, waited for), and the test fails if a request
    was left pending or, unless ``allowOpenConnections`` is set, a connection left open.
    """

    zmqFactory: ZmqFactory
    zmqAddress: AddressFactory
    allowOpenConnections: bool = False
    """Set on a test case class to let its tests end with connections still open."""

    def setUp(self) -> Any:
        from twisted.internet import reactor

        result = super().setUp()
        self.zmqFactory = ZmqFactory(reactor)
        self.zmqAddress = AddressFactory()
        # Registered first, so it runs after every cleanup the test adds.
        self.addCleanup(self._shutDownZmq)
        return result

    def _shutDownZmq(self) -> Deferred[None]:
        problems = leftovers(self.zmqFactory, openConnections=not self.allowOpenConnections)
        done = self.zmqFactory.shutdown()

        def check(_: None) -> None:
            self.zmqAddress.cleanup()
            if problems:
                self.fail(problems)

        return done.addCallback(check)
