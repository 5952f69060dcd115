"""
MajordomoWorker against brokers that are not ours: a raw ROUTER the test drives frame by
frame (to see exactly what the worker sends, and to misbehave), and the reference broker
written from the RFC text, with a reference client.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater

from tests.mdp.conftest import INTERVAL, LIVENESS, RawRouter, echo, saying, until
from tests.mdp.reference import (
    DISCONNECT,
    HEARTBEAT,
    MDPW01,
    READY,
    REPLY,
    REQUEST,
    RfcBroker,
    rfcRequest,
)
from tests.peers import inThread
from tests.stalls import stallReactor
from txzmq2 import ZmqEndpoint
from txzmq2.mdp import MajordomoWorker

pytestmark = pytest.mark.timeout(30)


class Boom(Exception):
    """Raised by a handler under test."""


async def nextFrom(router: Any) -> tuple[bytes, list[bytes]]:
    """The next message the raw router got: sender identity and frames."""
    sender, *frames = await router.inbox.next()
    return sender, frames


async def registration(router: Any, service: bytes = b"echo") -> bytes:
    """Wait for a READY; return the identity of the worker's connection that sent it."""
    sender, frames = await nextFrom(router)
    assert frames == [b"", MDPW01, READY, service]
    return sender


def request(worker: bytes, client: bytes, *body: bytes) -> list[bytes]:
    return [worker, b"", MDPW01, REQUEST, client, b"", *body]


# -- registration and heartbeats -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_worker_sends_one_READY_then_only_heartbeats(mdp):
    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo")
    identity = await registration(router)
    for _ in range(LIVENESS - 1):
        router.send([identity, b"", MDPW01, HEARTBEAT])  # the broker is alive
        assert await nextFrom(router) == (identity, [b"", MDPW01, HEARTBEAT])


@pytest_twisted.ensureDeferred
async def test_worker_reconnects_on_a_new_socket_when_the_broker_falls_silent(mdp, logged):
    from twisted.internet import reactor

    router = mdp.router()
    startedAt = reactor.seconds()
    mdp.worker(router.lastEndpoint, "echo")
    first = await registration(router)
    while (message := await nextFrom(router)) == (first, [b"", MDPW01, HEARTBEAT]):
        pass
    # It says goodbye on the old socket, in case the broker was only slow...
    assert message == (first, [b"", MDPW01, DISCONNECT])
    assert reactor.seconds() - startedAt >= LIVENESS * INTERVAL
    # ...and registers again on a new one.
    assert await registration(router) != first
    assert saying(logged, "reconnecting in")


@pytest_twisted.ensureDeferred
async def test_worker_registers_again_on_a_new_socket_after_DISCONNECT(mdp):
    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo")
    first = await registration(router)
    router.send([first, b"", MDPW01, DISCONNECT])
    # Nothing more on the old socket (no DISCONNECT back): the next message is a new READY.
    assert await registration(router) != first


@pytest_twisted.ensureDeferred
async def test_factory_shutdown_stops_a_worker_waiting_to_reconnect(zmq_factory):
    from twisted.internet import reactor

    router = RawRouter(zmq_factory, ZmqEndpoint("bind", "tcp://127.0.0.1:*"))
    worker = MajordomoWorker(
        zmq_factory,
        ZmqEndpoint("connect", router.lastEndpoint),
        "echo",
        echo,
        heartbeatInterval=INTERVAL,
        reconnectDelay=30.0,
        maxReconnectDelay=30.0,
    )
    first = await registration(router)
    router.send([first, b"", MDPW01, DISCONNECT])
    await until(lambda: worker.connection is None)  # waiting 30 s to reconnect
    await zmq_factory.shutdown()
    assert [call for call in reactor.getDelayedCalls() if call.active()] == []


@pytest_twisted.ensureDeferred
async def test_reconnect_delay_doubles_up_to_its_maximum(mdp):
    from twisted.internet import reactor

    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo", reconnectDelay=0.05, maxReconnectDelay=0.2)
    times = []
    for _ in range(6):
        identity = await registration(router)
        times.append(reactor.seconds())
        router.send([identity, b"", MDPW01, DISCONNECT])
    gaps = [later - earlier for earlier, later in pairwise(times)]
    for gap, delay in zip(gaps, [0.05, 0.1, 0.2, 0.2, 0.2], strict=True):
        assert gap >= delay * 0.99
    assert gaps[-1] < 0.6  # capped at the maximum, not 0.8 by now


