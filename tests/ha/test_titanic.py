"""
Titanic in one process: a Majordomo broker, the service on a SQLite file in a temporary
directory, workers ours or written from 7/MDP, and a TSP client written from 9/TSP with
plain pyzmq. (SIGKILLed Titanic and worker processes: tests/faults/test_ha.py.)
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
import pytest_twisted
import zmq

from tests.ha.conftest import until
from tests.mdp.reference import RfcWorker, rfcRequest
from tests.peers import inThread
from txzmq2 import ZmqEndpoint, ZmqUnknownRequestError
from txzmq2.ha import TitanicClient, TitanicService
from txzmq2.ha._store import packFrames, unpackFrames
from txzmq2.mdp import MajordomoBroker, MajordomoWorker

pytestmark = pytest.mark.timeout(30)

INTERVAL = 0.1
"""Majordomo heartbeat of these tests."""


class Titanic:
    """A broker, the service and a client, shut down after the test."""

    def __init__(self, factory, database: str) -> None:
        self.factory = factory
        self.database = database
        self._made: list[Any] = []
        self.broker = self.keep(
            MajordomoBroker(
                factory, ZmqEndpoint("bind", "tcp://127.0.0.1:*"), heartbeatInterval=INTERVAL
            )
        )
        self.address = self.broker.lastEndpoint
        self.service = self.startService()
        self.client = self.keep(TitanicClient(factory, self.address, timeout=2.0, retries=2))

    def keep(self, made: Any) -> Any:
        self._made.append(made)
        return made

    def startService(self) -> TitanicService:
        return self.keep(
            TitanicService(
                self.factory,
                self.address,
                self.database,
                dispatchTimeout=0.5,
                retryDelay=0.05,
                heartbeatInterval=INTERVAL,
            )
        )

    def worker(self, service: str = "echo", handler=None) -> MajordomoWorker:
        handler = handler or (lambda *frames: [b"echo", *frames])
        return self.keep(
            MajordomoWorker(
                self.factory,
                ZmqEndpoint("connect", self.address),
                service,
                handler,
                heartbeatInterval=INTERVAL,
            )
        )

    async def replyTo(self, requestId: str) -> list[bytes]:
        """Poll ``titanic.reply`` until it has the reply (at most 10 s)."""
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        deadline = reactor.seconds() + 10
        while reactor.seconds() < deadline:
            reply = await self.client.reply(requestId)
            if reply is not None:
                return reply
            await deferLater(reactor, 0.02)
        pytest.fail(f"no reply to {requestId} within 10 s")

    def shutdown(self) -> None:
        for made in reversed(self._made):
            made.shutdown()


@pytest.fixture
def titanic(zmq_factory, tmp_path):
    made = Titanic(zmq_factory, str(tmp_path / "titanic.db"))
    yield made
    made.shutdown()


def test_frames_pack_and_unpack_as_they_were():
    for frames in ([b""], [b"a", b"", b"\x00" * 70_000], []):
        assert unpackFrames(packFrames(frames)) == frames


@pytest_twisted.ensureDeferred
async def test_submitted_request_is_answered_then_closed(titanic):
    titanic.worker()
    requestId = await titanic.client.submit("echo", b"hello", b"world")
    assert len(requestId) == 32 and int(requestId, 16) >= 0
    assert await titanic.replyTo(requestId) == [b"echo", b"hello", b"world"]
    # titanic.reply is idempotent until closed...
    assert await titanic.client.reply(requestId) == [b"echo", b"hello", b"world"]
    await titanic.client.close(requestId)
    # ...and after close the reply is gone for good.
    with pytest.raises(ZmqUnknownRequestError):
        await titanic.client.reply(requestId)
    await titanic.client.close(requestId)  # closing again is fine


@pytest_twisted.ensureDeferred
async def test_reply_is_pending_while_the_service_has_no_worker(titanic):
    requestId = await titanic.client.submit("echo", b"later")
    assert await titanic.client.reply(requestId) is None
    titanic.worker()
    assert await titanic.replyTo(requestId) == [b"echo", b"later"]


@pytest_twisted.ensureDeferred
async def test_the_request_is_committed_before_its_id_is_returned(titanic):
    requestId = await titanic.client.submit("echo", b"durable")
    # Another connection to the file, as another process would have: the row is there.
    with sqlite3.connect(titanic.database) as other:
        rows = other.execute("SELECT service, request FROM titanic WHERE id = ?", (requestId,))
        assert [(bytes(service), unpackFrames(body)) for service, body in rows] == [
            (b"echo", [b"durable"])
        ]


@pytest_twisted.ensureDeferred
async def test_stored_requests_are_dispatched_by_the_next_service_on_the_same_file(titanic):
    requestId = await titanic.client.submit("echo", b"across restarts")
    titanic.service.shutdown()
    titanic.service = titanic.startService()
    await until(lambda: titanic.service.unanswered == 1)
    titanic.worker()
    assert await titanic.replyTo(requestId) == [b"echo", b"across restarts"]
    assert titanic.service.unanswered == 0


@pytest_twisted.ensureDeferred
async def test_a_request_unanswered_in_time_is_dispatched_again(titanic):
    from twisted.internet.defer import Deferred

    calls: list[bytes] = []
    # The first worker to register gets the first try, and never answers it.
    stuck = titanic.worker(handler=lambda frame: calls.append(b"stuck") or Deferred())
    await until(lambda: titanic.broker.services.get(b"echo") == 1)
    titanic.worker(handler=lambda frame: calls.append(b"live") or [b"live", frame])
    await until(lambda: titanic.broker.services.get(b"echo") == 2)
    requestId = await titanic.client.submit("echo", b"x")
    assert await titanic.replyTo(requestId) == [b"live", b"x"]
    assert calls == [b"stuck", b"live"]
    stuck.shutdown()


@pytest_twisted.ensureDeferred
async def test_closing_a_pending_request_stops_its_dispatch(titanic):
    requestId = await titanic.client.submit("nobody", b"x")
    await until(lambda: titanic.service.unanswered == 1)
    await titanic.client.close(requestId)
    assert titanic.service.unanswered == 0
    with pytest.raises(ZmqUnknownRequestError):
        await titanic.client.reply(requestId)


@pytest_twisted.ensureDeferred
async def test_unknown_and_malformed_ids_are_unknown(titanic):
    with pytest.raises(ZmqUnknownRequestError):
        await titanic.client.reply("0" * 32)
    with pytest.raises(ZmqUnknownRequestError):
        await titanic.client.reply("not-an-id")


@pytest_twisted.ensureDeferred
async def test_a_tsp_client_written_from_the_rfc_talks_to_the_service(titanic):
    # 9/TSP over 7/MDP, from the RFC text: a REQ socket per MDP request, status frames.
    context: zmq.Context[Any] = zmq.Context()
    worker = RfcWorker(context, titanic.address, b"echo", interval=INTERVAL)
    workerDone = inThread(worker.run)

    def tspClient() -> dict[str, list[bytes]]:
        import time

        seen: dict[str, list[bytes]] = {}
        status, uuid = rfcRequest(context, titanic.address, b"titanic.request", b"echo", b"hi")
        seen["request"] = [status, uuid]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            reply = rfcRequest(context, titanic.address, b"titanic.reply", uuid)
            if reply[0] != b"300":
                break
            time.sleep(0.02)
        seen["reply"] = reply
        seen["close"] = rfcRequest(context, titanic.address, b"titanic.close", uuid)
        seen["after close"] = rfcRequest(context, titanic.address, b"titanic.reply", uuid)
        return seen

    try:
        seen = await inThread(tspClient)
    finally:
        worker.stop()
        await workerDone
        context.term()
    status, uuid = seen["request"]
    assert status == b"200" and len(uuid) == 32 and int(uuid, 16) >= 0
    assert seen["reply"] == [b"200", b"hi"]
    assert seen["close"] == [b"200"]
    assert seen["after close"] == [b"400"]


@pytest_twisted.ensureDeferred
async def test_a_request_without_a_body_is_refused_with_500(titanic):
    def ask() -> list[bytes]:
        context: zmq.Context[Any] = zmq.Context()
        try:
            return rfcRequest(context, titanic.address, b"titanic.request", b"echo")
        finally:
            context.term()

    reply = await inThread(ask)
    assert reply[0].startswith(b"500")
    assert titanic.service.unanswered == 0
