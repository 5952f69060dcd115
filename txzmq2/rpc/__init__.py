"""
Deferred RPC over ZeroMQ: ``callRemote`` returns a Deferred, as with AMP or Perspective
Broker, and calls spread over every server connected (directly or behind a queue).

::

    class Calculator:
        @expose
        def add(self, a, b):
            return a + b

    server = RPCServer(factory, ZmqEndpoint(ZmqEndpointType.bind, address), Calculator())
    client = RPCClient(factory, ZmqEndpoint(ZmqEndpointType.connect, address), timeout=5.0)
    result = await client.callRemote("add", 1, 2)

The wire format is in ``docs/rpc.md``.
"""

from __future__ import annotations

from txzmq2.errors import RemoteError, ZmqProtocolError, ZmqSerializationError
from txzmq2.rpc._methods import expose
from txzmq2.rpc._wire import (
    BAD_ARGUMENTS,
    BAD_MESSAGE,
    BAD_PAYLOAD,
    BAD_SERIALIZER,
    BAD_VERSION,
    NO_SUCH_METHOD,
    UNSERIALIZABLE_RESULT,
)
from txzmq2.rpc.client import RPCClient
from txzmq2.rpc.serializers import JSONSerializer, MsgpackSerializer, Serializer
from txzmq2.rpc.server import DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_MESSAGE_SIZE, RPCServer

__all__ = [
    "BAD_ARGUMENTS",
    "BAD_MESSAGE",
    "BAD_PAYLOAD",
    "BAD_SERIALIZER",
    "BAD_VERSION",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "NO_SUCH_METHOD",
    "UNSERIALIZABLE_RESULT",
    "JSONSerializer",
    "MsgpackSerializer",
    "RPCClient",
    "RPCServer",
    "RemoteError",
    "Serializer",
    "ZmqProtocolError",
    "ZmqSerializationError",
    "expose",
]
