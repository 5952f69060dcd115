"""
Reference peers: plain blocking pyzmq sockets run in a thread, reporting to the reactor;
and a collecting txzmq2 PULL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txzmq2 import ZmqPullConnection

T = TypeVar("T")

PEER_TIMEOUT_MS = 10_000
"""Receive/send timeout of reference sockets: a broken test ends instead of hanging."""


def inThread(function: Callable[..., T], *args: Any) -> Deferred[T]:
    """
    Run ``function(*args)`` in a new thread; the Deferred fires on the reactor thread with
    its result (or its exception) after the thread has ended.
    """
    from twisted.internet import reactor

    done: Deferred[T] = Deferred()

    def finish(result: Any) -> None:
        thread.join()
        if isinstance(result, Failure):
            done.errback(result)
        else:
            done.callback(result)

    def run() -> None:
        try:
            result: Any = function(*args)
        except BaseException:
            result = Failure()
        reactor.callFromThread(finish, result)

    thread = threading.Thread(target=run, name=f"peer-{function.__name__}", daemon=True)
    thread.start()
    return done


def blockingSocket(context: Any, socketType: int, **options: Any) -> Any:
    """A pyzmq socket with bounded timeouts and no linger, for use inside a peer thread."""
    import zmq

    socket = context.socket(socketType)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, PEER_TIMEOUT_MS)
    socket.setsockopt(zmq.SNDTIMEO, PEER_TIMEOUT_MS)
    for name, value in options.items():
        socket.setsockopt(getattr(zmq, name.upper()), value)
    return socket


class CollectingPull(ZmqPullConnection):
    """
    A txzmq2 PULL that records what it receives (``received``) and fires ``done`` once
    ``expected`` messages have arrived.
    """

    expected = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.received: list[list[bytes]] = []
        self.done: Deferred[None] = Deferred()
        super().__init__(*args, **kwargs)

    def onPull(self, message: list[bytes]) -> None:
        self.received.append(message)
        if len(self.received) == self.expected:
            self.done.callback(None)
