"""
txZMQ's ``txzmq.router_dealer``, importable as ``txzmq2.router_dealer`` (and as this
module): the same classes as :mod:`txzmq2.routerdealer`. New code imports them from
:mod:`txzmq2`.
"""

from __future__ import annotations

from txzmq2.routerdealer import ZmqDealerConnection, ZmqRouterConnection

__all__ = ["ZmqDealerConnection", "ZmqRouterConnection"]
