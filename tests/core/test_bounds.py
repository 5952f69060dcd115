"""
Bounds against hostile peers and heavy users: what txzmq2 keeps on a peer's behalf is
bounded, and no peer or burst holds the reactor for long. Hostile peers run in processes of
their own, so the reactor under test is not slowed by the attacker. Stall bounds here carry
generous margins for a loaded machine; docs/limits.md has the measured figures.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor, task
from twisted.internet.defer import CancelledError, Deferred, DeferredList

from tests.peers import ScriptProcess, inThread
from tests.stalls import StallMeter
from txzmq2 import (
    ZmqConnection,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointError,
    ZmqError,
    ZmqFactory,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRequestTimeoutError,
    ZmqRouterConnection,
    ZmqSendQueueFull,
    ZmqXPubConnection,
)

bind, connect = "bind", "connect"

# Generous: the figures measured on this kind of machine are in docs/limits.md.
STALL_BOUND = 0.15


def residentBytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def nextTurn() -> Deferred[None]:
    return task.deferLater(reactor, 0, lambda: None)


@pytest.fixture
def deadAddress() -> Iterator[str]:
    """A tcp address where nothing listens (a port the OS gave and took back)."""
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    yield f"tcp://127.0.0.1:{port}"


# -- peers in processes of their own ------------------------------------------------------

# Connects DEALERs that each send one message and then never read (tiny receive queues).
NEVER_READS = """
import sys, time, zmq
context = zmq.Context()
sockets = []
for n in range(int(sys.argv[2])):
    s = context.socket(zmq.DEALER)
    s.setsockopt(zmq.RCVHWM, 1)
    s.setsockopt(zmq.RCVBUF, 4096)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.ROUTING_ID, b"peer-%d" % n)
    s.connect(sys.argv[1])
    s.send(b"hello")
    sockets.append(s)
print("ready", flush=True)
time.sleep(60)
"""

# Sends one message of argv[2] one-byte frames to a ROUTER, then waits to be killed.
MANY_FRAMES = """
import sys, time, zmq
context = zmq.Context()
s = context.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(sys.argv[1])
count = int(sys.argv[2])
for n in range(count - 1):
    s.send(b"x", zmq.SNDMORE)
