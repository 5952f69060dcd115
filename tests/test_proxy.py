"""
Devices on the reactor: ZmqProxy (queue, forwarder, streamer) and the load-balancing broker.
"""

from __future__ import annotations

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import Deferred, DeferredList, gatherResults

from tests.peers import CollectingPull, blockingSocket, inThread
from txzmq2 import (
    ZmqConnectionClosed,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqLoadBalancingBroker,
    ZmqProxy,
    ZmqPubConnection,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
    ZmqSubConnection,
    ZmqXPubConnection,
    ZmqXSubConnection,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect


class NamedServer(ZmqREPConnection):
    name = b""

    def handleRequest(self, *parts):
        return [self.name, *parts]


@pytest_twisted.ensureDeferred
async def test_queue_proxy_carries_requests_and_replies_between_clients_and_servers(
    zmq_factory, zmq_address
):
    front = ZmqRouterConnection(zmq_factory, ZmqEndpoint(bind, zmq_address("tcp")))
    back = ZmqDealerConnection(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    proxy = ZmqProxy(zmq_factory, front, back)
    assert proxy.kind == "queue"
    servers = []
    for name in (b"s1", b"s2"):
        server = NamedServer(zmq_factory, ZmqEndpoint(connect, back.lastEndpoint))
        server.name = name
        servers.append(server)
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, front.lastEndpoint))
    replies = await gatherResults(
        [client.sendMsg(b"%d" % n, timeout=5) for n in range(40)], consumeErrors=True
    )
    assert [reply[1:] for reply in replies] == [[b"%d" % n] for n in range(40)]
    assert {reply[0] for reply in replies} == {b"s1", b"s2"}
    assert proxy.forwarded == 80
    client.shutdown()
    for server in servers:
        server.shutdown()
    proxy.shutdown()


