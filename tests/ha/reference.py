"""
Reference peers of the Binary Star tests, in plain blocking pyzmq and nothing from
``txzmq2.ha``: they go on talking while the reactor of the node under test is held.

- :class:`ReferenceNode`: the wire part of a Binary Star node: publishes its state
  ``[b"bstar", state]`` every heartbeat and records the states it hears from its peer.
- :func:`connectedDealer`: a DEALER connected, handshake done, to a node's served socket.

Each runs in a thread (:func:`tests.peers.inThread`); sockets have a bounded linger and
receive timeout.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import zmq

from tests.peers import PEER_TIMEOUT_MS, blockingSocket

TAG = b"bstar"
"""The topic of a Binary Star node's state messages."""
POLL_SLICE = 0.005
"""Seconds the node blocks at most before looking at its stop flag and its clock."""


class ReferenceNode:
    """
    A Binary Star node's wire part: a PUB bound on tcp 127.0.0.1 (``address``) publishing
    ``state`` every ``heartbeat`` seconds, and a SUB, connected by :meth:`listenTo`, whose
    states heard are recorded in ``heard`` in order. Served by :meth:`run` in a thread
    until :meth:`stop`.
    """

    def __init__(self, context: zmq.Context[Any], state: bytes, heartbeat: float) -> None:
        self.state = state
        self.heartbeat = heartbeat
        self.heard: list[bytes] = []
        self._stop = threading.Event()
        # Made here, used only by the thread running run(): starting a thread is the full
        # memory barrier ZeroMQ asks for when a socket changes threads.
        self.publisher = blockingSocket(context, zmq.PUB)
        self.publisher.bind("tcp://127.0.0.1:*")
        self.address: str = self.publisher.getsockopt_string(zmq.LAST_ENDPOINT)
        self.subscriber = blockingSocket(context, zmq.SUB, subscribe=TAG)

    def listenTo(self, address: str) -> None:
        """Hear the states published at ``address`` (call before :meth:`run`)."""
        self.subscriber.connect(address)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.subscriber, zmq.POLLIN)
        try:
            nextBeat = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= nextBeat:
                    self.publisher.send_multipart([TAG, self.state])
                    nextBeat += self.heartbeat
                wait = min(POLL_SLICE, max(0.0, nextBeat - now))
                if poller.poll(wait * 1000):
                    frames = self.subscriber.recv_multipart()
                    if len(frames) == 2:
                        self.heard.append(frames[1])
        finally:
            self.publisher.close()
            self.subscriber.close()


def connectedDealer(context: zmq.Context[Any], address: str) -> Any:
    """
    A DEALER connected to ``address``, returned once its handshake is done: what it sends
    from now on goes straight to the peer. Blocking; run it in a thread.
    """
    dealer = blockingSocket(context, zmq.DEALER)
    monitor = dealer.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        dealer.connect(address)
        if not monitor.poll(PEER_TIMEOUT_MS):
            raise TimeoutError(f"no handshake with {address}")
        monitor.recv_multipart()
    finally:
        dealer.disable_monitor()
        monitor.close()
    return dealer
