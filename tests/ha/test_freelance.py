"""
Freelance client and server in one process, over tcp and ipc; an FLP client written from
10/FLP with plain pyzmq checks the server's framing. (Servers SIGKILLed under load:
tests/faults/test_ha.py.)
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.internet.task import deferLater

from tests.ha.conftest import until
from tests.peers import blockingSocket, inThread
from txzmq2 import ZmqConnectionClosed, ZmqRequestTimeoutError
from txzmq2.ha import FreelanceClient, FreelanceServer

pytestmark = pytest.mark.timeout(30)

PING = 0.05
TRY = 0.2


@pytest.fixture
def made(zmq_factory):
    parts: list[Any] = []
    yield parts
    for part in reversed(parts):
        part.shutdown()


def server(factory, made, name: bytes, address: str = "tcp://127.0.0.1:*", handler=None):
    handler = handler or (lambda *frames: [name, *frames])
    made.append(FreelanceServer(factory, address, handler))
    return made[-1]


def client(factory, made, servers, **options) -> FreelanceClient:
    options.setdefault("timeout", TRY)
    options.setdefault("pingInterval", PING)
    addresses = [s if isinstance(s, str) else s.lastEndpoint for s in servers]
    made.append(FreelanceClient(factory, addresses, **options))
    return made[-1]


@pytest_twisted.ensureDeferred
async def test_request_is_answered_by_the_first_server(zmq_factory, made):
    first, second = server(zmq_factory, made, b"a"), server(zmq_factory, made, b"b")
    freelance = client(zmq_factory, made, [first, second])
    await until(lambda: len(freelance.aliveServers) == 2)
    for number in range(5):
        assert await freelance.request(b"%d" % number) == [b"a", b"%d" % number]


@pytest_twisted.ensureDeferred
async def test_servers_on_ipc_and_tcp_both_serve(zmq_factory, zmq_address, made):
    servers = [
        server(zmq_factory, made, b"ipc", zmq_address("ipc")),
        server(zmq_factory, made, b"tcp"),
    ]
    freelance = client(zmq_factory, made, servers)
    await until(lambda: len(freelance.aliveServers) == 2)
    assert freelance.aliveServers == [s.lastEndpoint for s in servers]


@pytest_twisted.ensureDeferred
async def test_a_try_unanswered_in_time_goes_to_the_next_server(zmq_factory, made):
    never: Deferred[list[bytes]] = Deferred()
    silent = server(zmq_factory, made, b"silent", handler=lambda *frames: never)
    answering = server(zmq_factory, made, b"b")
    freelance = client(zmq_factory, made, [silent, answering], retries=1)
    assert await freelance.request(b"x") == [b"b", b"x"]


@pytest_twisted.ensureDeferred
async def test_a_dead_server_is_skipped_once_its_pings_go_unanswered(zmq_factory, made):
    dead, alive = server(zmq_factory, made, b"dead"), server(zmq_factory, made, b"alive")
    freelance = client(zmq_factory, made, [dead, alive], retries=0)
    await until(lambda: len(freelance.aliveServers) == 2)
    dead.shutdown()
    await until(lambda: freelance.aliveServers == [alive.lastEndpoint])
    # No retries: it must go to the live server at the first try.
    assert await freelance.request(b"x") == [b"alive", b"x"]


@pytest_twisted.ensureDeferred
async def test_the_last_server_to_answer_is_asked_first(zmq_factory, made):
    first, second = server(zmq_factory, made, b"a"), server(zmq_factory, made, b"b")
    freelance = client(zmq_factory, made, [first, second], retries=0)
    await until(lambda: len(freelance.aliveServers) == 2)
    # Answered by the second (the first does not answer at this try) ...
    freelance._current = freelance._links[1]
    for number in range(3):
        assert (await freelance.request(b"%d" % number))[0] == b"b"


@pytest_twisted.ensureDeferred
async def test_no_server_answering_fails_the_request_once_after_every_try(zmq_factory, made):
    from twisted.internet import reactor

    never: Deferred[list[bytes]] = Deferred()
    silent = server(zmq_factory, made, b"silent", handler=lambda *frames: never)
    freelance = client(zmq_factory, made, [silent], retries=2)
    started = reactor.seconds()
    outcomes: list[Any] = []
    request = freelance.request(b"x")
    request.addBoth(outcomes.append)
    await until(lambda: outcomes)
    assert reactor.seconds() - started >= 3 * TRY
    assert isinstance(outcomes[0].value, ZmqRequestTimeoutError)
    await deferLater(reactor, TRY)
    assert len(outcomes) == 1
    assert freelance.pendingRequests == 0


@pytest_twisted.ensureDeferred
async def test_late_replies_to_an_answered_request_are_dropped(zmq_factory, made):
    from twisted.internet import reactor

    slow = server(
        zmq_factory,
        made,
        b"slow",
        handler=lambda *frames: deferLater(reactor, 1.5 * TRY, lambda: [b"slow"]),
    )
    fast = server(zmq_factory, made, b"fast")
    freelance = client(zmq_factory, made, [slow, fast], retries=1)
    outcomes: list[Any] = []
    freelance.request(b"x").addBoth(outcomes.append)
    await until(lambda: outcomes)
    await deferLater(reactor, TRY)  # the slow server's reply arrives meanwhile
    assert outcomes == [[b"fast", b"x"]]


@pytest_twisted.ensureDeferred
async def test_cancelled_request_fails_once_and_its_reply_is_dropped(zmq_factory, made):
    from twisted.internet import reactor

    slow = server(
        zmq_factory, made, b"slow", handler=lambda *f: deferLater(reactor, TRY / 2, lambda: f)
    )
    freelance = client(zmq_factory, made, [slow])
    outcomes: list[Any] = []
    request = freelance.request(b"x")
    request.addBoth(outcomes.append)
    request.cancel()
    await deferLater(reactor, TRY)
    assert len(outcomes) == 1 and isinstance(outcomes[0].value, CancelledError)


@pytest_twisted.ensureDeferred
async def test_shutdown_fails_pending_requests_once(zmq_factory, made):
    never: Deferred[list[bytes]] = Deferred()
    silent = server(zmq_factory, made, b"silent", handler=lambda *frames: never)
    freelance = client(zmq_factory, made, [silent])
    outcomes: list[Any] = []
    freelance.request(b"x").addBoth(outcomes.append)
    freelance.shutdown()
    freelance.shutdown()
    assert len(outcomes) == 1 and isinstance(outcomes[0].value, ZmqConnectionClosed)
    with pytest.raises(ZmqConnectionClosed):
        await freelance.request(b"y")


@pytest_twisted.ensureDeferred
async def test_handlers_may_return_deferreds_and_coroutines(zmq_factory, made):
    from twisted.internet import reactor

    async def coroutine(*frames: bytes) -> list[bytes]:
        await deferLater(reactor, 0.01)
        return [b"coroutine", *frames]

    servers = [
        server(zmq_factory, made, b"", handler=coroutine),
        server(zmq_factory, made, b"", handler=lambda *f: deferLater(reactor, 0, lambda: f)),
    ]
    first = client(zmq_factory, made, servers[:1])
    second = client(zmq_factory, made, servers[1:])
    assert await gatherResults([first.request(b"a"), second.request(b"b")]) == [
        [b"coroutine", b"a"],
        [b"b"],
    ]


@pytest_twisted.ensureDeferred
async def test_a_failing_handler_drops_the_request_and_the_server_serves_on(
    zmq_factory, made, loggedFailures
):
    calls: list[bytes] = []

    def handler(frame: bytes) -> list[bytes]:
        calls.append(frame)
        if frame == b"boom":
            raise ValueError(frame)
        return [frame]

    freelance = client(zmq_factory, made, [server(zmq_factory, made, b"", handler=handler)])
    with pytest.raises(ZmqRequestTimeoutError):
        await freelance.request(b"boom", retries=0)
    assert await freelance.request(b"fine") == [b"fine"]
    assert len(loggedFailures) == 1


def test_a_client_needs_a_server_and_sane_timings(zmq_factory):
    with pytest.raises(ValueError):
        FreelanceClient(zmq_factory, [])
    with pytest.raises(ValueError):
        FreelanceClient(zmq_factory, ["tcp://127.0.0.1:5555"], timeout=0)
    with pytest.raises(ValueError):
        FreelanceClient(zmq_factory, ["tpc://127.0.0.1:5555"])


@pytest_twisted.ensureDeferred
async def test_server_speaks_flp_to_a_router_client_that_addresses_it_by_endpoint(
    zmq_factory, zmq_address, made
):
    # 10/FLP: the server's identity is its public endpoint; the client's ROUTER routes
    # by it, pings with one frame PING, and gets its control frame back with the reply.
    address = zmq_address("ipc")
    server(zmq_factory, made, b"flp", address)
    identity = address.encode()

    def flpClient() -> list[list[bytes]]:
        context = zmq.Context()
        socket = blockingSocket(context, zmq.ROUTER, router_mandatory=1)
        try:
            socket.connect(address)
            # Until the handshake is done the ROUTER does not know the identity: retry.
            for _ in range(500):
                try:
                    socket.send_multipart([identity, b"PING"])
                    break
                except zmq.ZMQError:
                    socket.poll(10)
            pong = socket.recv_multipart()
            socket.send_multipart([identity, b"42", b"hello"])
            reply = socket.recv_multipart()
            return [pong, reply]
        finally:
            socket.close()
            context.term()

    pong, reply = await inThread(flpClient)
    assert pong == [identity, b"PONG"]
    assert reply == [identity, b"42", b"flp", b"hello"]


@pytest_twisted.ensureDeferred
async def test_a_server_at_its_concurrency_bound_stops_reading_and_drops_nothing(
    zmq_factory, made
):
    from twisted.internet import reactor

    held: list[Deferred[list[bytes]]] = []

    def hold(frame: bytes) -> Deferred[list[bytes]]:
        held.append(Deferred())
        held[-1].addCallback(lambda _: [frame])
        return held[-1]

    made.append(FreelanceServer(zmq_factory, "tcp://127.0.0.1:*", hold, maxConcurrency=3))
    freelance = client(zmq_factory, made, [made[-1]], timeout=10.0, retries=0)
    replies = [freelance.request(b"%d" % n) for n in range(6)]
    await until(lambda: len(held) == 3)
    await deferLater(reactor, 0.1)
    assert len(held) == 3  # the others wait in libzmq's queues
    for waiting in held[:3]:
        waiting.callback(None)
    await until(lambda: len(held) == 6)
    for waiting in held[3:]:
        waiting.callback(None)
    assert sorted(r[0] for r in await gatherResults(replies)) == [b"%d" % n for n in range(6)]


def test_max_concurrency_is_at_least_one(zmq_factory):
    with pytest.raises(ValueError):
        FreelanceServer(zmq_factory, "tcp://127.0.0.1:*", lambda *f: f, maxConcurrency=0)


@pytest_twisted.ensureDeferred
async def test_server_drops_a_message_that_is_neither_ping_nor_request(zmq_factory, made, logged):
    from txzmq2 import ZmqDealerConnection, ZmqEndpoint

    answers: list[list[bytes]] = []

    class Raw(ZmqDealerConnection):
        def gotMessage(self, *frames: bytes) -> None:
            answers.append(list(frames))

    flp = server(zmq_factory, made, b"s")
    made.append(Raw(zmq_factory, ZmqEndpoint("connect", flp.lastEndpoint)))
    made[-1].send([b"hello"])
    made[-1].send([b"PING"])
    await until(lambda: answers)
    assert answers == [[b"PONG"]]
    assert [e for e in logged if "neither PING nor a request" in (e.get("log_format") or "")]
