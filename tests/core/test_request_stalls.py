"""
Request deadlines after a reactor stall: a reply that came in time, and waits in the socket
when the late deadline timer runs, answers its request; it is not timed out, nor retried.

The stall runs as a thread call (:func:`tests.stalls.stallReactor`). On Twisted's default
reactor that runs before the timers due and before descriptors are read, so the deadline
timer runs before the reactor has read the reply: the worst case. The peers are blocking
pyzmq sockets in a thread (a txzmq2 peer on the same reactor would be held too), over tcp on
127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.task import Clock

from tests.peers import BlockingServer, ScriptProcess
from tests.stalls import ANSWER_DELAY, sendAsTheReactorStalls, stallReactor
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqREQConnection, ZmqRequestTimeoutError
from txzmq2._deadlines import _POSTPONE_SECONDS, _Deadlines

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.2
"""Seconds each request of these tests waits for its reply."""
STALL = 3 * TIMEOUT
"""Three times as long as a request waits."""


@pytest.fixture
def client(zmq_factory) -> Iterator[Any]:
    """``client(address, requestIds=True)``: a ZmqREQConnection connected to ``address``."""
    opened: list[ZmqREQConnection] = []

    def connect(address: str, requestIds: bool = True) -> ZmqREQConnection:
        connection = ZmqREQConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, address))
        connection.requestIds = requestIds
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.shutdown()


@pytest.mark.parametrize("requestIds", [True, False])
@pytest_twisted.ensureDeferred
async def test_reply_waiting_through_a_reactor_stall_answers_its_request(
    client, runPeer, peerContext, requestIds
):
    peer = BlockingServer(peerContext, zmq.REP, answerAfter=ANSWER_DELAY)
    runPeer(peer)
    connection = client(peer.address, requestIds)
    assert await connection.sendMsg(b"warm-up", timeout=5) == [b"warm-up"]
    # The peer answers during the stall: the reply waits in the socket, unread.
    request = await sendAsTheReactorStalls(
        lambda: connection.sendMsg(b"in time", timeout=TIMEOUT), STALL
    )
    assert await request == [b"in time"]


@pytest_twisted.ensureDeferred
async def test_reply_waiting_through_a_reactor_stall_is_not_retried(client, runPeer, peerContext):
    peer = BlockingServer(peerContext, zmq.REP, answerAfter=ANSWER_DELAY)
    runPeer(peer)
    connection = client(peer.address)
    assert await connection.sendMsg(b"warm-up", timeout=5) == [b"warm-up"]
    request = await sendAsTheReactorStalls(
        lambda: connection.sendMsg(b"once", timeout=TIMEOUT, retries=1), STALL
    )
    assert await request == [b"once"]
    # A last request, answered after any retry would have been: the peer saw no duplicate.
    assert await connection.sendMsg(b"last", timeout=5) == [b"last"]
    assert peer.received == 3


@pytest_twisted.ensureDeferred
async def test_unanswered_request_still_times_out_after_a_reactor_stall(
    client, runPeer, peerContext
):
    peer = BlockingServer(peerContext, zmq.ROUTER, lambda message: None)
    runPeer(peer)
    connection = client(peer.address)
    request = connection.sendMsg(b"never answered", timeout=TIMEOUT)
    await stallReactor(STALL)
    with pytest.raises(ZmqRequestTimeoutError):
        await request
    assert connection.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_unanswered_request_times_out_at_its_deadline(client, runPeer, peerContext):
    peer = BlockingServer(peerContext, zmq.ROUTER, lambda message: None)
    runPeer(peer)
    connection = client(peer.address)
    started = time.monotonic()
    with pytest.raises(ZmqRequestTimeoutError):
        await connection.sendMsg(b"never answered", timeout=TIMEOUT)
    # The deadline, within its expiry batching and a loaded machine's scheduling.
    assert TIMEOUT <= time.monotonic() - started < TIMEOUT + 0.15


# -- the deadlines' read before expiry, on a driven clock ------------------------------------


def test_deadline_timer_lets_before_expiry_end_an_item_first():
    clock = Clock()
    expired: list[str] = []
    deadlines: _Deadlines[str] = _Deadlines(
        clock, expired.append, lambda: deadlines.cancel("answered", 1.0) or False
    )
    deadlines.add("answered", 1.0)
    deadlines.add("unanswered", 1.0)
    clock.advance(1.0)
    assert expired == ["unanswered"]
    assert clock.getDelayedCalls() == []


def test_expiry_waits_for_an_undrained_socket_by_a_bounded_time_only():
    clock = Clock()
    expired: list[str] = []
    reads: list[float] = []

    def flooded() -> bool:
        reads.append(clock.seconds())
        return True  # messages always wait unread: the socket never drains

    deadlines: _Deadlines[str] = _Deadlines(clock, expired.append, flooded)
    deadlines.add("request", 1.0)
    while not expired:
        clock.advance(0.001)
    assert 1.0 + _POSTPONE_SECONDS <= clock.seconds() < 1.0 + _POSTPONE_SECONDS + 0.01
    # One read per firing of the timer: a few, not one per clock step.
    assert reads[0] == pytest.approx(1.0)
    assert len(reads) <= _POSTPONE_SECONDS / 0.005 + 2
    assert clock.getDelayedCalls() == []


# -- the bound, driven by a hostile peer in its own process -----------------------------------

FLOOD = """
import sys, zmq
context = zmq.Context()
s = context.socket(zmq.ROUTER)
s.setsockopt(zmq.LINGER, 0)
s.setsockopt(zmq.SNDHWM, 0)
s.bind("tcp://127.0.0.1:*")
print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
peer = s.recv_multipart()[0]
# Never the answer: replies to no request of the client's, as fast as it can, forever.
junk = [peer, b"not-a-request-id", b"", b"x" * 16]
while True:
    s.send_multipart(junk)
"""


class Flooded(ZmqREQConnection):
    recvHighWaterMark = 0  # unbounded: whatever the flood sends waits for the reader
    readPassesWithMoreWaiting = 0

    def _readWaiting(self) -> bool:
        waiting = super()._readWaiting()
        self.readPassesWithMoreWaiting += waiting
        return waiting


@pytest.mark.timeout(60)
@pytest_twisted.ensureDeferred
async def test_a_flood_that_never_drains_delays_an_expiry_by_the_bound_at_most(
    zmq_factory, processes
):
    """
    A peer floods the client with replies to nothing while its request waits: during a
    stall past the deadline far more piles up than one read pass takes, so the late timer
    finds messages unread after its pass and lets the expiry wait, by _POSTPONE_SECONDS
    at most; the flood never lets the socket drain, and the request still times out.
    """
    hostile = ScriptProcess(FLOOD)
    processes.append(hostile)
    address = await hostile.start()
    connection = Flooded(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    try:
        request = connection.sendMsg(b"never answered", timeout=TIMEOUT)
        await stallReactor(STALL)
        resumed = time.monotonic()
        with pytest.raises(ZmqRequestTimeoutError):
            await request
        late = time.monotonic() - resumed
    finally:
        connection.shutdown()
    assert connection.readPassesWithMoreWaiting >= 1, "the flood drained: the bound untested"
    # The documented bound (50 ms, docs/limits.md), plus a loaded machine's scheduling.
    assert late < 0.05 + 0.5
    print(f"\ntimed out {late * 1000:.0f} ms after the stall")
