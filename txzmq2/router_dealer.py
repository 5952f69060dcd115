"""
txZMQ compatibility: ``txzmq.router_dealer`` lived here. New code imports from ``txzmq2``.
"""

from txzmq2.routerdealer import ZmqDealerConnection, ZmqRouterConnection

__all__ = ["ZmqDealerConnection", "ZmqRouterConnection"]
