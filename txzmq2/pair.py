"""
PAIR connections: one exclusive peer, frames in and out unchanged.
"""

from __future__ import annotations

import zmq

from txzmq2.routerdealer import _FramesConnection

__all__ = ["ZmqPairConnection"]


class ZmqPairConnection(_FramesConnection):
    """
    A PAIR socket: ``sendMsg``/``sendMultipart`` to the one peer, ``gotMessage(*frames)``
    from it.
    """

    socketType = zmq.PAIR
