"""
Majordomo peers that are silent while they work, as the Guide's are: its brokers heartbeat
only idle workers, and its worker API sends nothing while the application handles a request.

Our worker must not give up on a broker that is silent while the worker holds a request, nor
drop the finished reply; our broker must not forget a busy, silent worker before
``busyWorkerExpiry``. The last two tests run a 10-second request at the Guide's own timings
(heartbeat 2.5 s, liveness 3: 7.5 s of silence), one with each side a reference peer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from tests.mdp.conftest import INTERVAL, LIVENESS, until
from tests.mdp.reference import (
    DISCONNECT,
    HEARTBEAT,
    MDPC01,
    MDPW01,
    READY,
    REPLY,
    REQUEST,
    RfcBroker,
    RfcWorker,
    rfcRequest,
)
from tests.peers import inThread

pytestmark = pytest.mark.timeout(30)

BUSY = 1.0
"""Seconds a busy peer works in the fast tests: over three times the silence that expires
an idle peer (``LIVENESS * INTERVAL``)."""
GUIDE_INTERVAL, GUIDE_LIVENESS = 2.5, 3
"""The Guide's Majordomo timings (and our defaults)."""
SLOW = 10.0
"""Seconds of the slow request: longer than the Guide's 7.5 s of liveness."""


@pytest.fixture
def released() -> Iterator[threading.Event]:
    """Set after the test: a reference worker still working stops at once."""
    event = threading.Event()
    yield event
    event.set()


def working(seconds: float, released: threading.Event) -> Callable[[list[bytes]], list[bytes]]:
    """A reference worker's handler: blocks its thread ``seconds`` (like the Guide's
    worker application), then echoes the body."""

    def handle(body: list[bytes]) -> list[bytes]:
        released.wait(seconds)
        return [b"done", *body]

    return handle


def ask(context: Any, address: str, body: bytes, timeout: float) -> Any:
    """A reference client's request to the service ``work``, in a thread."""
    return inThread(lambda: rfcRequest(context, address, b"work", body, timeout=timeout))


def worksFor(seconds: float) -> Callable[..., Any]:
    """Our worker's handler: answers after ``seconds``, echoing the body."""

    def handler(*body: bytes) -> Any:
        return deferLater(reactor, seconds, lambda: [b"done", *body])

    return handler


# -- our broker, a worker silent while busy ---------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_broker_keeps_a_busy_silent_worker_past_liveness_and_passes_on_its_reply(
    mdp, runPeer, peerContext, released
):
    broker = mdp.broker()
    worker = RfcWorker(peerContext, broker.lastEndpoint, b"work", working(BUSY, released))
    runPeer(worker)
    await until(lambda: broker.services == {b"work": 1})
    assert await ask(peerContext, broker.lastEndpoint, b"job", timeout=BUSY + 5) == [
        b"done",
        b"job",
    ]
    assert DISCONNECT not in worker.commands
    assert broker.services == {b"work": 1}


@pytest_twisted.ensureDeferred
async def test_broker_forgets_a_busy_worker_silent_for_busyWorkerExpiry(mdp, logged):
    broker = mdp.broker(busyWorkerExpiry=BUSY)
    worker = mdp.dealer(broker.lastEndpoint)
    worker.send([b"", MDPW01, READY, b"work"])
    assert await worker.inbox.next() == [b"", MDPW01, HEARTBEAT]  # greeted
    client = mdp.dealer(broker.lastEndpoint)
    client.send([b"", MDPC01, b"work", b"job"])
    while (message := await worker.inbox.next())[2] != REQUEST:
        pass
    givenAt = reactor.seconds()
    await until(lambda: not broker.services, timeout=BUSY + 5)
    assert reactor.seconds() - givenAt >= BUSY
    why = [event["why"] for event in logged if "why" in event]
    assert why == [f"expired: silent for {BUSY} s while busy"]
    # Its late reply is a stranger's: DISCONNECT, and nothing reaches the client.
    worker.send([b"", MDPW01, REPLY, message[3], b"", b"late"])
    while (message := await worker.inbox.next()) == [b"", MDPW01, HEARTBEAT]:
        pass
    assert message == [b"", MDPW01, DISCONNECT]
    assert client.inbox.messages == []


