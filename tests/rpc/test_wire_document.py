"""
docs/rpc.md is enough to write a client: a plain blocking pyzmq DEALER, built only from what
that page says (literal headers, msgpack bodies; nothing imported from txzmq2.rpc's wire
code), drives an RPCServer through every kind of exchange the page documents.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from typing import Any

import msgpack
import pytest
import pytest_twisted
import zmq

from tests.peers import blockingSocket, inThread
from tests.rpc.support import Calculator
from txzmq2 import ZmqEndpoint, ZmqEndpointType
from txzmq2.rpc import RPCServer

DOCUMENT = (pathlib.Path(__file__).parents[2] / "docs" / "rpc.md").read_text()

# The headers, as docs/rpc.md spells them.
CALL = b"txzmq2-rpc/1 call msgpack"
NOTIFY = b"txzmq2-rpc/1 notify msgpack"
REPLY = b"txzmq2-rpc/1 reply msgpack"
ERROR = b"txzmq2-rpc/1 error msgpack"


def test_the_document_spells_the_headers_this_test_uses():
    for header in (CALL, NOTIFY, REPLY, ERROR):
        assert f"`{header.decode()}`" in DOCUMENT
    assert "txzmq2-rpc/<version> <kind> <serializer>" in DOCUMENT


def test_the_worked_example_bytes_are_right():
    words = " ".join(DOCUMENT.split())  # the page wraps long byte strings
    for body in (["add", [1, 2], {}], ["greet", ["you"], {"punctuation": "?"}]):
        assert msgpack.packb(body).hex(" ") in words


def documentedClient(socket: Any) -> dict[str, Any]:
    """Everything the page shows a client doing, on one DEALER; returns what came back."""
    seen: dict[str, Any] = {}

    def call(requestId: bytes, body: list[Any]) -> tuple[bytes, Any]:
        socket.send_multipart([requestId, b"", CALL, msgpack.packb(body)])
        replyId, empty, header, payload = socket.recv_multipart()
        assert (replyId, empty) == (requestId, b"")
        return header, msgpack.unpackb(payload)

    seen["add"] = call(b"01", ["add", [1, 2], {}])
    seen["greet"] = call(b"02", ["greet", ["you"], {"punctuation": "?"}])
    seen["sub"] = call(b"03", ["sub", [], {}])
    seen["arguments"] = call(b"04", ["add", [1], {}])
    seen["raises"] = call(b"05", ["fail", ["no"], {}])

    # A notify: no request id, and no reply; the call after it is the next thing answered.
    socket.send_multipart([b"", NOTIFY, msgpack.packb(["record", ["noted"], {}])])
    seen["after notify"] = call(b"06", ["add", [3, 3], {}])

    # Another version, and JSON to a msgpack server: refused, in version 1, in msgpack.
    socket.send_multipart([b"07", b"", b"txzmq2-rpc/2 call msgpack", b"whatever"])
    seen["version 2"] = socket.recv_multipart()
    socket.send_multipart([b"08", b"", b"txzmq2-rpc/1 call json", b'["add",[1,2],{}]'])
    seen["json"] = socket.recv_multipart()

    # Replies are matched by id, in any order: the slow call is answered after the fast one.
    socket.send_multipart([b"slow", b"", CALL, msgpack.packb(["slowDouble", [21], {}])])
    socket.send_multipart([b"fast", b"", CALL, msgpack.packb(["record", ["fast"], {}])])
    seen["replies in turn"] = [
        (reply[0], reply[2], msgpack.unpackb(reply[3]))
        for reply in (socket.recv_multipart(), socket.recv_multipart())
    ]
    return seen


@pytest.mark.timeout(20)
@pytest_twisted.ensureDeferred
async def test_a_client_built_from_the_document_is_served(zmq_factory, zmq_address):
    service = Calculator()
    server = RPCServer(zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, zmq_address("tcp")), service)
    address = server.lastEndpoint

    def run() -> dict[str, Any]:
        socket = blockingSocket(zmq_factory.context, zmq.DEALER)
        try:
            socket.connect(address)
            return documentedClient(socket)
        finally:
            socket.close()

    done = inThread(run)
    # The fast call has run (and so been answered): now let the slow one finish.
    await service.recordedValues(2)
    service.release()
    seen = await done

    assert seen["add"] == (REPLY, 3)
    assert seen["greet"] == (REPLY, "hello you?")
    assert seen["sub"] == (
        ERROR,
        {"type": "NoSuchMethod", "message": "no exposed method 'sub'", "traceback": None},
    )
    assert seen["arguments"][0] == ERROR
    assert seen["arguments"][1]["type"] == "BadArguments"
    assert seen["raises"] == (ERROR, {"type": "Boom", "message": "no", "traceback": None})
    assert seen["after notify"] == (REPLY, 6)
    assert service.recorded == ["noted", "fast"]
    requestId, empty, header, payload = seen["version 2"]
    assert (requestId, empty, header) == (b"07", b"", ERROR)
    assert msgpack.unpackb(payload)["type"] == "BadVersion"
    requestId, empty, header, payload = seen["json"]
    assert (requestId, empty, header) == (b"08", b"", ERROR)
    assert msgpack.unpackb(payload)["type"] == "BadSerializer"
    assert seen["replies in turn"] == [(b"fast", REPLY, None), (b"slow", REPLY, 42)]
    server.shutdown()


@pytest.mark.timeout(40)
@pytest_twisted.ensureDeferred
async def test_the_documented_client_in_a_few_lines_runs(zmq_factory, zmq_address):
    # The block is labelled a fragment for tests/test_docs.py: it needs this server.
    found = re.search(r"### A client in a few lines.*?```python[^\n]*\n(.*?)```", DOCUMENT, re.S)
    assert found is not None, "docs/rpc.md lost its client example"
    server = RPCServer(
        zmq_factory, ZmqEndpoint(ZmqEndpointType.bind, zmq_address("tcp")), Calculator()
    )
    code = found.group(1).replace("tcp://127.0.0.1:5555", server.lastEndpoint)
    result = await inThread(
        lambda: subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
        )
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "3\n"
    server.shutdown()
