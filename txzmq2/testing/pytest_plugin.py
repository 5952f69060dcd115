"""
pytest fixtures for code that uses txzmq2 (needs pytest-twisted, which runs the reactor).

- ``zmq_factory``: a :class:`~txzmq2.ZmqFactory` on the running reactor. After the test it
  fails the test if a request is still pending, then shuts the factory down (closing every
  connection) and waits for the context to terminate.
- ``zmq_address``: an :class:`~txzmq2.testing.AddressFactory`; ``zmq_address("ipc")`` gives a
  fresh address on that transport.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from txzmq2.factory import ZmqFactory
from txzmq2.reqrep import ZmqREQConnection
from txzmq2.testing._addresses import AddressFactory


@pytest.fixture
def zmq_factory() -> Iterator[ZmqFactory]:
    """A factory on the running reactor, shut down after the test."""
    import pytest_twisted
    from twisted.internet import reactor

    factory = ZmqFactory(reactor)
    yield factory
    pending = {
        repr(connection): connection.pendingRequests
        for connection in factory.connections
        if isinstance(connection, ZmqREQConnection) and connection.pendingRequests
    }
    pytest_twisted.blockon(factory.shutdown())
    if pending:
        pytest.fail(f"test left requests pending: {pending}")


@pytest.fixture
def zmq_address() -> Iterator[AddressFactory]:
    """Unique inproc, ipc and tcp-loopback addresses for one test."""
    addresses = AddressFactory()
    yield addresses
    addresses.cleanup()
