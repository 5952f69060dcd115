"""
Majordomo end to end, broker, workers and client all ours, through the failures MDP is built
to survive: a worker crashing mid-request, a broker killed and restarted or frozen, workers
freezing, a slow worker among fast ones, and a peer sending arbitrary frames.
"""

from __future__ import annotations

import errno
import itertools
import signal
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater

from tests.mdp.conftest import INTERVAL, LIVENESS, PATIENCE, nextBut, saying, until
from tests.mdp.reference import (
    DISCONNECT,
    HEARTBEAT,
    MDPC01,
    MDPW01,
    READY,
    REPLY,
    REQUEST,
    rfcRequest,
)
from tests.peers import ScriptProcess, blockingSocket, inThread

pytestmark = pytest.mark.timeout(45)

BROKER = textwrap.dedent(
    """
    import sys
    from twisted.internet import task
    from twisted.internet.defer import Deferred, ensureDeferred
    from txzmq2 import ZmqEndpoint, ZmqFactory
    from txzmq2.mdp import MajordomoBroker

    async def main(reactor):
        factory = ZmqFactory(reactor)
        broker = MajordomoBroker(
            factory, ZmqEndpoint("bind", sys.argv[1]), heartbeatInterval=float(sys.argv[2])
        )
        print(broker.lastEndpoint, flush=True)
        await Deferred()  # serve until killed

    task.react(lambda reactor: ensureDeferred(main(reactor)))
    """
)


@pytest.fixture
def brokerProcess() -> Iterator[ScriptProcess]:
    """Our broker in a subprocess, to be killed (SIGKILL), frozen (SIGSTOP) and restarted."""
    process = ScriptProcess(BROKER)
    yield process
    process.kill()


def named(name: bytes) -> Any:
    """An echo handler that says which worker answered."""
    return lambda *frames: [name, *frames]


async def answeredBy(client: Any, names: set[bytes]) -> set[bytes]:
    """Send requests, every 10 ms for at most ``PATIENCE`` seconds, until each worker of
    ``names`` has answered one; return who answered."""
    from twisted.internet import reactor

    seen: set[bytes] = set()
    deadline = reactor.seconds() + PATIENCE
    while not seen >= names and reactor.seconds() < deadline:
        name, _ = await client.request(b"echo", b"who", timeout=LIVENESS * INTERVAL, retries=10)
        seen.add(name)
        await deferLater(reactor, 0.01)
    return seen


# -- workers failing -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_client_retry_reaches_another_worker_when_one_crashes_mid_request(mdp):
    broker = mdp.broker()
    # A worker by hand, alive until it crashes at the right moment.
    crashing = mdp.dealer(broker.lastEndpoint, answerHeartbeats=True)
    crashing.send([b"", MDPW01, READY, b"echo"])
    await until(lambda: broker.services == {b"echo": 1})
    mdp.worker(broker.lastEndpoint, "echo", named(b"survivor"))
    await until(lambda: broker.services == {b"echo": 2})
    client = mdp.client(broker.lastEndpoint)
    answer = client.request(b"echo", b"job", timeout=2 * INTERVAL, retries=3)
    # The crashing worker registered first, so it is idle the longest and gets the job...
    message = await nextBut(crashing.inbox, [b"", MDPW01, HEARTBEAT])
    assert message[:3] == [b"", MDPW01, REQUEST] and message[-1] == b"job"
    crashing.shutdown()  # ...and dies with it: no REPLY, no DISCONNECT
    assert await answer == [b"survivor", b"job"]
    await until(lambda: broker.services == {b"echo": 1})


@pytest_twisted.ensureDeferred
async def test_frozen_worker_expires_and_requests_go_to_the_live_one(mdp, logged):
    broker = mdp.broker()
    mdp.worker(broker.lastEndpoint, "echo", named(b"live"))
    await until(lambda: broker.services == {b"echo": 1})
    frozen = mdp.dealer(broker.lastEndpoint)  # says READY, then never another word
    frozen.send([b"", MDPW01, READY, b"echo"])
    await until(lambda: broker.services == {b"echo": 2})
    await until(lambda: broker.services == {b"echo": 1})
    assert saying(logged, "forgot worker")[0]["why"] == "expired: no heartbeat"
    client = mdp.client(broker.lastEndpoint)
    for number in range(3):  # no retries: none may go to the frozen worker
        assert await client.request(b"echo", b"%d" % number, timeout=5) == [
            b"live",
            b"%d" % number,
        ]
    assert all(frames[2:3] == [HEARTBEAT] for frames in frozen.inbox.messages)


