"""
Shutdown in awkward orders, errors in users' producers and callbacks, reopened connections:
nothing hangs, nothing leaks, no Deferred is left unfired or fired by the wrong reply.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from zope.interface import implementer

from tests.peers import blockingSocket, inThread
from txzmq2 import (
    ZmqConnectionClosed,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqREQConnection,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect


def test_reactor_stop_without_registered_shutdown_never_hangs():
    """The reactor closes descriptors in any order, monitors' readers included."""
    source = textwrap.dedent(
        """
        from twisted.internet import reactor
        from txzmq2 import ZmqEndpoint, ZmqFactory, ZmqDealerConnection
        factory = ZmqFactory()
        servers = [ZmqDealerConnection(factory, ZmqEndpoint("bind", "tcp://127.0.0.1:*"))
                   for _ in range(20)]
        clients = [ZmqDealerConnection(factory, ZmqEndpoint("connect", s.lastEndpoint))
                   for s in servers]
        reactor.callLater(0.2, reactor.stop)
        reactor.run()
        print("stopped")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout


def test_socket_events_nobody_reads_never_block_shutdown():
    """
    libzmq sends socket events with a blocking send while holding the monitor's lock; a
    reactor that does not read them must not leave that send, and shutdown behind it, stuck.
    """
    source = textwrap.dedent(
        """
        import zmq
        from twisted.internet import reactor
        from txzmq2 import ZmqEndpoint, ZmqFactory, ZmqRouterConnection
        factory = ZmqFactory(reactor)
        server = ZmqRouterConnection(factory, ZmqEndpoint("bind", "tcp://127.0.0.1:*"))
        # The reactor never runs: thousands of events pile up unread.
        context = zmq.Context()
        server.socket.setsockopt(zmq.RCVTIMEO, 10_000)
        for _ in range(1500):
            peer = context.socket(zmq.DEALER)
            peer.connect(server.lastEndpoint)
            peer.send(b"hi")
            # Its message read: its accept and handshake events exist. 1,500 peers make
            # over 3,000 events, beyond what a default event pipe holds.
            server.socket.recv_multipart()
            peer.close(linger=0)
        server.shutdown()
        context.term()
        factory.shutdown()
        print("closed")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "closed" in result.stdout


@pytest_twisted.ensureDeferred
async def test_context_terminated_under_a_connection_fails_its_requests(zmq_address):
    context = zmq.Context()
    factory = ZmqFactory(reactor, context=context)
    client = ZmqREQConnection(factory, ZmqEndpoint(connect, zmq_address("ipc")))
    pending = client.sendMsg(b"never answered")
    terminating = threading.Thread(target=context.term)
    terminating.start()
    with pytest.raises(ZmqConnectionClosed):
        await pending
    await factory.shutdown()
    terminating.join(timeout=10)
    assert not terminating.is_alive(), "context.term() never returned"
    assert client.socket.closed


@pytest_twisted.ensureDeferred
async def test_factory_shutdown_refuses_connections_opened_by_errbacks(zmq_address):
    factory = ZmqFactory(reactor)
    address = zmq_address("ipc")
    refused: list[BaseException] = []

    def reconnect(failure):
        try:
            ZmqREQConnection(factory, ZmqEndpoint(connect, address))
        except ZmqConnectionClosed as error:
            refused.append(error)

    client = ZmqREQConnection(factory, ZmqEndpoint(connect, address))
    client.sendMsg(b"x").addErrback(reconnect)
    await factory.shutdown()
    assert len(refused) == 1
    assert factory.context.closed


@pytest_twisted.ensureDeferred
async def test_reopened_client_with_same_identity_ignores_late_reply_to_predecessor(
    zmq_factory, zmq_address
):
    address = zmq_address("inproc")
    # Handover: the reopened client takes the identity over while the old pipe winds down.
    router = blockingSocket(zmq_factory.context, zmq.ROUTER, router_handover=1)
    router.bind(address)
    try:
        first = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, address), identity=b"me")
        first.sendMsg(b"old question").addErrback(lambda failure: None)
        identity, oldId, _, _ = router.recv_multipart()
        first.shutdown()
        second = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, address), identity=b"me")
        answer = second.sendMsg(b"new question", timeout=5)
        _, newId, _, _ = router.recv_multipart()
        assert newId != oldId
        router.send_multipart([identity, oldId, b"", b"answer to old question"])
        router.send_multipart([identity, newId, b"", b"answer to new question"])
        assert await answer == [b"answer to new question"]
    finally:
        router.close()
    second.shutdown()


@implementer(IPushProducer)
class FaultyProducer:
    def pauseProducing(self):
        raise RuntimeError("pause failed")

    def resumeProducing(self):
        raise RuntimeError("resume failed")

    def stopProducing(self):
        raise RuntimeError("stop failed")


