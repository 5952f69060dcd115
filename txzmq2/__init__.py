"""
txzmq2: ZeroMQ for Twisted.

Sockets driven by the reactor, request-reply as Deferreds, errors as Failures. Importing this
package does not import (or install) the global reactor.
"""

from __future__ import annotations

from txzmq2._capabilities import ZmqCapabilities, capabilities
from txzmq2.compat._moved import install as _installMovedModules
from txzmq2.connection import Message, ZmqConnection, ZmqSecurity
from txzmq2.draft import (
    ZmqClientConnection,
    ZmqDishConnection,
    ZmqGatherConnection,
    ZmqRadioConnection,
    ZmqScatterConnection,
    ZmqServerConnection,
)
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import (
    RemoteError,
    ZmqConnectionClosed,
    ZmqEndpointError,
    ZmqError,
    ZmqProtocolError,
    ZmqRequestTimeoutError,
    ZmqSendQueueFull,
    ZmqSerializationError,
    ZmqStateError,
    ZmqTimeoutError,
    ZmqUnknownRequestError,
    ZmqUnroutableError,
    ZmqUnsupportedError,
)
from txzmq2.factory import ZmqFactory
from txzmq2.monitor import ZmqMonitorEvent, ZmqSocketMonitor
from txzmq2.pair import ZmqPairConnection
from txzmq2.proxy import ZmqLoadBalancingBroker, ZmqProxy
from txzmq2.pubsub import (
    ZmqPubConnection,
    ZmqSubConnection,
    ZmqXPubConnection,
    ZmqXSubConnection,
)
from txzmq2.pushpull import ZmqPullConnection, ZmqPushConnection
from txzmq2.reqrep import ZmqREPConnection, ZmqREQConnection
from txzmq2.routerdealer import ZmqDealerConnection, ZmqRouterConnection
from txzmq2.socket import ZmqSocket
from txzmq2.stream import ZmqStreamConnection

__version__ = "0.1.0"

# txZMQ programs import txzmq2.req_rep and txzmq2.router_dealer (once txzmq.req_rep, ...):
# those shims live in txzmq2.compat, found under their old names from here on.
_installMovedModules()

__all__ = [
    "Message",
    "RemoteError",
    "ZmqCapabilities",
    "ZmqClientConnection",
    "ZmqConnection",
    "ZmqConnectionClosed",
    "ZmqDealerConnection",
    "ZmqDishConnection",
    "ZmqEndpoint",
    "ZmqEndpointError",
    "ZmqEndpointType",
    "ZmqError",
    "ZmqFactory",
    "ZmqGatherConnection",
    "ZmqLoadBalancingBroker",
    "ZmqMonitorEvent",
    "ZmqPairConnection",
    "ZmqProtocolError",
    "ZmqProxy",
    "ZmqPubConnection",
    "ZmqPullConnection",
    "ZmqPushConnection",
    "ZmqREPConnection",
    "ZmqREQConnection",
    "ZmqRadioConnection",
    "ZmqRequestTimeoutError",
    "ZmqRouterConnection",
    "ZmqScatterConnection",
    "ZmqSecurity",
    "ZmqSendQueueFull",
    "ZmqSerializationError",
    "ZmqServerConnection",
    "ZmqSocket",
    "ZmqSocketMonitor",
    "ZmqStateError",
    "ZmqStreamConnection",
    "ZmqSubConnection",
    "ZmqTimeoutError",
    "ZmqUnknownRequestError",
    "ZmqUnroutableError",
    "ZmqUnsupportedError",
    "ZmqXPubConnection",
    "ZmqXSubConnection",
    "__version__",
    "capabilities",
]
