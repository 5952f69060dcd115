"""
The high-availability patterns when application code holds the reactor longer than their
peer timeouts: a node held up is not a node whose peer went silent. The peers are blocking
pyzmq in threads (tests/ha/reference.py), over tcp: they go on talking through the stall.

The stall runs as a thread call (:func:`tests.stalls.stallReactor`). On Twisted's default
reactor (epoll) the sockets are then read in the order their messages arrived, so a
client's request sent as the stall begins is read before the peer's state messages of the
stall. (The asyncio reactor happens to read them the other way round.) Timers due during the
stall run before any socket is read: a Freelance request's timer, say, with its reply waiting.
"""

from __future__ import annotations

import pytest
import pytest_twisted
import zmq

from tests.ha.conftest import Echo, until
from tests.ha.reference import ReferenceNode, connectedDealer
from tests.peers import BlockingServer, inThread
from tests.stalls import ANSWER_DELAY, sendAsTheReactorStalls, stallReactor
from txzmq2 import ZmqEndpoint
from txzmq2.ha import BinaryStar, BinaryStarState, FreelanceClient
from txzmq2.ha.binarystar import PEER_SILENCE
from txzmq2.ha.freelance import PING, PONG

pytestmark = pytest.mark.timeout(30)

HEARTBEAT = 0.1
"""Binary Star heartbeat of these tests (seconds)."""
STALL = 3 * PEER_SILENCE * HEARTBEAT
"""Three times as long as a node waits before its silent peer counts as gone."""


async def passiveBackup(factory, runPeer, peerContext):
    """
    A backup node serving an echo server (both on tcp 127.0.0.1), beside an active
    reference primary; returned once the backup is passive, with the primary and the
    served echo server.
    """
    primary = ReferenceNode(peerContext, b"active", HEARTBEAT)
    backup = BinaryStar(factory, False, "tcp://127.0.0.1:*", primary.address, HEARTBEAT)
    served = Echo(factory, ZmqEndpoint("bind", "tcp://127.0.0.1:*"))
    served.name = b"backup"
    backup.serve(served)
    primary.listenTo(backup.lastEndpoint)
    runPeer(primary)
    await until(lambda: backup.state == "passive")
    return primary, backup, served


@pytest_twisted.ensureDeferred
async def test_reactor_stall_does_not_make_a_passive_node_take_over_from_a_heard_peer(
    zmq_factory, runPeer, peerContext, logged
):
    primary, backup, served = await passiveBackup(zmq_factory, runPeer, peerContext)
    activations: list[BinaryStarState] = []
    backup.onActive = lambda: activations.append(backup.state)
    client = await inThread(connectedDealer, peerContext, served.lastEndpoint)
    try:
        # A client's request (a vote) as the reactor is held, then the primary's state
        # messages of the stall: all wait in the backup's sockets when it resumes.
        await stallReactor(STALL, lambda: client.send_multipart([b"", b"vote"]))
        # The primary hears the backup's states of the next heartbeats: by then the backup
        # has read the vote and the state messages.
        heard = len(primary.heard)
        await until(lambda: len(primary.heard) >= heard + 3)
    finally:
        client.close()
        backup.shutdown()
        served.shutdown()
    assert activations == []
    assert b"active" not in primary.heard
    assert not [e for e in logged if "taking over" in (e.get("log_format") or "")]


@pytest_twisted.ensureDeferred
async def test_after_a_reactor_stall_a_passive_node_takes_over_from_a_peer_really_gone(
    zmq_factory, runPeer, peerContext
):
    primary, backup, served = await passiveBackup(zmq_factory, runPeer, peerContext)
    client = await inThread(connectedDealer, peerContext, served.lastEndpoint)
    try:
        primary.stop()
        # Gone for good, and all it sent is read: nothing of it can wait through the stall.
        await until(backup._peerSilent)
        # The same stall and vote, but nothing from the primary waits: the vote wins.
        await stallReactor(STALL, lambda: client.send_multipart([b"", b"vote"]))
        await backup.whenActive()
        assert await inThread(client.recv_multipart) == [b"", b"backup", b"vote"]
    finally:
        client.close()
        backup.shutdown()
        served.shutdown()


def echoOrPong(message: list[bytes]) -> list[bytes]:
    """A Freelance server's answer: PONG to a ping, the request itself to a request."""
    return [message[0], PONG] if message[1:] == [PING] else message


FREELANCE_TIMEOUT = 0.2
"""Seconds a Freelance request of these tests waits for its reply."""


@pytest_twisted.ensureDeferred
async def test_freelance_reply_waiting_through_a_reactor_stall_answers_its_request(
    zmq_factory, runPeer, peerContext
):
    server = BlockingServer(peerContext, zmq.ROUTER, echoOrPong, ANSWER_DELAY)
    runPeer(server)
    # No ping due in the stall: a ping sent makes the link look at its socket.
    client = FreelanceClient(
        zmq_factory, [server.address], timeout=FREELANCE_TIMEOUT, retries=0, pingInterval=60
    )
    try:
        assert await client.request(b"warm-up", timeout=5) == [b"warm-up"]
        # The server answers during the stall: the reply waits in the socket, unread.
        request = await sendAsTheReactorStalls(
            lambda: client.request(b"in time"), 3 * FREELANCE_TIMEOUT
        )
        assert await request == [b"in time"]
    finally:
        client.shutdown()
