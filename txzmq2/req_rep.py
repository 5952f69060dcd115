"""
txZMQ compatibility: ``txzmq.req_rep`` lived here. New code imports from ``txzmq2``.
"""

from txzmq2.errors import ZmqRequestTimeoutError
from txzmq2.reqrep import ZmqREPConnection, ZmqREQConnection

__all__ = ["ZmqREPConnection", "ZmqREQConnection", "ZmqRequestTimeoutError"]
