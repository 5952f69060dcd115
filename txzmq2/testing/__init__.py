"""
Helpers for testing applications built on txzmq2.

- ``ZmqTestCase``: a trial test case with a factory and addresses, cleaned up after each
  test.
- The pytest plugin ``txzmq2.testing.pytest_plugin`` (registered on install): the
  ``zmq_factory`` and ``zmq_address`` fixtures.
- ``waitForSubscription(publisher, subscriber)``: wait until a subscription works.
- ``AddressFactory``: unique inproc, ipc and tcp-loopback addresses.

See ``docs/testing.md``.
"""

from __future__ import annotations

from txzmq2.testing._addresses import AddressFactory
from txzmq2.testing._subscription import waitForSubscription
from txzmq2.testing._trial import ZmqTestCase

__all__ = ["AddressFactory", "ZmqTestCase", "waitForSubscription"]