@pytest.mark.parametrize("busyWorkerExpiry", [-1.0, 0.0])
def test_broker_refuses_a_busyWorkerExpiry_that_is_not_positive(mdp, busyWorkerExpiry):
    with pytest.raises(ValueError, match="busyWorkerExpiry"):
        mdp.broker(busyWorkerExpiry=busyWorkerExpiry)


# -- our worker, a broker silent while the worker is busy ---------------------------------------


@pytest_twisted.ensureDeferred
async def test_worker_holding_a_request_sends_its_reply_to_a_broker_silent_all_along(mdp):
    router = mdp.router()
    mdp.worker(router.lastEndpoint, "work", worksFor(BUSY))
    identity, *frames = await router.inbox.next()
    assert frames == [b"", MDPW01, READY, b"work"]
    router.send([identity, b"", MDPW01, REQUEST, b"client", b"", b"job"])
    # The broker says nothing more; the worker heartbeats, then replies on the same socket.
    while (message := await router.inbox.next(BUSY + 5)) == [identity, b"", MDPW01, HEARTBEAT]:
        pass
    assert message == [identity, b"", MDPW01, REPLY, b"client", b"", b"done", b"job"]


@pytest_twisted.ensureDeferred
async def test_worker_takes_a_broker_silent_after_its_reply_for_gone_after_liveness(mdp):
    router = mdp.router()
    mdp.worker(router.lastEndpoint, "work", worksFor(BUSY))
    identity, *_ = await router.inbox.next()
    router.send([identity, b"", MDPW01, REQUEST, b"client", b"", b"job"])
    while (message := await router.inbox.next(BUSY + 5))[3] != REPLY:
        pass
    repliedAt = reactor.seconds()
    while (message := await router.inbox.next()) == [identity, b"", MDPW01, HEARTBEAT]:
        pass
    assert message == [identity, b"", MDPW01, DISCONNECT]
    assert reactor.seconds() - repliedAt >= (LIVENESS - 1) * INTERVAL


# -- a 10-second request at the Guide's timings, both ways ------------------------------------


@pytest.mark.timeout(60)
@pytest_twisted.ensureDeferred
async def test_guide_like_broker_and_our_worker_serve_a_request_longer_than_liveness(
    mdp, runPeer, peerContext
):
    broker = RfcBroker(
        peerContext, interval=GUIDE_INTERVAL, liveness=GUIDE_LIVENESS, heartbeatBusyWorkers=False
    )
    runPeer(broker)
    mdp.worker(
        broker.address,
        "work",
        worksFor(SLOW),
        heartbeatInterval=GUIDE_INTERVAL,
        heartbeatLiveness=GUIDE_LIVENESS,
    )
    reply = await ask(peerContext, broker.address, b"job", timeout=SLOW + 10)
    assert reply == [b"done", b"job"]
    readies = [frames for _, frames in broker.received if frames[2:3] == [READY]]
    assert len(readies) == 1  # never took the broker for gone, never registered again


@pytest.mark.timeout(60)
@pytest_twisted.ensureDeferred
async def test_our_broker_and_a_guide_like_worker_serve_a_request_longer_than_liveness(
    mdp, runPeer, peerContext, released
):
    broker = mdp.broker(heartbeatInterval=GUIDE_INTERVAL, heartbeatLiveness=GUIDE_LIVENESS)
    worker = RfcWorker(
        peerContext,
        broker.lastEndpoint,
        b"work",
        working(SLOW, released),
        interval=GUIDE_INTERVAL,
        liveness=GUIDE_LIVENESS,
    )
    runPeer(worker)
    await until(lambda: broker.services == {b"work": 1}, timeout=GUIDE_INTERVAL * 2)
    reply = await ask(peerContext, broker.lastEndpoint, b"job", timeout=SLOW + 10)
    assert reply == [b"done", b"job"]
    assert DISCONNECT not in worker.commands