@pytest_twisted.ensureDeferred
async def test_reconnect_delay_starts_over_once_the_broker_is_heard_from(mdp):
    from twisted.internet import reactor

    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo", reconnectDelay=0.05, maxReconnectDelay=10.0)
    for _ in range(4):  # delays of 0.05, 0.1, 0.2, then 0.4 s are spent
        router.send([await registration(router), b"", MDPW01, DISCONNECT])
    identity = await registration(router)
    router.send([identity, b"", MDPW01, HEARTBEAT])
    assert await nextFrom(router) == (identity, [b"", MDPW01, HEARTBEAT])
    router.send([identity, b"", MDPW01, DISCONNECT])
    disconnectedAt = reactor.seconds()
    await registration(router)
    assert reactor.seconds() - disconnectedAt < 0.4  # 0.05 again, not 0.8


# -- requests --------------------------------------------------------------------------------


def plainHandler(*frames: bytes) -> list[bytes]:
    return [b"got", *frames]


def bytesHandler(*frames: bytes) -> bytes:
    return b"got " + b" ".join(frames)


def deferredHandler(*frames: bytes) -> Deferred[list[bytes]]:
    from twisted.internet import reactor

    return deferLater(reactor, 0.01, lambda: [b"got", *frames])


async def coroutineHandler(*frames: bytes) -> list[bytes]:
    return await succeed([b"got", *frames])


@pytest.mark.parametrize(
    ("handler", "reply"),
    [
        (plainHandler, [b"got", b"a", b"b"]),
        (bytesHandler, [b"got a b"]),
        (deferredHandler, [b"got", b"a", b"b"]),
        (coroutineHandler, [b"got", b"a", b"b"]),
    ],
    ids=["list", "bytes", "Deferred", "coroutine"],
)
@pytest_twisted.ensureDeferred
async def test_what_the_handler_returns_becomes_the_REPLY(mdp, handler, reply):
    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo", handler)
    identity = await registration(router)
    router.send(request(identity, b"client-7", b"a", b"b"))
    assert await nextFrom(router) == (identity, [b"", MDPW01, REPLY, b"client-7", b"", *reply])


@pytest_twisted.ensureDeferred
async def test_failing_handler_is_logged_and_the_worker_registers_afresh(mdp, logged):
    def handler(*frames: bytes) -> list[bytes]:
        if frames == (b"boom",):
            raise Boom("the handler broke")
        return list(frames)

    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo", handler)
    first = await registration(router)
    router.send(request(first, b"client", b"boom"))
    # No REPLY: DISCONNECT, so the broker stops counting this worker as busy...
    assert await nextFrom(router) == (first, [b"", MDPW01, DISCONNECT])
    # ...and a new registration, at once, that serves the next request.
    second = await registration(router)
    router.send(request(second, b"client", b"fine"))
    assert await nextFrom(router) == (second, [b"", MDPW01, REPLY, b"client", b"", b"fine"])
    [failure] = [e["log_failure"] for e in logged if "log_failure" in e]
    assert failure.check(Boom)


@pytest_twisted.ensureDeferred
async def test_handler_returning_no_reply_counts_as_a_failure(mdp, logged):
    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo", lambda *frames: None)
    first = await registration(router)
    router.send(request(first, b"client", b"x"))
    assert await nextFrom(router) == (first, [b"", MDPW01, DISCONNECT])
    [failure] = [e["log_failure"] for e in logged if "log_failure" in e]
    assert failure.check(TypeError)


@pytest_twisted.ensureDeferred
async def test_reply_to_a_request_from_a_broker_that_has_since_disconnected_is_dropped(
    mdp, logged
):
    held: Deferred[list[bytes]] = Deferred()

    def handler(*frames: bytes) -> Any:
        return held if frames == (b"slow",) else list(frames)

    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo", handler)
    first = await registration(router)
    router.send(request(first, b"client-1", b"slow"))
    router.send([first, b"", MDPW01, DISCONNECT])
    second = await registration(router)
    held.callback([b"late"])
    assert saying(logged, "reply to {client!r} dropped")
    # Had the late reply gone out on the new socket, it would come before this one's reply.
    router.send(request(second, b"client-2", b"quick"))
    assert await nextFrom(router) == (second, [b"", MDPW01, REPLY, b"client-2", b"", b"quick"])


