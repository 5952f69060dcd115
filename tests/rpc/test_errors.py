"""
Calls that fail: refusals (``NoSuchMethod``, ``BadArguments``, ``BadSerializer``), exceptions
raised by remote methods in each of the ways a method can fail, values a serializer cannot
encode, and replies that break the wire format. After each, the server keeps serving.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import pytest_twisted
import zmq

from tests.peers import blockingSocket, inThread
from tests.rpc.support import Boom, Calculator, fails
from txzmq2 import ZmqEndpoint, ZmqEndpointType
from txzmq2.rpc import (
    JSONSerializer,
    RemoteError,
    RPCClient,
    RPCServer,
    ZmqProtocolError,
    ZmqSerializationError,
    expose,
)


async def refused(deferred: Any, remoteType: str) -> RemoteError:
    error = await fails(deferred, RemoteError)
    assert isinstance(error, RemoteError)
    assert error.remoteType == remoteType, error
    return error


# -- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["noSuchThing", "hidden", "__init__", "_released", "held"])
@pytest_twisted.ensureDeferred
async def test_a_name_that_is_not_exposed_fails_with_NoSuchMethod(rpc, name):
    client, _ = rpc()
    error = await refused(client.callRemote(name), "NoSuchMethod")
    assert name in error.message
    assert await client.callRemote("add", 1, 2) == 3


@pytest.mark.parametrize(
    ("args", "kwargs", "complaint"),
    [
        ((1,), {}, "missing a required argument: 'b'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((1, 2), {"c": 2}, "got an unexpected keyword argument 'c'"),
        ((1, 2), {"a": 3}, "multiple values for argument 'a'"),
        (tuple(range(100_000)), {}, "too many positional arguments"),
    ],
    ids=["missing", "too-many", "unknown-keyword", "twice", "huge"],
)
@pytest_twisted.ensureDeferred
async def test_arguments_that_do_not_bind_fail_with_BadArguments(rpc, args, kwargs, complaint):
    client, _ = rpc()
    error = await refused(client.callRemoteWithOptions("add", args, kwargs), "BadArguments")
    assert error.message == f"add(): {complaint}"
    assert await client.callRemote("add", 1, 2) == 3


@pytest_twisted.ensureDeferred
async def test_a_required_keyword_only_argument_is_checked(rpc):
    class Service:
        @expose
        def scale(self, x: int, *, by: int) -> int:
            return x * by

    client, _ = rpc(Service())
    await refused(client.callRemote("scale", 2), "BadArguments")
    assert await client.callRemote("scale", 2, by=3) == 6


@pytest_twisted.ensureDeferred
async def test_a_client_with_another_serializer_fails_with_BadSerializer(rpc):
    client, _ = rpc(client={"serializer": JSONSerializer()})
    error = await refused(client.callRemote("add", 1, 2), "BadSerializer")
    assert "msgpack" in error.message


# -- exceptions raised by remote methods -------------------------------------------------------


@pytest.mark.parametrize("method", ["fail", "failLater", "failAsync"])
@pytest_twisted.ensureDeferred
async def test_a_raising_method_fails_the_call_with_its_type_and_message(rpc, method):
    client, _ = rpc()
    error = await refused(client.callRemote(method, "it broke"), "Boom")
    assert error.message == "it broke"
    assert error.remoteTraceback is None
    assert await client.callRemote("add", 1, 2) == 3


@pytest.mark.parametrize("method", ["fail", "failLater", "failAsync"])
@pytest_twisted.ensureDeferred
async def test_sendTracebacks_sends_the_remote_traceback(rpc, method):
    client, _ = rpc(sendTracebacks=True)
    error = await refused(client.callRemote(method, "it broke"), "Boom")
    assert error.remoteTraceback is not None
    assert "raise Boom(message)" in error.remoteTraceback
    assert "Boom: it broke" in error.remoteTraceback


@pytest_twisted.ensureDeferred
async def test_an_exception_whose_str_raises_still_fails_the_call(rpc):
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    class Service:
        @expose
        def broken(self) -> None:
            raise Unprintable()

    client, _ = rpc(Service())
    error = await refused(client.callRemote("broken"), "Unprintable")
    assert error.message == "<unprintable Unprintable>"


@pytest_twisted.ensureDeferred
async def test_a_raising_method_is_logged_on_the_server(rpc, logged):
    client, server = rpc()
    await refused(client.callRemote("fail", "it broke"), "Boom")
    [event] = [event for event in logged if "log_failure" in event]
    assert event["log_source"] is server
    assert isinstance(event["log_failure"].value, Boom)


# -- values that cannot be encoded -------------------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "value"),
    [
        (None, object()),
        (None, 2**64),
        (JSONSerializer(), b"bytes"),
        (JSONSerializer(), float("nan")),
    ],
    ids=["msgpack-object", "msgpack-overflow", "json-bytes", "json-nan"],
)
@pytest_twisted.ensureDeferred
async def test_an_unencodable_argument_fails_the_call_before_sending(rpc, serializer, value):
    options = {} if serializer is None else {"serializer": serializer}
    client, _ = rpc(client=options, **options)
    error = await fails(client.callRemote("echo", value), ZmqSerializationError)
    assert "echo()" in str(error)
    assert client.pendingRequests == 0
    assert await client.callRemote("add", 1, 2) == 3


def test_notify_with_an_unencodable_argument_raises(rpc):
    client, _ = rpc()
    with pytest.raises(ZmqSerializationError):
        client.notify("record", object())


@pytest_twisted.ensureDeferred
async def test_a_method_name_that_is_not_a_str_fails_the_call(rpc):
    client, _ = rpc()
    await fails(client.callRemote(b"add", 1, 2), TypeError)  # type: ignore[arg-type]


@pytest_twisted.ensureDeferred
async def test_an_unencodable_result_fails_with_UnserializableResult(rpc, logged):
    client, server = rpc()
    error = await refused(client.callRemote("unencodable"), "UnserializableResult")
    assert "unencodable() returned a value msgpack cannot encode" in error.message
    assert any(event.get("log_source") is server for event in logged)
    assert await client.callRemote("add", 1, 2) == 3


# -- replies that break the wire format --------------------------------------------------------


def answerEachWith(replies: list[list[bytes]]):
    """A ROUTER peer answering each request it gets with the next of ``replies``."""

    def script(socket: Any) -> None:
        for reply in replies:
            request = socket.recv_multipart()
            socket.send_multipart([*request[:3], *reply])

    return script


@pytest.mark.parametrize(
    "reply",
    [
        [b"not a header", b"\x01"],
        [b"txzmq2-rpc/1 reply msgpack"],
        [b"txzmq2-rpc/2 reply msgpack", b"\x01"],
        [b"txzmq2-rpc/1 call msgpack", b"\x01"],
        [b"txzmq2-rpc/1 reply json", b"1"],
        [b"txzmq2-rpc/1 reply msgpack", b"\xc1"],
        [b"txzmq2-rpc/1 error msgpack", msgpack.packb(["not", "a", "map"])],
        [b"txzmq2-rpc/1 error msgpack", msgpack.packb({"type": 1, "message": "x"})],
    ],
    ids=[
        "no-header",
        "one-frame",
        "version-2",
        "kind-call",
        "other-serializer",
        "undecodable",
        "error-not-a-map",
        "error-bad-type",
    ],
)
@pytest_twisted.ensureDeferred
async def test_a_reply_breaking_the_wire_format_fails_with_ZmqProtocolError(
    zmq_factory, zmq_address, reply
):
    address = zmq_address("inproc")

    def run() -> None:
        socket = blockingSocket(zmq_factory.context, zmq.ROUTER)
        try:
            socket.bind(address)
            answerEachWith([reply, [b"txzmq2-rpc/1 reply msgpack", b"\x03"]])(socket)
        finally:
            socket.close()

    done = inThread(run)
    client = RPCClient(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, address), timeout=5.0)
    await fails(client.callRemote("add", 1, 2), ZmqProtocolError)
    assert await client.callRemote("add", 1, 2) == 3  # the next reply is read normally
    await done
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_an_error_reply_in_the_other_builtin_serializer_is_read(zmq_factory, zmq_address):
    server = RPCServer(
        zmq_factory,
        ZmqEndpoint(ZmqEndpointType.bind, zmq_address("inproc")),
        Calculator(),
        serializer=JSONSerializer(),
    )
    client = RPCClient(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, server.lastEndpoint), timeout=5.0
    )
    error = await refused(client.callRemote("add", 1, 2), "BadSerializer")
    assert error.message == "this server uses json, not 'msgpack'"
    client.shutdown()
    server.shutdown()


def test_a_service_without_exposed_methods_is_refused(zmq_factory):
    with pytest.raises(ValueError, match="no method marked with @expose"):
        RPCServer(zmq_factory, None, Calculator.hidden)


def test_an_exception_raised_by_a_method_is_not_a_refusal():
    assert not issubclass(Boom, RemoteError)
