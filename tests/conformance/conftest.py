"""
Fixtures of the conformance tests. The reactor is imported lazily: this conftest may load
before pytest-twisted installs the reactor chosen with ``--reactor``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance.support import Peers
from txzmq2 import ZmqFactory


@pytest.fixture
def peers(zmq_factory: ZmqFactory) -> Iterator[Peers]:
    """
    Reference pyzmq sockets on the factory's context. After the test, and before the factory
    terminates the context, every proxy is stopped, every peer thread awaited and every
    socket closed.
    """
    import pytest_twisted

    sockets = Peers(zmq_factory.context)
    yield sockets
    pytest_twisted.blockon(sockets.close())
