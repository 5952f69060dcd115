"""
No amplification: what a hostile peer sends is never echoed back whole. Each piece of peer
input an error message repeats is cut to ``ECHO_LIMIT`` (200) characters, and building the
message costs time in proportion to that bound, not to the size of the input.

The hostile peers are raw pyzmq sockets in a thread, speaking the wire format by hand.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
import pytest_twisted
import zmq

from tests.peers import blockingSocket, inThread
from tests.rpc.support import CALL, ERROR, Calculator, fails
from txzmq2 import ZmqEndpoint, ZmqEndpointType
from txzmq2._echo import ECHO_LIMIT, boundedRepr
from txzmq2.rpc import RPCClient, RPCServer, ZmqProtocolError

REPLY_BOUND = 1024
"""Bytes an error reply to any of these requests may take, all frames together: the echoed
input (ECHO_LIMIT characters, a few bytes each at worst) and the fixed text around it."""

# A map of 0.6 MiB: 70,000 floats of 9 bytes each decode in about a millisecond, while the
# repr of all of them takes tens of milliseconds.
HUGE_MAP = {"samples": [n / 7 for n in range(70_000)]}


class TimedServer(RPCServer):
    """An RPCServer that records how long it spends on each request it reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.handling: list[float] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, messageId: bytes, *messageParts: bytes) -> None:
        start = time.perf_counter()
        try:
            super().gotMessage(messageId, *messageParts)
        finally:
            self.handling.append(time.perf_counter() - start)


def hostileClient(address: str, context: zmq.Context[Any], requests: list[list[bytes]]) -> Any:
    """Run in a thread: a DEALER sends each request and collects the reply to each."""

    def run() -> list[list[bytes]]:
        socket = blockingSocket(context, zmq.DEALER)
        try:
            socket.connect(address)
            for request in requests:
                socket.send_multipart([b"", *request])
            return [socket.recv_multipart() for _ in requests]
        finally:
            socket.close()

    return inThread(run)


@pytest.fixture
def server(zmq_factory, zmq_address):
    server = TimedServer(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, zmq_address("tcp")), Calculator()
    )
    yield server
    server.shutdown()


def errorOf(reply: list[bytes]) -> dict[str, Any]:
    empty, header, payload = reply
    assert (empty, header) == (b"", ERROR)
    body: dict[str, Any] = msgpack.unpackb(payload)
    return body


def fastest(function: Any, times: int = 3) -> float:
    """The shortest of ``times`` runs of ``function()``, in seconds: the least noisy."""
    runs = []
    for _ in range(times):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return min(runs)


@pytest_twisted.ensureDeferred
async def test_a_huge_map_as_call_body_gets_a_small_BadMessage_reply(server, zmq_factory):
    payload = msgpack.packb(HUGE_MAP)
    assert len(payload) > 600_000
    [reply] = await hostileClient(server.lastEndpoint, zmq_factory.context, [[CALL, payload]])
    error = errorOf(reply)
    assert error["type"] == "BadMessage"
    assert error["message"].endswith("...")
    assert sum(len(frame) for frame in reply) < REPLY_BOUND


@pytest_twisted.ensureDeferred
async def test_refusing_a_huge_map_costs_far_less_than_a_repr_of_it(server, zmq_factory):
    # The repr of the whole body, as the server once built, measured here on this machine
    # right now; the server's handling (decoding included) must take under a third of it.
    # The fastest of three runs on both sides keeps a busy machine from deciding.
    reprCost = fastest(lambda: repr(HUGE_MAP))
    requests = [[CALL, msgpack.packb(HUGE_MAP)]] * 3
    replies = await hostileClient(server.lastEndpoint, zmq_factory.context, requests)
    assert [errorOf(reply)["type"] for reply in replies] == ["BadMessage"] * 3
    handling = min(server.handling)
    assert handling < reprCost / 3, (
        f"the server took {handling * 1e3:.1f} ms to refuse a 0.6 MiB map; "
        f"a repr of it takes {reprCost * 1e3:.1f} ms"
    )


@pytest_twisted.ensureDeferred
async def test_a_500_KB_method_name_gets_a_NoSuchMethod_reply_of_bounded_size(server, zmq_factory):
    name = "m" * 500_000
    request = [CALL, msgpack.packb([name, [], {}])]
    [reply] = await hostileClient(server.lastEndpoint, zmq_factory.context, [request])
    error = errorOf(reply)
    assert error["type"] == "NoSuchMethod"
    assert error["message"].startswith("no exposed method 'mmmm")
    assert error["message"].endswith("...")
    assert sum(len(frame) for frame in reply) < REPLY_BOUND


@pytest_twisted.ensureDeferred
async def test_a_500_KB_keyword_argument_name_gets_a_BadArguments_reply_of_bounded_size(
    server, zmq_factory
):
    request = [CALL, msgpack.packb(["add", [1, 2], {"k" * 500_000: 3}])]
    [reply] = await hostileClient(server.lastEndpoint, zmq_factory.context, [request])
    error = errorOf(reply)
    assert error["type"] == "BadArguments"
    assert error["message"].startswith("add(): got an unexpected keyword argument 'kkkk")
    assert sum(len(frame) for frame in reply) < REPLY_BOUND


@pytest_twisted.ensureDeferred
async def test_a_huge_error_reply_that_is_not_a_map_gives_the_client_a_short_error(
    zmq_factory, zmq_address
):
    address = zmq_address("inproc")
    hostileReply = [ERROR, msgpack.packb(list(HUGE_MAP["samples"]))]

    def hostileServer() -> None:
        socket = blockingSocket(zmq_factory.context, zmq.ROUTER)
        try:
            socket.bind(address)
            envelope = socket.recv_multipart()[:3]  # routing id, request id, delimiter
            socket.send_multipart([*envelope, *hostileReply])
        finally:
            socket.close()

    done = inThread(hostileServer)
    client = RPCClient(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, address), timeout=5.0)
    try:
        error = await fails(client.callRemote("add", 1, 2), ZmqProtocolError)
    finally:
        client.shutdown()
    await done
    assert str(error).startswith("an error reply is a map of type, message, traceback; not [")
    assert len(str(error)) < REPLY_BOUND


# -- the helper itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [None, True, -3, 2.5, "text", b"\x00bytes", [1, [2, (3,)], ()], {"a": {"b": [None]}}],
    ids=lambda value: type(value).__name__,
)
def test_boundedRepr_of_a_short_value_is_its_repr(value):
    assert boundedRepr(value) == repr(value)


@pytest.mark.parametrize(
    "value",
    [
        "s" * 1_000_000,
        b"\xff" * 1_000_000,
        list(range(1_000_000)),
        {str(n): n for n in range(100_000)},
        10**5000,
    ],
    ids=["str", "bytes", "list", "map", "int"],
)
def test_boundedRepr_of_a_long_value_is_cut_to_the_limit(value):
    text = boundedRepr(value)
    assert len(text) <= ECHO_LIMIT
    assert text.endswith("...") or text.startswith("<int of")


def test_boundedRepr_reads_no_deeper_than_the_limit():
    deep: list[Any] = []
    for _ in range(100_000):  # far beyond the interpreter's recursion limit
        deep = [deep]
    assert boundedRepr(deep) == "[" * (ECHO_LIMIT - 3) + "..."
