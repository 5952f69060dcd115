"""
txZMQ's ``txzmq.req_rep``, importable as ``txzmq2.req_rep`` (and as this module): the same
classes as :mod:`txzmq2.reqrep`. New code imports them from :mod:`txzmq2`.
"""

from __future__ import annotations

from txzmq2.errors import ZmqRequestTimeoutError
from txzmq2.reqrep import ZmqREPConnection, ZmqREQConnection

__all__ = ["ZmqREPConnection", "ZmqREQConnection", "ZmqRequestTimeoutError"]
