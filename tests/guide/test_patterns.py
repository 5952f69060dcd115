"""
The Guide's request-reply patterns with one side ours and the other a reference peer written
from the Guide's description (``tests/guide/reference.py``): our client and server through
the Guide's request-reply broker; Lazy Pirate both ways (the Guide's client against our server
killed and restarted, our client against the Guide's crashing server); Paranoid Pirate both
ways (the Guide's worker behind our queue, our worker behind the Guide's queue,
examples/paranoid_pirate.py being ours) and our client through the Guide's queue and workers;
our clients and workers through the Guide's load-balancing broker. The Guide's peers count
frames, so our REQ connections talk to them with ``requestIds = False``.

Hello world, rrclient/rrworker through ``txzmq2 broker``, the load-balancing broker with the
Guide's REQ peers, and Majordomo both ways have their tests in tests/core/test_interop.py,
tests/cli/test_devices.py, tests/test_proxy.py and tests/mdp.
"""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred, gatherResults

from tests.guide.reference import (
    LazyPirateServer,
    LoadBalancingBroker,
    PirateQueue,
    PirateWorker,
    RequestReplyBroker,
    lazyPirateClient,
)
from tests.peers import ScriptProcess, inThread
from tests.test_reliability import SERVER
from txzmq2 import (
    ZmqConnectionClosed,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqREPConnection,
    ZmqREQConnection,
)

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 1.0
"""Seconds a Lazy Pirate client waits for a reply before it tries again..."""
RETRIES = 30
"""...this many times: generous, for a loaded machine (a try that is answered costs no wait)."""
PIRATE_INTERVAL = 0.5
"""Paranoid Pirate's heartbeat interval here, on both sides (the example's demo uses 0.1 s):
1.5 s of silence ends a peer, which a loaded machine does not reach by accident."""
REQUESTS = [b"%d" % n for n in range(1, 21)]


def paranoidPirate() -> ModuleType:
    """examples/paranoid_pirate.py, our queue and worker of the pattern."""
    path = pathlib.Path(__file__).parent.parent.parent / "examples" / "paranoid_pirate.py"
    spec = importlib.util.spec_from_file_location("paranoid_pirate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HEARTBEAT_INTERVAL = PIRATE_INTERVAL  # read when its queue and workers are made
    return module


class PlainREQ(ZmqREQConnection):
    """Our REQ connection with a libzmq REQ socket's framing, for peers that count frames."""

    requestIds = False


def connected(factory: Any, address: str, connectionClass: type[Any] = PlainREQ) -> Any:
    return connectionClass(factory, ZmqEndpoint(ZmqEndpointType.connect, address))


class Echo(ZmqREPConnection):
    def handleRequest(self, *parts: bytes) -> list[bytes]:
        return [b"re", *parts]


@pytest_twisted.ensureDeferred
async def test_our_client_and_server_talk_through_the_guides_request_reply_broker(
    zmq_factory, runPeer, peerContext
):
    broker = RequestReplyBroker(peerContext)
    runPeer(broker)
    servers = [
        Echo(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, broker.backend)) for _ in range(2)
    ]
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, broker.frontend))
    replies = await gatherResults(
        [client.sendMsg(b"hello", b"%d" % n, timeout=10) for n in range(20)]
    )
    assert replies == [[b"re", b"hello", b"%d" % n] for n in range(20)]
    client.shutdown()
    for server in servers:
        server.shutdown()


@pytest_twisted.ensureDeferred
async def test_guides_lazy_pirate_client_survives_our_server_crashing_and_restarting(
    peerContext,
):
    server = ScriptProcess(SERVER)
    try:
        endpoint = await server.start("tcp://127.0.0.1:*", "--crash")
        requests = [*REQUESTS[:5], b"crash", *REQUESTS[5:]]
        client = inThread(
            lambda: lazyPirateClient(peerContext, endpoint, requests, TIMEOUT, RETRIES)
        )
        # Our server dies holding b"crash"; the client's retries reach its restart.
        assert await server.exited() == 1
        assert await server.start(endpoint) == endpoint
        replies, resent = await client
    finally:
        server.kill()
    assert replies == [[b"ok", request] for request in requests]
    assert resent >= 1


