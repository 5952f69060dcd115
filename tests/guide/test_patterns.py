"""
The Guide's request-reply patterns with one side ours and the other a reference peer written
from the Guide's description (``tests/guide/reference.py``): our client and server through
the Guide's request-reply broker, the Guide's Lazy Pirate client against our server killed
and restarted, and Paranoid Pirate both ways (the Guide's worker behind our queue, our
worker behind the Guide's queue; examples/paranoid_pirate.py is ours).

Hello world, rrclient/rrworker through ``txzmq2 broker``, the load-balancing broker with the
Guide's REQ peers, and Majordomo both ways have their tests in tests/core/test_interop.py,
tests/cli/test_devices.py, tests/test_proxy.py and tests/mdp.
"""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import pytest
import pytest_twisted
from twisted.internet.defer import gatherResults

from tests.guide.reference import (
    PirateQueue,
    PirateWorker,
    RequestReplyBroker,
    lazyPirateClient,
)
from tests.peers import ScriptProcess, inThread
from tests.test_reliability import SERVER
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqREPConnection, ZmqREQConnection

pytestmark = pytest.mark.timeout(60)

TIMEOUT = 0.5
"""Seconds a Lazy Pirate client waits for a reply before it tries again."""
RETRIES = 20
REQUESTS = [b"%d" % n for n in range(1, 21)]


def paranoidPirate() -> ModuleType:
    """examples/paranoid_pirate.py, our queue and worker of the pattern."""
    path = pathlib.Path(__file__).parent.parent.parent / "examples" / "paranoid_pirate.py"
    spec = importlib.util.spec_from_file_location("paranoid_pirate", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
        # Heard from often enough that no worker ever took our queue for gone.
        assert [worker.connections for worker in workers] == [1, 1]
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
        # Heard from often enough that no worker ever took the Guide's queue for gone.
        assert [worker.generation for worker in workers] == [1, 1]
    finally:
        for worker in workers:
            worker.stop()
