"""
A Majordomo request's timer after a reactor stall: a reply that came in time, and waits in
the request's socket when the late timer runs, answers the request; it is not timed out,
nor retried on a fresh socket.

The stall runs as a thread call (:func:`tests.stalls.stallReactor`), which Twisted's default
reactor runs before the timers due and before descriptors are read. The broker is a blocking
pyzmq ROUTER in a thread that returns each request as its reply (a txzmq2 broker on the same
reactor would be held too), over tcp on 127.0.0.1.
"""

from __future__ import annotations

import pytest
import pytest_twisted
import zmq

from tests.peers import BlockingServer
from tests.stalls import ANSWER_DELAY, sendAsTheReactorStalls, stallReactor
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqRequestTimeoutError
from txzmq2.mdp import MajordomoClient

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.2
"""Seconds each request waits for its reply."""
STALL = 3 * TIMEOUT
"""Three times as long as a request waits."""


@pytest.mark.parametrize("retries", [0, 1])
@pytest_twisted.ensureDeferred
async def test_reply_waiting_through_a_reactor_stall_answers_its_request(
    zmq_factory, runPeer, peerContext, retries
):
    broker = BlockingServer(peerContext, zmq.ROUTER, answerAfter=ANSWER_DELAY)  # REQUEST as REPLY
    runPeer(broker)
    client = MajordomoClient(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, broker.address))
    try:
        assert await client.request(b"echo", b"warm-up", timeout=5) == [b"warm-up"]
        request = await sendAsTheReactorStalls(
            lambda: client.request(b"echo", b"in time", timeout=TIMEOUT, retries=retries), STALL
        )
        assert await request == [b"in time"]
        assert await client.request(b"echo", b"last", timeout=5) == [b"last"]
        assert broker.received == 3  # no retry
    finally:
        client.shutdown()


@pytest_twisted.ensureDeferred
async def test_unanswered_request_still_times_out_after_a_reactor_stall(
    zmq_factory, runPeer, peerContext
):
    broker = BlockingServer(peerContext, zmq.ROUTER, lambda message: None)
    runPeer(broker)
    client = MajordomoClient(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, broker.address))
    try:
        request = client.request(b"echo", b"never answered", timeout=TIMEOUT)
        await stallReactor(STALL)
        with pytest.raises(ZmqRequestTimeoutError):
            await request
    finally:
        client.shutdown()