@pytest_twisted.ensureDeferred
async def test_guides_pirate_workers_serve_a_lazy_pirate_client_behind_our_queue(
    zmq_factory, runPeer, peerContext
):
    pirate = paranoidPirate()
    queue = pirate.PirateQueue(zmq_factory, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
    try:
        workers = [
            PirateWorker(peerContext, queue.backend.lastEndpoint, pirate.HEARTBEAT_INTERVAL)
            for _ in range(2)
        ]
        answered = [runPeer(worker) for worker in workers]
        replies, _ = await inThread(
            lambda: lazyPirateClient(
                peerContext, queue.frontend.lastEndpoint, REQUESTS, TIMEOUT, RETRIES
            )
        )
        assert replies == [[request] for request in REQUESTS]
        for worker in workers:
            worker.stop()
        assert sum(await gatherResults(answered)) >= len(REQUESTS)
        assert [worker.invalid for worker in workers] == [[], []]
    finally:
        queue.shutdown()


@pytest_twisted.ensureDeferred
async def test_our_pirate_workers_serve_a_lazy_pirate_client_behind_the_guides_queue(
    zmq_factory, runPeer, peerContext
):
    pirate = paranoidPirate()
    queue = PirateQueue(peerContext, pirate.HEARTBEAT_INTERVAL, pirate.HEARTBEAT_LIVENESS)
    runPeer(queue)
    workers = [pirate.PirateWorker(zmq_factory, f"w{n}", queue.backend) for n in (1, 2)]
    try:
        replies, _ = await inThread(
            lambda: lazyPirateClient(peerContext, queue.frontend, REQUESTS, TIMEOUT, RETRIES)
        )
        assert replies == [[request] for request in REQUESTS]
        assert sum(worker.answered for worker in workers) >= len(REQUESTS)
        assert queue.invalid == []
    finally:
        for worker in workers:
            worker.stop()


@pytest_twisted.ensureDeferred
async def test_our_lazy_pirate_client_survives_the_guides_server_crashing_and_restarting(
    zmq_factory, zmq_address, runPeer, peerContext
):
    # ipc: the restarted server binds the same address at once (libzmq closes the crashed
    # one's listener in the background, and a tcp port may still be held then).
    first = LazyPirateServer(peerContext, zmq_address("ipc"), crashAt=3)
    crashed = runPeer(first)
    client = connected(zmq_factory, first.endpoint)
    replies = [await client.sendMsg(b"%d" % n, timeout=TIMEOUT, retries=RETRIES) for n in (1, 2)]
    pending = client.sendMsg(b"3", timeout=TIMEOUT, retries=RETRIES)
    assert await crashed == "crashed"  # took request 3 down with it
    runPeer(LazyPirateServer(peerContext, first.endpoint))
    replies.append(await pending)
    replies += [await client.sendMsg(b"%d" % n, timeout=TIMEOUT, retries=RETRIES) for n in (4, 5)]
    assert replies == [[b"%d" % n] for n in range(1, 6)]
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_our_lazy_pirate_client_is_served_through_the_guides_queue_and_workers(
    zmq_factory, runPeer, peerContext
):
    pirate = paranoidPirate()
    queue = PirateQueue(peerContext, pirate.HEARTBEAT_INTERVAL, pirate.HEARTBEAT_LIVENESS)
    runPeer(queue)
    workers = [PirateWorker(peerContext, queue.backend, pirate.HEARTBEAT_INTERVAL) for _ in "ab"]
    for worker in workers:
        runPeer(worker)
    client = connected(zmq_factory, queue.frontend)
    replies = [
        await client.sendMsg(request, timeout=TIMEOUT, retries=RETRIES) for request in REQUESTS
    ]
    assert replies == [[request] for request in REQUESTS]
    assert [worker.invalid for worker in workers] == [[], []]
    client.shutdown()


async def lbWorker(connection: PlainREQ) -> int:
    """Our worker of the load-balancing pattern: READY, then answer each job; count them."""
    served = 0
    try:
        job = await connection.sendMsg(b"READY")
        while True:
            client, empty, request = job
            assert empty == b""
            served += 1
            job = await connection.sendMsg(client, b"", b"done " + request)
    except ZmqConnectionClosed:
        return served


@pytest_twisted.ensureDeferred
async def test_our_clients_and_workers_work_through_the_guides_load_balancing_broker(
    zmq_factory, runPeer, peerContext
):
    broker = LoadBalancingBroker(peerContext)
    runPeer(broker)
    workerConnections = [connected(zmq_factory, broker.backend) for _ in range(3)]
    served = [ensureDeferred(lbWorker(connection)) for connection in workerConnections]
    clients = [connected(zmq_factory, broker.frontend) for _ in range(4)]

    async def ask(client: PlainREQ, name: bytes) -> list[list[bytes]]:
        return [await client.sendMsg(b"%s-%d" % (name, n), timeout=10) for n in range(5)]

    answers = await gatherResults(
        [ensureDeferred(ask(client, b"c%d" % n)) for n, client in enumerate(clients)]
    )
    assert answers == [[[b"done c%d-%d" % (c, n)] for n in range(5)] for c in range(4)]
    assert broker.invalid == []
    for connection in [*clients, *workerConnections]:
        connection.shutdown()
    assert sum(await gatherResults(served)) == 20
    assert len(broker.served) == 3  # every worker had work