@pytest_twisted.ensureDeferred
async def test_slow_worker_does_not_hold_up_the_others(mdp):
    slowCalls: list[tuple[bytes, ...]] = []
    release: Deferred[list[bytes]] = Deferred()

    def slow(*frames: bytes) -> Deferred[list[bytes]]:
        slowCalls.append(frames)
        return release

    broker = mdp.broker()
    mdp.worker(broker.lastEndpoint, "work", slow)
    await until(lambda: broker.services == {b"work": 1})
    mdp.worker(broker.lastEndpoint, "work", named(b"fast"))
    mdp.worker(broker.lastEndpoint, "other", named(b"other"))
    await until(lambda: broker.services == {b"work": 2, b"other": 1})
    client = mdp.client(broker.lastEndpoint)
    answers = {number: client.request(b"work", b"%d" % number, timeout=5) for number in range(10)}
    other = client.request(b"other", b"meanwhile", timeout=5)
    await until(lambda: slowCalls)
    [(slowNumber,)] = slowCalls
    rest = [answer for number, answer in answers.items() if b"%d" % number != slowNumber]
    # Nine answered by the fast worker, and another service served, all while the slow
    # worker still sits on its one request.
    assert all(name == b"fast" for name, _ in await gatherResults(rest))
    assert await other == [b"other", b"meanwhile"]
    assert not answers[int(slowNumber)].called
    release.callback([b"slow", slowNumber])
    assert await answers[int(slowNumber)] == [b"slow", slowNumber]


# -- the broker failing ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_workers_register_again_and_clients_recover_after_the_broker_is_killed(
    mdp, brokerProcess
):
    address = await brokerProcess.start("tcp://127.0.0.1:*", str(INTERVAL))
    for name in (b"w1", b"w2"):
        mdp.worker(address, "echo", named(name))
    client = mdp.client(address)
    assert await answeredBy(client, {b"w1", b"w2"}) == {b"w1", b"w2"}
    brokerProcess.kill()
    # A request sent while no broker runs: its retries get through once one is back.
    answer = client.request(b"echo", b"during", timeout=LIVENESS * INTERVAL, retries=30)
    assert await brokerProcess.start(address, str(INTERVAL)) == address  # the same port
    assert (await answer)[1:] == [b"during"]
    assert await answeredBy(client, {b"w1", b"w2"}) == {b"w1", b"w2"}


@pytest_twisted.ensureDeferred
async def test_workers_reconnect_when_the_broker_freezes_and_serve_again_after(
    mdp, brokerProcess, logged
):
    address = await brokerProcess.start("tcp://127.0.0.1:*", str(INTERVAL))
    mdp.worker(address, "echo", named(b"w1"))
    client = mdp.client(address)
    assert await client.request(b"echo", b"x", timeout=5) == [b"w1", b"x"]
    brokerProcess.signal(signal.SIGSTOP)  # alive to TCP, silent to MDP
    try:
        await until(lambda: any("heard nothing" in e.get("why", "") for e in logged))
    finally:
        brokerProcess.signal(signal.SIGCONT)
    answer = client.request(b"echo", b"y", timeout=LIVENESS * INTERVAL, retries=30)
    assert await answer == [b"w1", b"y"]


async def rebind(mdp: Any, address: str) -> Any:
    """A new broker on ``address``, once the old one's port is free (it closes async)."""
    from twisted.internet import reactor

    for _ in range(200):
        try:
            return mdp.broker(address)
        except zmq.ZMQError as error:
            if error.errno != errno.EADDRINUSE:
                raise
        await deferLater(reactor, 0.01)
    pytest.fail(f"{address} stayed in use")