@pytest_twisted.ensureDeferred
async def test_producer_errors_are_logged_and_delivery_goes_on(zmq_factory, zmq_address):
    failures: list[dict] = []
    observer = failures.append
    globalLogPublisher.addObserver(observer)
    total = 300
    done: Deferred[None] = Deferred()
    got: list[bytes] = []

    class Pull(ZmqPullConnection):
        recvHighWaterMark = 1

        def onPull(self, message):
            got.append(message[0])
            if len(got) == total:
                done.callback(None)

    class Push(ZmqPushConnection):
        sendHighWaterMark = 1
        sendQueueHighWater = 5
        sendQueueLowWater = 1

    try:
        pull = Pull(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
        push = Push(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
        push.registerProducer(FaultyProducer(), True)
        for n in range(total):
            push.write(b"%d" % n)
        await done
        push.shutdown()
    finally:
        globalLogPublisher.removeObserver(observer)
    assert got == [b"%d" % n for n in range(total)]
    logged = [e["log_failure"].getErrorMessage() for e in failures if "log_failure" in e]
    assert {"pause failed", "resume failed", "stop failed"} <= set(logged)
    pull.shutdown()


def test_txzmq_style_factory_subclass_attributes_are_honoured():
    class Configured(ZmqFactory):
        ioThreads = 2
        lingerPeriod = 0

    factory = Configured(reactor)
    try:
        assert factory.lingerPeriod == 0
        assert factory.context.get(zmq.IO_THREADS) == 2
        assert ZmqFactory(reactor, lingerPeriod=5, context=factory.context).lingerPeriod == 5
    finally:
        factory.context.term()


@pytest.mark.parametrize(
    "options",
    [{"timeout": -1}, {"retries": -1}, {"retries": 2}, {"timeout": 1, "retries": -3}],
)
def test_request_options_that_cannot_work_are_refused(zmq_factory, options):
    client = ZmqREQConnection(zmq_factory)
    with pytest.raises(ValueError):
        client.sendMsg(b"x", **options)
    assert client.pendingRequests == 0
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_nested_shutdown_from_a_producer_is_harmless(zmq_factory, zmq_address):
    @implementer(IPushProducer)
    class Closer:
        def __init__(self, consumer):
            self.consumer = consumer

        def pauseProducing(self):
            pass

        def resumeProducing(self):
            self.consumer.shutdown()  # re-enters shutdown() from its final flush

        def stopProducing(self):
            pass

    class Dealer(ZmqDealerConnection):
        sendHighWaterMark = 1
        sendQueueHighWater = 1
        sendQueueLowWater = 0

    dealer = Dealer(zmq_factory, ZmqEndpoint(connect, zmq_address("ipc")))
    dealer.registerProducer(Closer(dealer), True)
    for n in range(5):
        dealer.sendMsg(b"%d" % n)
    dealer.shutdown()
    assert dealer.closed and dealer.socket.closed


class UnconnectedReq(ZmqREQConnection):
    immediate = 1  # no pipe until a server is there: requests wait in our own queue


@pytest_twisted.ensureDeferred
async def test_cancelled_request_that_never_left_is_never_sent(zmq_factory, zmq_address):
    address = zmq_address("ipc")
    client = UnconnectedReq(zmq_factory, ZmqEndpoint(connect, address))
    cancelled = client.sendMsg(b"cancelled")
    cancelled.addErrback(lambda failure: None)
    assert client.sendQueueLength == 1
    cancelled.cancel()
    assert client.sendQueueLength == 0
    router = blockingSocket(zmq_factory.context, zmq.ROUTER)
    router.bind(address)
    try:
        answer = client.sendMsg(b"wanted", timeout=5)
        # Received in a thread: the reactor must run to flush our queue once connected.
        identity, requestId, empty, body = await inThread(router.recv_multipart)
        assert body == b"wanted"
        router.send_multipart([identity, requestId, empty, b"ok"])
        assert await answer == [b"ok"]
    finally:
        router.close()
    client.shutdown()


@pytest_twisted.ensureDeferred
async def test_retries_while_no_server_is_reachable_do_not_pile_up(zmq_factory, zmq_address):
    address = zmq_address("ipc")
    client = UnconnectedReq(zmq_factory, ZmqEndpoint(connect, address))
    answer = client.sendMsg(b"only once", timeout=0.02, retries=50)
    await deferLater(reactor, 0.2, lambda: None)  # several retries come and go
    # One copy waits, however many tries timed out (each would otherwise add one).
    assert client.sendQueueLength == 1
    router = blockingSocket(zmq_factory.context, zmq.ROUTER)
    router.bind(address)
    try:
        identity, requestId, empty, body = await inThread(router.recv_multipart)
        assert body == b"only once"
        router.send_multipart([identity, requestId, empty, b"ok"])
        assert await answer == [b"ok"]
    finally:
        router.close()
    client.shutdown()
