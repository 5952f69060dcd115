"""Addresses as the ``txzmq2.ha`` classes take them: a string, or a ``ZmqEndpoint``."""

from __future__ import annotations

from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType

__all__ = ["asEndpoint"]


def asEndpoint(address: str | ZmqEndpoint, kind: ZmqEndpointType) -> ZmqEndpoint:
    """
    ``address`` as an endpoint: a string is bound or connected as ``kind`` says; an
    endpoint is kept as given.

    :raises ValueError: for a malformed address.
    """
    made = ZmqEndpoint(kind, address) if isinstance(address, str) else ZmqEndpoint(*address)
    made.validate()
    return made