@pytest_twisted.ensureDeferred
async def test_broker_shutdown_sends_workers_to_the_next_broker_on_the_address(mdp, logged):
    broker = mdp.broker()
    address = broker.lastEndpoint
    mdp.worker(address, "echo", named(b"w1"))
    mdp.worker(address, "echo", named(b"w2"))
    await until(lambda: broker.services == {b"echo": 2})
    broker.shutdown()
    successor = await rebind(mdp, address)
    await until(lambda: successor.services == {b"echo": 2})
    # Told, not left to find out from missing heartbeats:
    assert len(saying(logged, "{why}; reconnecting")) == 2
    assert {e["why"] for e in saying(logged, "{why}; reconnecting")} == {
        "the broker sent DISCONNECT"
    }
    client = mdp.client(address)
    assert await answeredBy(client, {b"w1", b"w2"}) == {b"w1", b"w2"}


# -- arbitrary frames ------------------------------------------------------------------------

FRAME = st.one_of(
    st.sampled_from(
        [b"", MDPC01, MDPW01, READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT, b"\x00", b"\x06"]
    ),
    st.sampled_from([b"fuzz", b"mmi.service", b"mmi.other", b"MDPC02"]),
    st.binary(max_size=40),
)
SERVICE = st.one_of(st.sampled_from([b"fuzz", b"mmi.service", b"mmi.other", b""]), FRAME)
BODY = st.lists(FRAME, max_size=3)
# Mostly commands of the right shape with arbitrary contents, so the fuzzing gets past the
# first checks; some anything at all.
MESSAGE = st.one_of(
    st.builds(lambda service, body: [b"", MDPC01, service, *body], SERVICE, BODY),
    st.builds(lambda service: [b"", MDPW01, READY, service], SERVICE),
    st.builds(
        lambda command, client, body: [b"", MDPW01, command, client, b"", *body],
        st.sampled_from([REQUEST, REPLY]),
        FRAME,
        BODY,
    ),
    st.sampled_from([[b"", MDPW01, HEARTBEAT], [b"", MDPW01, DISCONNECT]]),
    st.builds(lambda command, rest: [b"", MDPW01, command, *rest], FRAME, BODY),
    st.lists(FRAME, min_size=1, max_size=8),
)


@pytest_twisted.ensureDeferred
async def test_broker_survives_arbitrary_frames_and_serves_the_next_good_request(
    mdp, peerContext, logged
):
    broker = mdp.broker()
    address = broker.lastEndpoint
    mdp.worker(address, "echo")
    await until(lambda: broker.services == {b"echo": 1})

    def fuzz() -> None:
        served = []
        probes = itertools.count()

        @settings(
            max_examples=100,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.lists(MESSAGE, min_size=1, max_size=4))
        def survives(messages: list[list[bytes]]) -> None:
            seen = len(logged)
            # An mmi. service the broker does not implement, named afresh each time, so
            # its answer (501) is to this probe alone, never to a lookup among the fuzz.
            probe = b"mmi.probe-%d" % next(probes)
            # A new peer (a new identity) each time: a stranger to the broker at first.
            peer = blockingSocket(peerContext, zmq.DEALER)
            try:
                peer.connect(address)
                for message in messages:
                    peer.send_multipart(message)
                # The broker answers this after all that came before it on this socket:
                # once the answer is in, the messages above have been dealt with.
                peer.send_multipart([b"", MDPC01, probe, b"echo"])
                while peer.recv_multipart() != [b"", MDPC01, probe, b"501"]:
                    pass  # heartbeats, DISCONNECTs, answers to the fuzz's own lookups...
            finally:
                peer.close()
            assert not [event for event in logged[seen:] if "log_failure" in event]
            body = b"good request %d" % len(served)
            # Served, though maybe not at the first try: MDP loses a request held by a
            # worker that is gone or taken for gone, and leaves the retry to the client.
            # Both happen here: the fuzz may register a worker for "echo" and close it
            # without a word, and under CPU overload heartbeats run late, so broker and
            # worker may each take the other for dead and the worker registers afresh.
            reply = rfcRequest(peerContext, address, b"echo", body, timeout=2, retries=3)
            assert reply == [body]
            served.append(body)

        survives()

    await inThread(fuzz)
    assert saying(logged, "dropped a message")
    assert not broker.connection.closed