@pytest_twisted.ensureDeferred
async def test_forwarder_proxy_passes_subscriptions_up_and_publications_down(
    zmq_factory, zmq_address
):
    front = ZmqXSubConnection(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    subscribed: Deferred[bytes] = Deferred()

    class Back(ZmqXPubConnection):
        pass

    back = Back(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    proxy = ZmqProxy(zmq_factory, front, back)

    class Publisher(ZmqXPubConnection):
        def gotSubscription(self, tag, isSubscribed):
            if not subscribed.called:
                subscribed.callback(tag)

    publisher = Publisher(zmq_factory, ZmqEndpoint(connect, front.lastEndpoint))
    got: Deferred[tuple[bytes, bytes]] = Deferred()

    class Sub(ZmqSubConnection):
        def gotMessage(self, message, tag):
            got.callback((tag, message))

    sub = Sub(zmq_factory, ZmqEndpoint(connect, back.lastEndpoint))
    sub.subscribe(b"weather")
    # The subscription crossed the proxy to the publisher: publishing now cannot be lost.
    assert await subscribed == b"weather"
    publisher.publish(b"rain", b"sports")
    publisher.publish(b"sun", b"weather")
    assert await got == (b"weather", b"sun")
    sub.shutdown()
    publisher.shutdown()
    proxy.shutdown()


@pytest_twisted.ensureDeferred
async def test_streamer_proxy_forwards_in_order_and_copies_to_capture(zmq_factory, zmq_address):
    total = 2_000
    front = ZmqPullConnection(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    back = ZmqPushConnection(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    captureSink = CollectingPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    captureSink.expected = total
    proxy = ZmqProxy(
        zmq_factory, front, back, capture=ZmqEndpoint(connect, captureSink.lastEndpoint)
    )
    sink = CollectingPull(zmq_factory, ZmqEndpoint(connect, back.lastEndpoint))
    sink.expected = total
    source = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, front.lastEndpoint))
    for n in range(total):
        source.push([b"job", b"%d" % n])
    await sink.done
    await captureSink.done
    expected = [[b"job", b"%d" % n] for n in range(total)]
    assert sink.received == expected
    assert captureSink.received == expected
    proxy.shutdown()
    assert front.closed and back.closed and proxy.capture is not None and proxy.capture.closed
    source.shutdown()
    sink.shutdown()
    captureSink.shutdown()


@pytest_twisted.ensureDeferred
async def test_proxy_stops_reading_frontend_while_backend_is_backed_up(zmq_factory, zmq_address):
    total = 3_000

    class Tight(ZmqPushConnection):
        sendHighWaterMark = 5

    class TightPull(CollectingPull):
        recvHighWaterMark = 5

    front = TightPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    back = Tight(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    back.sendQueueHighWater = 20
    back.sendQueueLowWater = 5
    proxy = ZmqProxy(zmq_factory, front, back)
    sink = TightPull(zmq_factory, ZmqEndpoint(connect, back.lastEndpoint))
    sink.expected = total
    sink.pauseProducing()
    source = Tight(zmq_factory, ZmqEndpoint(connect, front.lastEndpoint))
    for n in range(total):
        source.push(b"%d" % n)
    # Wait until the proxy has paused reading its frontend: the backlog then stays at the
    # source, not in the proxy.
    for _ in range(200):
        if front._readPaused:
            break
        await _turn()
    assert front._readPaused, "the proxy never paused its frontend"
    assert back.sendQueueLength <= back.sendQueueHighWater + 1
    assert source.sendQueueLength > total // 2
    sink.resumeProducing()
    await sink.done
    assert [m[0] for m in sink.received] == [b"%d" % n for n in range(total)]
    source.shutdown()
    sink.shutdown()
    proxy.shutdown()


def test_proxy_refuses_socket_types_it_cannot_join(zmq_factory):
    pub, sub = ZmqPubConnection(zmq_factory), ZmqSubConnection(zmq_factory)
    with pytest.raises(ValueError, match="cannot proxy"):
        ZmqProxy(zmq_factory, pub, sub)
    pub.shutdown()
    sub.shutdown()


async def _worker(connection: ZmqREQConnection, name: bytes) -> None:
    """A load-balanced worker: READY, then answer each request, until shut down."""
    request = await connection.sendMsg(b"READY")
    while True:
        client, empty, *body = request
        assert empty == b""
        request = await connection.sendMsg(client, b"", name, *body)


@pytest_twisted.ensureDeferred
async def test_load_balancing_broker_spreads_requests_over_ready_workers(zmq_factory, zmq_address):
    broker = ZmqLoadBalancingBroker(
        zmq_factory,
        ZmqEndpoint(bind, zmq_address("tcp")),
        ZmqEndpoint(bind, zmq_address("inproc")),
    )
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, broker.frontend.lastEndpoint))
    # Requests sent before any worker exists wait (the broker is not reading them yet).
    early = [client.sendMsg(b"early %d" % n, timeout=5) for n in range(5)]
    workers = [
        ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, broker.backend.lastEndpoint))
        for _ in range(3)
    ]
    running = [
        Deferred.fromCoroutine(_worker(worker, b"w%d" % n)) for n, worker in enumerate(workers)
    ]
    later = [client.sendMsg(b"%d" % n, timeout=5) for n in range(60)]
    replies = await gatherResults(early + later, consumeErrors=True)
    assert [r[1:] for r in replies[:5]] == [[b"early %d" % n] for n in range(5)]
    assert [r[1:] for r in replies[5:]] == [[b"%d" % n] for n in range(60)]
    assert {r[0] for r in replies} == {b"w0", b"w1", b"w2"}
    for worker in workers:
        worker.shutdown()
    results = await DeferredList(running, consumeErrors=True)
    assert all(not ok and failure.check(ZmqConnectionClosed) for ok, failure in results)
    client.shutdown()
    broker.shutdown()


@pytest_twisted.ensureDeferred
async def test_load_balancing_broker_serves_plain_pyzmq_req_workers_and_clients(
    zmq_factory, zmq_address
):
    broker = ZmqLoadBalancingBroker(
        zmq_factory,
        ZmqEndpoint(bind, zmq_address("inproc")),
        ZmqEndpoint(bind, zmq_address("inproc")),
    )
    context = zmq_factory.context

    def worker(count):
        socket = blockingSocket(context, zmq.REQ)
        socket.connect(broker.backend.lastEndpoint)
        try:
            socket.send(b"READY")
            for _ in range(count):
                client, empty, body = socket.recv_multipart()
                socket.send_multipart([client, empty, body.upper()])
        finally:
            socket.close()

    def client(count):
        socket = blockingSocket(context, zmq.REQ)
        socket.connect(broker.frontend.lastEndpoint)
        try:
            replies = []
            for n in range(count):
                socket.send(b"hello %d" % n)
                replies.append(socket.recv())
            return replies
        finally:
            socket.close()

    workers = [inThread(worker, 5), inThread(worker, 5)]
    replies = await inThread(client, 10)
    await gatherResults(workers)
    assert replies == [b"HELLO %d" % n for n in range(10)]
    broker.shutdown()


