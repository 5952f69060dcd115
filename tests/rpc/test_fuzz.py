"""
Property tests: the decoders on both sides turn any input into a decoded call or a
documented error, never an unexpected exception; and a live server fed arbitrary frame
lists stays up, answers or logs each, and serves the next good call.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count
from typing import Any

import msgpack
import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread
from twisted.logger import globalLogPublisher

from tests.peers import inThread
from tests.rpc.support import CALL, ERROR, NOTIFY, REPLY, RawPeer
from txzmq2 import ZmqEndpoint, ZmqEndpointType
from txzmq2.rpc import (
    JSONSerializer,
    MsgpackSerializer,
    RemoteError,
    RPCClient,
    RPCServer,
    ZmqProtocolError,
    _wire,
    expose,
)

# Every drop must be logged here: the limit on repeated warnings is lifted.
pytestmark = pytest.mark.usefixtures("everyWarningLogged")

# Plain values msgpack carries both ways (NaN excluded only because NaN != NaN).
plainValues = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
# Anything msgpack can encode, including what a server must refuse (integer map keys).
anyValues = st.recursive(
    plainValues,
    lambda children: st.dictionaries(
        st.integers(-5, 5) | st.text(max_size=3), children, max_size=3
    ),
    max_leaves=10,
)
callBodies = st.tuples(
    st.text(max_size=12) | st.binary(max_size=5),
    st.lists(anyValues, max_size=3) | anyValues,
    st.dictionaries(st.text(max_size=5) | st.binary(max_size=3), anyValues, max_size=2)
    | anyValues,
).map(list)
headers = st.sampled_from(
    [
        CALL,
        NOTIFY,
        REPLY,
        ERROR,
        b"txzmq2-rpc/2 call msgpack",
        b"txzmq2-rpc/1 call json",
        b"txzmq2-rpc/1 call",
        b"txzmq2-rpc/ call msgpack",
    ]
)
frames = st.one_of(
    st.binary(max_size=40),
    st.just(b""),
    headers,
    anyValues.map(msgpack.packb),
    callBodies.map(msgpack.packb),
)
fuzz = settings(max_examples=300, deadline=None)


# -- the server's decoder ----------------------------------------------------------------------


def decodesOrRefuses(payload: bytes, serializer: Any) -> None:
    try:
        method, args, kwargs = _wire.decodeCall(payload, serializer)
    except _wire.Refusal as refusal:
        assert refusal.remoteType in ("BadPayload", "BadMessage")
        return
    assert type(method) is str and type(args) is list and type(kwargs) is dict
    assert all(type(key) is str for key in kwargs)


@fuzz
@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_call_or_a_refusal(payload):
    decodesOrRefuses(payload, MsgpackSerializer())
    decodesOrRefuses(payload, JSONSerializer())


@fuzz
@given(anyValues | callBodies)
def test_any_msgpack_value_decodes_to_a_call_or_a_refusal(body):
    decodesOrRefuses(msgpack.packb(body), MsgpackSerializer())


@fuzz
@given(
    st.text(max_size=20),
    st.lists(plainValues, max_size=4),
    st.dictionaries(st.text(max_size=8), plainValues, max_size=4),
)
def test_an_encoded_call_decodes_to_itself(method, args, kwargs):
    serializer = MsgpackSerializer()
    payload = serializer.dumps([method, tuple(args), kwargs])
    assert _wire.decodeCall(payload, serializer) == (method, args, kwargs)


@fuzz
@given(st.lists(frames, max_size=5))
def test_any_frames_that_are_not_a_call_are_diagnosed(parts):
    refusal, answerable = _wire.diagnose(parts, "msgpack")
    assert refusal.remoteType in ("BadMessage", "BadVersion", "BadSerializer")
    assert isinstance(answerable, bool)


# -- the client's decoder ----------------------------------------------------------------------


@pytest.fixture
def client(zmq_factory) -> Iterator[RPCClient]:
    client = RPCClient(zmq_factory)
    yield client
    client.shutdown()


@settings(fuzz, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(frames, max_size=4))
def test_any_reply_decodes_to_a_result_or_a_documented_error(client, parts):
    try:
        client._decodeReply(parts)
    except (RemoteError, ZmqProtocolError):
        pass


# -- a live server -----------------------------------------------------------------------------


class OneMethod:
    @expose
    def theOnlyMethodThereIs(self, x: int) -> int:
        return x + 1


@pytest.fixture
def live(zmq_factory, zmq_address) -> Iterator[tuple[RPCServer, RawPeer, list[dict[str, Any]]]]:
    server = RPCServer(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, zmq_address("inproc")), OneMethod()
    )
    peer = RawPeer(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, server.lastEndpoint))
    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_source") is server:
            events.append(event)

    globalLogPublisher.addObserver(observe)
    yield server, peer, events
    globalLogPublisher.removeObserver(observe)
    peer.shutdown()
    server.shutdown()


rounds = count()


async def sendThenCall(
    server: RPCServer, peer: RawPeer, events: list[dict[str, Any]], parts: list[bytes]
) -> tuple[list[list[bytes]], list[dict[str, Any]]]:
    """
    Send ``parts``, then a good call. Return the messages that came before the good call's
    reply, and the lines the server logged meanwhile.
    """
    logged = len(events)
    tag = b"good call %d" % next(rounds)
    peer.sendMultipart(parts)
    peer.sendMultipart([tag, b"", CALL, msgpack.packb(["theOnlyMethodThereIs", [41], {}])])
    before = []
    while True:
        message = await peer.nextMessage()
        if message[0] == tag:
            assert message[1:] == [b"", REPLY, msgpack.packb(42)]
            return before, events[logged:]
        before.append(message)


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_a_live_server_answers_or_logs_any_frames_and_serves_the_next_call(live):
    from twisted.internet import reactor

    server, peer, events = live

    # Hypothesis runs in a thread of its own, so that each example can wait for the server
    # on the reactor, which keeps running in the test's own thread.
    @settings(fuzz, suppress_health_check=[HealthCheck.too_slow])
    @given(parts=st.lists(frames, min_size=1, max_size=5))
    def oneRound(parts: list[bytes]) -> None:
        before, logged = blockingCallFromThread(
            reactor, lambda: Deferred.fromCoroutine(sendThenCall(server, peer, events, parts))
        )
        if before:
            [answer] = before
            assert answer[-2] == ERROR, answer
            assert msgpack.unpackb(answer[-1])["type"]
        else:
            assert logged, f"{parts!r} was neither answered nor logged"
        # A logged Failure would be an exception escaping the server's own code.
        assert not [event for event in logged if "log_failure" in event]

    await inThread(oneRound)
    assert not server.closed
    assert server.pendingRequests == 0
