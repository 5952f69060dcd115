"""
txZMQ's ``txzmq.req_rep``, importable as ``txzmq2.req_rep`` (and as this module): the same
classes as :mod:`txzmq2.reqrep`, and txZMQ's deprecated ``ZmqXREQConnection`` and
``ZmqXREPConnection``. New code imports from :mod:`txzmq2`.
"""

from __future__ import annotations

from incremental import Version
from twisted.python.deprecate import deprecated

from txzmq2.endpoint import ZmqEndpoint
from txzmq2.errors import ZmqRequestTimeoutError
from txzmq2.factory import ZmqFactory
from txzmq2.reqrep import ZmqREPConnection, ZmqREQConnection

__all__ = [
    "ZmqREPConnection",
    "ZmqREQConnection",
    "ZmqRequestTimeoutError",
    "ZmqXREPConnection",
    "ZmqXREQConnection",
]

# txZMQ deprecated both names long ago; txzmq2 keeps them, deprecated from its first release.
_DEPRECATED = Version("txzmq2", 0, 1, 0)


class ZmqXREQConnection(ZmqREQConnection):
    """
    Deprecated: txZMQ's old name of :class:`~txzmq2.ZmqREQConnection`, with txZMQ's
    constructor (any number of endpoints, no identity). Constructing one warns.
    """

    @deprecated(_DEPRECATED, "txzmq2.ZmqREQConnection or txzmq2.ZmqDealerConnection")
    def __init__(self, factory: ZmqFactory, *endpoints: ZmqEndpoint) -> None:
        """
        :param factory: the factory of the connection.
        :param endpoints: where to bind or connect.
        """
        super().__init__(factory)
        self.addEndpoints(list(endpoints))


class ZmqXREPConnection(ZmqREPConnection):
    """
    Deprecated: txZMQ's old name of :class:`~txzmq2.ZmqREPConnection`, with txZMQ's
    constructor (any number of endpoints, no identity). Constructing one warns.
    """

    @deprecated(_DEPRECATED, "txzmq2.ZmqREPConnection or txzmq2.ZmqRouterConnection")
    def __init__(self, factory: ZmqFactory, *endpoints: ZmqEndpoint) -> None:
        """
        :param factory: the factory of the connection.
        :param endpoints: where to bind or connect.
        """
        super().__init__(factory)
        self.addEndpoints(list(endpoints))