@pytest_twisted.ensureDeferred
async def test_malformed_message_from_the_broker_is_dropped_and_logged(mdp, logged):
    router = mdp.router()
    mdp.worker(router.lastEndpoint, "echo")
    identity = await registration(router)
    router.send([identity, b"junk"])
    router.send([identity, b"", MDPW01, READY, b"echo"])  # a broker never sends READY
    router.send(request(identity, b"client", b"hello"))
    assert await nextFrom(router) == (identity, [b"", MDPW01, REPLY, b"client", b"", b"hello"])
    assert len(saying(logged, "malformed message from the broker")) == 1
    assert len(saying(logged, "(only brokers get those)")) == 1


# -- against the reference broker ------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_worker_answers_an_rfc_client_through_an_rfc_broker(mdp, runPeer, peerContext):
    broker = RfcBroker(peerContext, interval=INTERVAL, liveness=LIVENESS)
    runPeer(broker)
    mdp.worker(broker.address, "upper", lambda text: text.upper())
    reply = await inThread(rfcRequest, peerContext, broker.address, b"upper", b"quiet")
    assert reply == [b"QUIET"]


@pytest_twisted.ensureDeferred
async def test_worker_stays_registered_with_an_rfc_broker_over_many_heartbeats(
    mdp, runPeer, peerContext, logged
):
    broker = RfcBroker(peerContext, interval=INTERVAL, liveness=LIVENESS)
    runPeer(broker)
    mdp.worker(broker.address, "echo")
    heartbeat = [b"", MDPW01, HEARTBEAT]

    def heartbeats() -> int:
        return sum(1 for _, frames in list(broker.received) if frames == heartbeat)

    await until(lambda: heartbeats() >= 3 * LIVENESS)
    readies = [frames for _, frames in list(broker.received) if frames[2:3] == [READY]]
    assert readies == [[b"", MDPW01, READY, b"echo"]]
    assert not saying(logged, "reconnecting in")


@pytest_twisted.ensureDeferred
async def test_reactor_stall_does_not_make_the_worker_take_a_heartbeating_broker_for_gone(
    mdp, runPeer, peerContext, logged
):
    # The broker heartbeats every interval throughout, and is patient with our silence
    # while the reactor is held (that is not what this test is about).
    broker = RfcBroker(peerContext, interval=INTERVAL, liveness=100 * LIVENESS)
    runPeer(broker)
    worker = mdp.worker(broker.address, "echo")
    await until(lambda: len(broker.received) >= 2)  # READY, then a heartbeat: connected
    connection = worker.connection
    # Three times as long as the worker waits for a silent broker; the broker's heartbeats
    # of that time wait in the worker's socket.
    await stallReactor(3 * LIVENESS * INTERVAL)
    reply = await inThread(rfcRequest, peerContext, broker.address, b"echo", b"after")
    assert reply == [b"after"]
    assert worker.connection is connection
    readies = [frames for _, frames in list(broker.received) if frames[2:3] == [READY]]
    assert readies == [[b"", MDPW01, READY, b"echo"]]
    assert not saying(logged, "reconnecting in")


# -- shutdown --------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_shutdown_says_DISCONNECT_and_cancels_the_request_in_hand(mdp):
    held: Deferred[list[bytes]] = Deferred()
    calls: list[tuple[bytes, ...]] = []

    def handler(*frames: bytes) -> Deferred[list[bytes]]:
        calls.append(frames)
        return held

    router = mdp.router()
    worker = mdp.worker(router.lastEndpoint, "echo", handler)
    identity = await registration(router)
    router.send(request(identity, b"client", b"x"))
    await until(lambda: calls)
    worker.shutdown()
    assert held.called  # cancelled
    assert worker.connection is None
    assert await nextFrom(router) == (identity, [b"", MDPW01, DISCONNECT])


@pytest_twisted.ensureDeferred
async def test_factory_shutdown_stops_the_worker(zmq_factory, mdp):
    router = mdp.router()
    worker = mdp.worker(router.lastEndpoint, "echo")
    await registration(router)
    await zmq_factory.shutdown()
    assert worker.connection is None  # and no timer left: the suite checks that


def test_worker_refuses_a_service_in_the_mmi_namespace(zmq_factory):
    from txzmq2 import ZmqEndpoint
    from txzmq2.mdp import MajordomoWorker

    with pytest.raises(ValueError, match="mmi"):
        MajordomoWorker(zmq_factory, ZmqEndpoint("connect", "tcp://127.0.0.1:1"), "mmi.x", repr)
