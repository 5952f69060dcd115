"""
Helpers for testing applications built on txzmq2.

``txzmq2.testing.pytest_plugin`` (registered as a pytest plugin on install) provides the
``zmq_factory`` and ``zmq_address`` fixtures.
"""

from __future__ import annotations

from txzmq2.testing._addresses import AddressFactory

__all__ = ["AddressFactory"]
