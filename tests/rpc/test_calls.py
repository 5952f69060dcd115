"""
Calls that work: results of plain, Deferred-returning and coroutine methods, keyword
arguments, both serializers, concurrency, and fire-and-forget notifies.
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import gatherResults

from tests.rpc.support import Calculator, RawPeer
from txzmq2.rpc import JSONSerializer, MsgpackSerializer


@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_callRemote_fires_with_the_result(rpc, transport):
    client, _ = rpc(transport=transport)
    assert await client.callRemote("add", 1, 2) == 3


@pytest_twisted.ensureDeferred
async def test_keyword_arguments_bind_by_name(rpc):
    client, _ = rpc()
    assert await client.callRemote("add", b=" world", a="hello") == "hello world"
    assert await client.callRemote("greet", "you", punctuation="?") == "hello you?"


@pytest_twisted.ensureDeferred
async def test_callRemoteWithOptions_passes_args_and_kwargs(rpc):
    client, _ = rpc()
    result = await client.callRemoteWithOptions("echo", (1, "two"), {"timeout": 3})
    assert result == [[1, "two"], {"timeout": 3}]  # a remote kwarg named timeout passes


@pytest.mark.parametrize(
    "method", ["doubleLater", "doubleAsync", "alreadyDone"], ids=["deferred", "coroutine", "fired"]
)
@pytest_twisted.ensureDeferred
async def test_deferred_and_coroutine_methods_answer_with_their_result(rpc, method):
    client, _ = rpc()
    expected = 21 if method == "alreadyDone" else 42
    assert await client.callRemote(method, 21) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        -(2**63),
        2**64 - 1,
        1.5,
        "ünïcode",
        b"\x00bytes\xff",
        [1, [2, [3]]],
        {"nested": {"map": [1, b"2"]}},
    ],
)
@pytest_twisted.ensureDeferred
async def test_msgpack_carries_plain_values_unchanged(rpc, value):
    client, _ = rpc()
    assert await client.callRemote("echo", value, key=value) == [[value], {"key": value}]


@pytest_twisted.ensureDeferred
async def test_tuples_arrive_as_lists(rpc):
    client, _ = rpc()
    assert await client.callRemote("echo", (1, (2, 3))) == [[[1, [2, 3]]], {}]


@pytest_twisted.ensureDeferred
async def test_json_serializer_on_both_ends(rpc):
    client, server = rpc(serializer=JSONSerializer(), client={"serializer": JSONSerializer()})
    assert await client.callRemote("greet", "json", greeting="hi") == "hi json!"
    assert await client.callRemote("echo", {"a": [1, 2.5, None, True]}) == [
        [{"a": [1, 2.5, None, True]}],
        {},
    ]
    assert server.serializer.name == client.serializer.name == "json"


@pytest_twisted.ensureDeferred
async def test_a_held_call_does_not_delay_later_calls(rpc):
    client, server = rpc()
    service: Calculator = server.service  # type: ignore[assignment]
    slow = client.callRemote("slowDouble", 4)
    await service.heldCalls(1)
    # The coroutine is still waiting: other calls go past it.
    assert await gatherResults([client.callRemote("add", n, n) for n in range(5)]) == [
        0,
        2,
        4,
        6,
        8,
    ]
    assert not slow.called
    assert server.runningCalls == 1
    service.release()
    assert await slow == 8
    assert server.runningCalls == 0


@pytest_twisted.ensureDeferred
async def test_many_outstanding_calls_each_get_their_own_result(rpc):
    client, _ = rpc()
    results = await gatherResults([client.callRemote("doubleAsync", n) for n in range(200)])
    assert results == [2 * n for n in range(200)]
    assert client.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_notify_runs_the_method(rpc):
    client, server = rpc()
    service: Calculator = server.service  # type: ignore[assignment]
    client.notify("record", "first")
    client.notify("record", value="second")
    await service.recordedValues(2)
    assert service.recorded == ["first", "second"]


@pytest_twisted.ensureDeferred
async def test_notify_leaves_nothing_pending_on_either_side(rpc):
    client, server = rpc()
    service: Calculator = server.service  # type: ignore[assignment]
    client.notify("hold")
    assert client.pendingRequests == 0
    await service.heldCalls(1)
    assert server.pendingRequests == 0  # no envelope waits for a reply
    service.release()


@pytest_twisted.ensureDeferred
async def test_notify_is_never_answered(rpc, raw):
    _, server = rpc()
    peer: RawPeer = raw(server)
    service: Calculator = server.service  # type: ignore[assignment]
    peer.sendMultipart([b"", b"txzmq2-rpc/1 notify msgpack", b"\x93\xa6record\x91\x01\x80"])
    await service.recordedValues(1)
    peer.call("add", 1, 1, requestId=b"call")
    # Replies keep their order: had the notify been answered, its reply would come first.
    reply = await peer.nextMessage()
    assert reply[:3] == [b"call", b"", b"txzmq2-rpc/1 reply msgpack"]


def test_default_serializer_is_msgpack(zmq_factory):
    from txzmq2.rpc import RPCClient

    client = RPCClient(zmq_factory)
    assert isinstance(client.serializer, MsgpackSerializer)
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_remote_keyword_arguments_may_be_named_like_callRemote_parameters(rpc):
    client, server = rpc()
    assert await client.callRemote("echo", method=1, args=2) == [[], {"method": 1, "args": 2}]
    client.notify("record", value="v")
    await server.service.recordedValues(1)