def _turn() -> Deferred[None]:
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, 0.001, lambda: None)


@pytest.mark.parametrize("closing", ["frontend", "backend"])
def test_streamer_proxy_shuts_down_with_either_side(zmq_factory, closing):
    front = ZmqPullConnection(zmq_factory)
    back = ZmqPushConnection(zmq_factory)
    ZmqProxy(zmq_factory, front, back)
    (front if closing == "frontend" else back).shutdown()
    assert front.closed and back.closed


# -- failure paths: nothing left open, nothing of the caller's closed ----------------------------


@pytest.mark.parametrize("failing", ["frontend", "backend"])
def test_load_balancing_broker_that_cannot_bind_leaves_no_connection_behind(
    zmq_factory, zmq_address, failing
):
    taken = ZmqRouterConnection(zmq_factory, ZmqEndpoint(bind, zmq_address("tcp")))
    before = set(zmq_factory.connections)
    # The failing side binds a free address first, then one in use.
    endpoints = {
        "frontend": ZmqEndpoint(bind, zmq_address("inproc")),
        "backend": ZmqEndpoint(bind, zmq_address("inproc")),
    }
    endpoints[failing] = [
        ZmqEndpoint(bind, zmq_address("inproc")),
        ZmqEndpoint(bind, taken.lastEndpoint),
    ]
    with pytest.raises(zmq.ZMQError):
        ZmqLoadBalancingBroker(zmq_factory, endpoints["frontend"], endpoints["backend"])
    assert zmq_factory.connections == before
    taken.shutdown()


@pytest_twisted.ensureDeferred
async def test_proxy_shutdown_leaves_a_capture_connection_it_was_given_open(
    zmq_factory, zmq_address
):
    sink = CollectingPull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
    sink.expected = 1
    capture = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, sink.lastEndpoint))
    front, back = ZmqPullConnection(zmq_factory), ZmqPushConnection(zmq_factory)
    proxy = ZmqProxy(zmq_factory, front, back, capture=capture)
    proxy.shutdown()
    assert front.closed and back.closed
    capture.send(b"still mine")  # raises ZmqConnectionClosed if the proxy closed it
    await sink.done
    assert sink.received == [[b"still mine"]]
    capture.shutdown()
    sink.shutdown()


@pytest.mark.parametrize("closing", ["proxy", "frontend", "backend"])
def test_proxy_closes_the_capture_connection_it_made_when_it_ends(
    zmq_factory, zmq_address, closing
):
    front, back = ZmqPullConnection(zmq_factory), ZmqPushConnection(zmq_factory)
    proxy = ZmqProxy(zmq_factory, front, back, capture=ZmqEndpoint(bind, zmq_address("inproc")))
    made = proxy.capture
    assert made is not None and made in zmq_factory.connections
    {"proxy": proxy, "frontend": front, "backend": back}[closing].shutdown()
    assert made.closed
    assert zmq_factory.connections.isdisjoint({front, back, made})


def test_proxy_that_cannot_take_a_side_closes_the_capture_it_made_and_frees_the_other(
    zmq_factory, zmq_address
):
    front, back = ZmqRouterConnection(zmq_factory), ZmqDealerConnection(zmq_factory)
    first = ZmqProxy(zmq_factory, front, back)
    newBack = ZmqDealerConnection(zmq_factory)
    before = set(zmq_factory.connections)
    # `front` is already paced by `first`: a second proxy cannot take it.
    with pytest.raises(RuntimeError, match="already has a producer"):
        ZmqProxy(zmq_factory, front, newBack, capture=ZmqEndpoint(bind, zmq_address("inproc")))
    assert zmq_factory.connections == before
    # `newBack` was left as it was: another proxy can take it.
    second = ZmqProxy(zmq_factory, ZmqRouterConnection(zmq_factory), newBack)
    first.shutdown()
    second.shutdown()
