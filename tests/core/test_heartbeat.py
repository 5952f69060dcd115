"""
ZMTP heartbeats (``heartbeatInterval``, ``heartbeatTimeout``): a peer that goes silent
without closing its TCP connection (a frozen process, a cut link) is noticed and dropped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import pytest_twisted
import zmq

from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqRouterConnection

# A peer that connects, says hello, then just sits there.
PEER = """
import sys, time, zmq
socket = zmq.Context().socket(zmq.DEALER)
socket.connect(sys.argv[1])
socket.send(b"hello")
time.sleep(60)
"""


class Watched(ZmqRouterConnection):
    heartbeatInterval = 100
    heartbeatTimeout = 300

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        pass


def test_heartbeat_options_reach_the_socket(zmq_factory):
    connection = Watched(zmq_factory)
    try:
        assert connection.socket.get(zmq.HEARTBEAT_IVL) == 100
        assert connection.socket.get(zmq.HEARTBEAT_TIMEOUT) == 300
    finally:
        connection.shutdown()


@pytest.mark.timeout(30)
@pytest_twisted.ensureDeferred
async def test_frozen_peer_is_disconnected_by_heartbeats(zmq_factory):
    server = Watched(zmq_factory)
    events = server.monitor(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
    server.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")])
    peer = subprocess.Popen([sys.executable, "-c", PEER, server.lastEndpoint])
    try:
        await events.waitFor(zmq.EVENT_HANDSHAKE_SUCCEEDED, timeout=10)
        # Frozen: its TCP connection stays open, but it answers no heartbeat.
        os.kill(peer.pid, signal.SIGSTOP)
        await events.waitFor(zmq.EVENT_DISCONNECTED, timeout=5)
    finally:
        peer.kill()
        os.kill(peer.pid, signal.SIGCONT)
        peer.wait(timeout=10)
        server.shutdown()
