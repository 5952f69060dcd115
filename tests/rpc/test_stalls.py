"""
An RPC call's deadline after a reactor stall: a reply that came in time, and waits in the
client's socket when the late deadline timer runs, answers the call.

The stall runs as a thread call (:func:`tests.stalls.stallReactor`), which Twisted's default
reactor runs before the timers due and before descriptors are read: the client's deadline
timer runs before the reactor has read the reply. The server is a blocking pyzmq REP in a
thread speaking the wire format by hand (a txzmq2 server on the same reactor would be held
too), over tcp on 127.0.0.1.
"""

from __future__ import annotations

import msgpack
import pytest
import pytest_twisted
import zmq

from tests.peers import BlockingServer
from tests.rpc.support import CALL, REPLY
from tests.stalls import ANSWER_DELAY, sendAsTheReactorStalls
from txzmq2 import ZmqEndpoint, ZmqEndpointType
from txzmq2.rpc import RPCClient

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.2
"""Seconds each call waits for its reply."""
STALL = 3 * TIMEOUT
"""Three times as long as a call waits."""


def echoFirstArgument(message: list[bytes]) -> list[bytes]:
    """A REP's answer to a msgpack call: a reply of the call's first argument."""
    header, payload = message
    assert header == CALL
    _, args, _ = msgpack.unpackb(payload)
    return [REPLY, msgpack.packb(args[0])]


@pytest_twisted.ensureDeferred
async def test_rpc_reply_waiting_through_a_reactor_stall_answers_its_call(
    zmq_factory, runPeer, peerContext
):
    server = BlockingServer(peerContext, zmq.REP, echoFirstArgument, ANSWER_DELAY)
    runPeer(server)
    client = RPCClient(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, server.address), timeout=TIMEOUT
    )
    try:
        assert await client.callRemoteWithOptions("echo", ("warm-up",), timeout=5) == "warm-up"
        # The server answers during the stall: the reply waits in the socket, unread.
        call = await sendAsTheReactorStalls(lambda: client.callRemote("echo", "in time"), STALL)
        assert await call == "in time"
    finally:
        client.shutdown()