s.send(b"x")
print("sent", flush=True)
time.sleep(60)
"""


# -- 1: a ROUTER's queue per peer is bounded ------------------------------------------------


class Router(ZmqRouterConnection):
    routerMandatory = True
    sendHighWaterMark = 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.peers: list[bytes] = []
        self.arrived: Deferred[None] = Deferred()
        self.expected = 0
        super().__init__(*args, **kwargs)

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.peers.append(senderId)
        if len(self.peers) == self.expected:
            self.arrived.callback(None)


@pytest_twisted.ensureDeferred
async def test_router_mandatory_queue_per_peer_that_never_reads_is_bounded(zmq_factory, processes):
    router = Router(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    router.expected = 20
    peers = ScriptProcess(NEVER_READS)
    processes.append(peers)
    await peers.start(router.lastEndpoint, "20")
    await router.arrived
    reply = b"r" * 1000
    rss = []
    for _ in range(5):
        for peer in router.peers:
            for _ in range(1000):
                router.sendMsg(peer, reply)
        await nextTurn()
        rss.append(residentBytes())
    stats = router.stats()
    growth = (rss[-1] - rss[0]) / 2**20
    print(f"\n20 peers that never read, 100 MB sent at them: {stats}; RSS {growth:+.1f} MiB")
    # 80 MB more were sent after the first round: none of it may stay.
    assert growth < 20
    # Each peer holds at most sendQueueLimit (= the socket's SNDHWM) in our queue.
    assert stats.queued <= 20 * 10
    assert stats.dropped >= 20 * 5000 - 20 * 10 - stats.sent
    assert stats.sent + stats.queued + stats.dropped == 20 * 5000
    router.shutdown()


def test_router_send_queue_limit_defaults_to_its_high_water_mark(zmq_factory):
    router = Router(zmq_factory)
    assert router._outbound.limit == 10
    assert router._outbound.dropWhenFull
    dealer = ZmqDealerConnection(zmq_factory)
    assert dealer._outbound.limit is None
    router.shutdown()
    dealer.shutdown()


class FullDealer(ZmqDealerConnection):
    sendHighWaterMark = 1
    sendQueueLimit = 5


@pytest_twisted.ensureDeferred
async def test_dealer_past_its_send_queue_limit_raises_send_queue_full(zmq_factory, deadAddress):
    dealer = FullDealer(zmq_factory, ZmqEndpoint(connect, deadAddress))
    with pytest.raises(ZmqSendQueueFull, match="sendQueueLimit=5"):
        for n in range(100):
            dealer.sendMsg(b"%d" % n)
    assert dealer.sendQueueLength == 5
    dealer.shutdown()


class FullReq(ZmqREQConnection):
    sendHighWaterMark = 1
    sendQueueLimit = 2


@pytest_twisted.ensureDeferred
async def test_request_past_the_send_queue_limit_fails_with_send_queue_full(
    zmq_factory, deadAddress
):
    client = FullReq(zmq_factory, ZmqEndpoint(connect, deadAddress))
    requests = [client.sendMsg(b"%d" % n) for n in range(10)]
    failed = [r for r in requests if r.called]
    assert failed, "no request was refused"
    with pytest.raises(ZmqSendQueueFull):
        await failed[0]
    assert client.pendingRequests == 10 - len(failed)
    client.shutdown()
    for request in requests:
        request.addErrback(lambda _: None)


def test_stats_count_sent_received_queued_and_dropped(zmq_factory, zmq_address):
    stats = ZmqDealerConnection(zmq_factory).stats()
    assert (stats.sent, stats.received, stats.queued, stats.dropped, stats.discarded) == (
        0,
        0,
        0,
        0,
        0,
    )
    for connection in list(zmq_factory.connections):
        connection.shutdown()


# -- 2: ending a request is O(1); expiries come in bounded batches ------------------------


class NowhereReq(ZmqREQConnection):
    sendHighWaterMark = 1000


async def sendInChunks(client: ZmqREQConnection, count: int, **options: Any) -> list[Any]:
    requests = []
    for start in range(0, count, 1000):
        requests.extend(client.sendMsg(b"%d" % n, **options) for n in range(start, start + 1000))
        await nextTurn()
    return requests


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_100000_requests_timing_out_together_never_stall_the_reactor(
    zmq_factory, deadAddress
):
    client = NowhereReq(zmq_factory, ZmqEndpoint(connect, deadAddress))
    # Long enough that none expires while the test is still sending on a loaded machine.
    requests = await sendInChunks(client, 100_000, timeout=3.0)
    assert client.sendQueueLength > 10_000  # most never left: nobody listens
    everyOutcome = DeferredList(requests, consumeErrors=True)  # 100,000 addCallbacks: ours
    started = time.monotonic()
    with StallMeter() as meter:
        results = await everyOutcome
    elapsed = time.monotonic() - started
    assert all(not ok and f.check(ZmqRequestTimeoutError) for ok, f in results)
    assert client.pendingRequests == 0 and client.sendQueueLength == 0
    print(f"\n100,000 timeouts in {elapsed:.2f} s: {meter}")
    assert meter.longestCpu < STALL_BOUND
    assert elapsed < 20
    client.shutdown()


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_100000_cancels_newest_first_take_constant_time_each(zmq_factory, deadAddress):
    client = NowhereReq(zmq_factory, ZmqEndpoint(connect, deadAddress))
    requests = await sendInChunks(client, 100_000, timeout=60.0)
    started = time.monotonic()
    cpuStarted = time.thread_time()
    with StallMeter() as meter:
        # The test's own loop cancels 200 per reactor turn; each cancel is O(1), so what
        # one turn holds does not depend on how many requests remain queued.
        for start in range(len(requests), 0, -200):
            for request in reversed(requests[start - 200 : start]):
                request.cancel()
            await nextTurn()
    elapsed = time.monotonic() - started
    perCancel = (time.thread_time() - cpuStarted) / len(requests)
    results = await DeferredList(requests, consumeErrors=True)
    assert all(f.check(CancelledError) for _, f in results)
    assert client.pendingRequests == 0 and client.sendQueueLength == 0
    print(f"\n100,000 cancels in {elapsed:.2f} s ({perCancel * 1e6:.1f} us of CPU each): {meter}")
    assert meter.longestCpu < STALL_BOUND
    assert elapsed < 20
    client.shutdown()


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_500000_queued_messages_drain_in_time_linear_in_their_number(zmq_factory):
    """
    A flush hands libzmq what it takes of a long queue without copying the rest: draining
    500,000 messages costs ~0.1-0.3 s of reactor CPU here, where a flush that copied the
    whole queue each time took 2-3 s.
    """
    total = 500_000
    peer = zmq_factory.context.socket(zmq.PULL)
    peer.setsockopt(zmq.LINGER, 0)
    peer.setsockopt(zmq.RCVTIMEO, 30_000)
    peer.bind("tcp://127.0.0.1:*")
    push = ZmqPushConnection(
        zmq_factory, ZmqEndpoint(connect, peer.get(zmq.LAST_ENDPOINT).decode())
    )
    push.sendMany([b"x" * 100] * total)
    assert push.sendQueueLength > total - 10_000  # nearly all of it waits in our queue
    cpuStarted = time.thread_time()
    reading = inThread(lambda: [peer.recv() for _ in range(total)])
    try:
        await push.whenSendQueueEmpty(timeout=60)
        drainCpu = time.thread_time() - cpuStarted
        assert len(await reading) == total
    finally:
        peer.close()
    print(f"\n{total:,} queued messages drained with {drainCpu:.2f} s of reactor CPU")
    assert drainCpu < 1.5
    push.shutdown()


# -- 3: one message with many frames never holds the reactor --------------------------------


class Echo(ZmqREPConnection):
    def handleRequest(self, *parts: bytes) -> list[bytes]:
        return list(parts)


class Victim(ZmqRouterConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.got: list[tuple[bytes, ...]] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.got.append(frames)


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_million_frame_message_never_stalls_the_reactor_nor_other_services(
    zmq_factory, processes
):
    """
    libzmq's fair queue hands out nothing else from the attacked socket until the long
    message is read, so the bound that matters is the reactor's: every other service on
    it goes on answering while the message is read and dropped in budgeted passes.
    """
    victim = Victim(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    server = Echo(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, server.lastEndpoint))
    assert await client.sendMsg(b"warm-up", timeout=5) == [b"warm-up"]
    hostile = ScriptProcess(MANY_FRAMES)
    processes.append(hostile)
    await hostile.start(victim.lastEndpoint, "1000000")
    latencies = []
    started = time.monotonic()
    with StallMeter() as meter:
        while victim.stats().discarded == 0 and time.monotonic() < started + 60:
            sent = time.monotonic()
            await client.sendMsg(b"ping", timeout=5)
            latencies.append(time.monotonic() - sent)
    readIn = time.monotonic() - started
    assert victim.stats().discarded == 1 and victim.got == []
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)]
    print(
        f"\n1,000,000 frames read and dropped in {readIn:.2f} s: {meter}; "
        f"{len(latencies)} requests to another service meanwhile, p99 {p99 * 1000:.1f} ms"
    )
    assert meter.longestCpu < STALL_BOUND
    assert p99 < STALL_BOUND
    # The attacked socket serves the next peer.
    peer = ZmqDealerConnection(zmq_factory, ZmqEndpoint(connect, victim.lastEndpoint))
    peer.sendMsg(b"after")
    while not victim.got:
        await nextTurn()
    assert victim.got == [(b"after",)]
    for connection in (peer, client, server, victim):
        connection.shutdown()


class Collector(ZmqPullConnection):
    readBatchSeconds = 0.0  # every budget check fails: carry-over on every pass

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.messages: list[list[bytes]] = []
        self.arrived: Deferred[None] = Deferred()
        super().__init__(*args, **kwargs)

    def onPull(self, message: list[bytes]) -> None:
        self.messages.append(message)
        if len(self.messages) == 3:
            self.arrived.callback(None)


@pytest_twisted.ensureDeferred
async def test_long_message_interrupted_by_the_budget_arrives_whole_and_in_order(
    zmq_factory, zmq_address
):
    pull = Collector(zmq_factory, ZmqEndpoint(bind, zmq_address("ipc")))
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    long = [b"%d" % n for n in range(5000)]
    push.send([b"first"])
    push.send(long)
    push.send([b"last"])
    await pull.arrived
    assert pull.messages == [[b"first"], long, [b"last"]]
    assert pull.stats().received == 3
    push.shutdown()
    pull.shutdown()


class SmallBound(Collector):
    maxFramesPerMessage = 100
    readBatchSeconds = 0.004


@pytest_twisted.ensureDeferred
async def test_message_past_max_frames_is_dropped_whole_and_the_next_one_arrives(
    zmq_factory, zmq_address, logged
):
    pull = SmallBound(zmq_factory, ZmqEndpoint(bind, zmq_address("ipc")))
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    push.send([b"a"])
    push.send([b"x"] * 1000)
    push.send([b"y"] * 100)
    push.send([b"b"])
    while len(pull.messages) < 3:
        await nextTurn()
    assert pull.messages == [[b"a"], [b"y"] * 100, [b"b"]]
    assert pull.stats().discarded == 1
    assert [(e["frames"], e["bound"]) for e in logged if "bound" in e] == [(1000, 100)]
    push.shutdown()
    pull.shutdown()


# -- 4: thousands of connections on one default factory -----------------------------------


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_default_factory_holds_5000_connections_of_mixed_types(zmq_address):
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < 8000:
        pytest.skip(f"the open-file limit ({soft}) is below 8000: ulimit -n")
    factory = ZmqFactory(reactor)
    kinds = [ZmqDealerConnection, ZmqRouterConnection, ZmqPushConnection, ZmqPullConnection]
    try:
        for n in range(5000):
            connection = kinds[n % 4](factory)
            if n % 4 == 0:
                connection.addEndpoints([ZmqEndpoint(bind, f"inproc://many-{id(factory)}-{n}")])
        assert len(factory.connections) == 5000
    finally:
        await factory.shutdown()


@pytest_twisted.ensureDeferred
async def test_reaching_max_sockets_names_the_limit_and_the_remedy():
    factory = ZmqFactory(reactor, maxSockets=10)
    try:
        with pytest.raises(ZmqError, match=r"MAX_SOCKETS \(10; ZmqFactory\(maxSockets"):
            for _ in range(20):
                ZmqDealerConnection(factory)
    finally:
        await factory.shutdown()


# -- 5: an XPUB with XPUB_NODROP at its high-water mark does not spin -----------------------

SLOW_SUBSCRIBER = """
import sys, time, zmq
context = zmq.Context()
s = context.socket(zmq.SUB)
s.setsockopt(zmq.RCVHWM, 1)
s.setsockopt(zmq.RCVBUF, 4096)
s.setsockopt(zmq.LINGER, 0)
s.setsockopt(zmq.SUBSCRIBE, b"")
s.connect(sys.argv[1])
print("subscribed", flush=True)
time.sleep(60)
"""


class NoDropXPub(ZmqXPubConnection):
    sendHighWaterMark = 10

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.subscribed: Deferred[None] = Deferred()
        self.passes = 0
        super().__init__(*args, **kwargs)

    def applySocketOptions(self) -> None:
        super().applySocketOptions()
        self.socket.set(zmq.XPUB_NODROP, 1)

    def gotSubscription(self, tag: bytes, subscribed: bool) -> None:
        if not self.subscribed.called:
            self.subscribed.callback(None)

    def _runPass(self, woken: bool = False) -> None:
        self.passes += 1
        super()._runPass(woken)

    def doRead(self) -> None:
        self.passes += 1
        super().doRead()


@pytest.mark.timeout(60)
@pytest_twisted.ensureDeferred
async def test_xpub_nodrop_at_its_high_water_mark_stays_idle(zmq_factory, processes):
    xpub = NoDropXPub(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    subscriber = ScriptProcess(SLOW_SUBSCRIBER)
    processes.append(subscriber)
    await subscriber.start(xpub.lastEndpoint)
    await xpub.subscribed
    payload = b"t" * 10_000
    for _ in range(200):
        for _ in range(100):
            xpub.send(payload)
        await nextTurn()
    assert xpub.sendQueueLength > 0, "the subscriber's queues never filled"
    await task.deferLater(reactor, 0.2, lambda: None)  # let the backoff settle
    xpub.passes = 0
    cpuBefore, wallBefore = time.process_time(), time.monotonic()
    await task.deferLater(reactor, 1.0, lambda: None)
    cpu = (time.process_time() - cpuBefore) / (time.monotonic() - wallBefore)
    print(f"\nidle XPUB_NODROP at its HWM: {xpub.passes} passes/s, {cpu * 100:.1f} % CPU")
    assert xpub.passes < 200
    assert cpu < 0.25
    xpub.shutdown()


# -- 6: whenSendQueueEmpty when requests leave the queue by ending -------------------------


class OneSlotReq(ZmqREQConnection):
    sendHighWaterMark = 1


@pytest.mark.parametrize("ending", ["timeout", "cancel", "shutdown-of-nothing"])
@pytest_twisted.ensureDeferred
async def test_send_queue_empty_fires_when_queued_requests_end(zmq_factory, deadAddress, ending):
    client = OneSlotReq(zmq_factory, ZmqEndpoint(connect, deadAddress))
    requests = [client.sendMsg(b"%d" % n, timeout=0.2) for n in range(10)]
    assert client.sendQueueLength > 0
    drained = client.whenSendQueueEmpty(timeout=10)
    if ending == "cancel":
        for request in requests:
            request.cancel()
    await drained
    assert client.sendQueueLength == 0
    await DeferredList(requests, consumeErrors=True)
    client.shutdown()


# -- 7: a send-only subclass does not shut itself down ---------------------------------------


class Sender(ZmqConnection):
    socketType = zmq.PUSH


@pytest_twisted.ensureDeferred
async def test_send_only_subclass_of_zmq_connection_keeps_running(zmq_factory, zmq_address):
    from tests.peers import CollectingPull

    pull = CollectingPull(zmq_factory, ZmqEndpoint(bind, zmq_address("ipc")))
    pull.expected = 100
    sender = Sender(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    for n in range(100):
        sender.send(b"%d" % n)
        if n % 10 == 0:
            sender.doRead()  # as the reactor does when the FD wakes
            await nextTurn()
    await pull.done
    assert not sender.closed
    sender.shutdown()
    pull.shutdown()


# -- 9: failed bind and connect say why ------------------------------------------------------


@pytest.mark.parametrize("monitored", [False, True])
def test_bind_to_unknown_host_raises_endpoint_error_with_the_real_reason(zmq_factory, monitored):
    connection = ZmqDealerConnection(zmq_factory, monitored=monitored)
    with pytest.raises(ZmqEndpointError) as caught:
        connection.addEndpoints([ZmqEndpoint(bind, "tcp://nohost.invalid:5559")])
    assert isinstance(caught.value, zmq.ZMQError)
    assert "tcp://nohost.invalid:5559" in str(caught.value)
    assert "Resource temporarily unavailable" not in str(caught.value)
    assert caught.value.errno != zmq.EAGAIN
    connection.shutdown()


def test_bind_to_an_address_in_use_raises_endpoint_error(zmq_factory):
    first = ZmqDealerConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    with pytest.raises(ZmqEndpointError, match="Address already in use"):
        ZmqDealerConnection(zmq_factory, ZmqEndpoint(bind, first.lastEndpoint))
    assert len(zmq_factory.connections) == 1
    first.shutdown()


def test_port_outside_the_tcp_range_is_refused_before_libzmq_sees_it(zmq_factory):
    # libzmq would take 99999 modulo 65536 and bind some other port, silently.
    with pytest.raises(ValueError, match="99999' is not 'tcp://"):
        ZmqDealerConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:99999"))
    assert not zmq_factory.connections


# -- shutdown is exception-safe --------------------------------------------------------------


class BrokenHook(ZmqREQConnection):
    def connectionClosed(self) -> None:
        super().connectionClosed()
        raise RuntimeError("hook failed")


@pytest_twisted.ensureDeferred
async def test_factory_shutdown_survives_raising_hooks_and_fires_every_deferred(
    deadAddress, loggedFailures
):
    factory = ZmqFactory(reactor)
    client = BrokenHook(factory, ZmqEndpoint(connect, deadAddress))
    request = client.sendMsg(b"never answered")
    other = ZmqREQConnection(factory, ZmqEndpoint(connect, deadAddress))
    otherRequest = other.sendMsg(b"never answered either")

    def brokenFactoryHook() -> None:
        raise RuntimeError("factory hook failed")

    factory.addShutdownHook(brokenFactoryHook)
    await factory.shutdown()
    results = await DeferredList([request, otherRequest], consumeErrors=True)
    assert [ok for ok, _ in results] == [False, False]
    assert factory.context.closed
    assert len(loggedFailures) >= 2


# -- the receiver seam -------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_receiver_gets_every_message_instead_of_message_received(zmq_factory, zmq_address):
    got: Deferred[list[bytes]] = Deferred()
    pull = ZmqPullConnection(
        zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")), receiver=got.callback
    )
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    push.send([b"a", b"b"])
    assert await got == [b"a", b"b"]
    push.shutdown()
    pull.shutdown()
