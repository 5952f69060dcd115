"""
Lazy Pirate: a client with ``retries`` survives a server that is killed (SIGKILL) mid-stream
and restarted on the same address; every request's Deferred fires exactly once.
"""

from __future__ import annotations

import textwrap

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, gatherResults

from tests.peers import ScriptProcess
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqREQConnection, ZmqRequestTimeoutError

SERVER = textwrap.dedent(
    """
    import os, sys
    from twisted.internet import task
    from twisted.internet.defer import Deferred, ensureDeferred
    from txzmq2 import ZmqEndpoint, ZmqFactory, ZmqREPConnection

    class Server(ZmqREPConnection):
        def handleRequest(self, *parts):
            if parts == (b"crash",) and "--crash" in sys.argv:
                os._exit(1)  # dies holding the request: only a retry can save it
            return [b"ok", *parts]

    async def main(reactor):
        factory = ZmqFactory(reactor)
        server = Server(factory, ZmqEndpoint("bind", sys.argv[1]))
        print(server.lastEndpoint, flush=True)
        await Deferred()  # serve until killed

    task.react(lambda reactor: ensureDeferred(main(reactor)))
    """
)


@pytest.fixture
def server():
    """A txzmq2 REP server in a subprocess, killable with SIGKILL and restartable."""
    process = ScriptProcess(SERVER)
    yield process
    process.kill()


def _counted(deferred: Deferred, fired: list[int], index: int) -> Deferred:
    def count(result):
        fired[index] += 1
        return result

    return deferred.addBoth(count)


@pytest_twisted.ensureDeferred
async def test_request_held_by_a_crashing_server_is_answered_by_its_restart(
    zmq_factory, server, loggedFailures
):
    endpoint = await server.start("tcp://127.0.0.1:*", "--crash")
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, endpoint))
    total = 20
    fired = [0] * total
    replies = []
    for n in range(total):
        if n == 10:
            # The server receives this request and dies without answering.
            pending = _counted(client.sendMsg(b"crash", timeout=0.3, retries=20), fired, n)
            assert await server.exited() == 1
            assert await server.start(endpoint) == endpoint
            replies.append(await pending)
            continue
        reply = client.sendMsg(b"%d" % n, timeout=0.3, retries=20)
        replies.append(await _counted(reply, fired, n))
    expected = [[b"ok", b"%d" % n] for n in range(total)]
    expected[10] = [b"ok", b"crash"]
    assert replies == expected
    assert fired == [1] * total
    assert client.pendingRequests == 0
    assert loggedFailures == []
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_request_to_a_crashing_server_without_retries_times_out(zmq_factory, server):
    endpoint = await server.start("tcp://127.0.0.1:*", "--crash")
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, endpoint))
    with pytest.raises(ZmqRequestTimeoutError):
        await client.sendMsg(b"crash", timeout=0.3)
    assert await server.exited() == 1
    assert client.pendingRequests == 0
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_outstanding_requests_survive_server_kill_and_restart(
    zmq_factory, server, loggedFailures
):
    endpoint = await server.start("tcp://127.0.0.1:*")
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, endpoint))
    first = await client.sendMsg(b"warm-up", timeout=5)
    assert first == [b"ok", b"warm-up"]
    server.kill()
    total = 50
    fired = [0] * total
    requests = [
        _counted(client.sendMsg(b"%d" % n, timeout=0.3, retries=20), fired, n)
        for n in range(total)
    ]
    assert await server.start(endpoint) == endpoint
    replies = await gatherResults(requests, consumeErrors=True)
    assert replies == [[b"ok", b"%d" % n] for n in range(total)]
    assert fired == [1] * total
    assert client.pendingRequests == 0
    assert loggedFailures == []
    client.shutdown()
