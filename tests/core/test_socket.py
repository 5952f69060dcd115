"""
ZmqSocket: any socket type read by asking, ``receive()`` Deferreds and ``async for``, with a
bounded buffer whose backpressure reaches the sender.
"""

from __future__ import annotations

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater

from txzmq2 import (
    ZmqConnectionClosed,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPushConnection,
    ZmqSocket,
    ZmqTimeoutError,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect


class TightSocket(ZmqSocket):
    receiveBufferSize = 10
    highWaterMark = 10


class TightPush(ZmqPushConnection):
    highWaterMark = 10


def _pipeline(zmq_factory, zmq_address, transport="inproc", tight=False):
    address = zmq_address(transport)
    pull = (TightSocket if tight else ZmqSocket)(zmq_factory, zmq.PULL, ZmqEndpoint(bind, address))
    push = (TightPush if tight else ZmqPushConnection)(zmq_factory)
    push.addEndpoints([ZmqEndpoint(connect, pull.lastEndpoint)])
    return pull, push


async def _turns(count: int) -> None:
    for _ in range(count):
        await deferLater(reactor, 0, lambda: None)


@pytest.mark.parametrize("transport", ["inproc", "ipc", "tcp"])
@pytest_twisted.ensureDeferred
async def test_receive_fires_with_the_next_message(zmq_factory, zmq_address, transport):
    pull, push = _pipeline(zmq_factory, zmq_address, transport)
    waiting = pull.receive(timeout=10)
    push.send([b"two", b"frames"])
    assert await waiting == [b"two", b"frames"]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_message_arriving_while_nobody_waits_is_buffered(zmq_factory, zmq_address):
    pull, push = _pipeline(zmq_factory, zmq_address)
    push.send(b"first")
    push.send(b"second")
    await _turns(5)
    assert await pull.receive(timeout=10) == [b"first"]
    assert await pull.receive(timeout=10) == [b"second"]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_receive_without_a_message_times_out(zmq_factory, zmq_address):
    pull, push = _pipeline(zmq_factory, zmq_address)
    with pytest.raises(ZmqTimeoutError):
        await pull.receive(timeout=0.05)
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_pending_receive_fails_when_the_socket_shuts_down(zmq_factory):
    sock = ZmqSocket(zmq_factory, zmq.PULL)
    waiting = sock.receive()
    sock.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        await waiting
    with pytest.raises(ZmqConnectionClosed):
        await sock.receive()


@pytest_twisted.ensureDeferred
async def test_cancelled_receive_loses_no_message(zmq_factory, zmq_address):
    pull, push = _pipeline(zmq_factory, zmq_address)
    cancelled = pull.receive()
    cancelled.cancel()
    with pytest.raises(CancelledError):
        await cancelled
    push.send(b"kept")
    assert await pull.receive(timeout=10) == [b"kept"]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_timed_out_receive_loses_no_message(zmq_factory, zmq_address):
    pull, push = _pipeline(zmq_factory, zmq_address)
    with pytest.raises(ZmqTimeoutError):
        await pull.receive(timeout=0.01)
    push.send(b"kept")
    assert await pull.receive(timeout=10) == [b"kept"]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_async_for_yields_every_message_until_shutdown(zmq_factory, zmq_address):
    pull, push = _pipeline(zmq_factory, zmq_address)

    async def consume() -> list[bytes]:
        seen = []
        async for message in pull:
            seen.append(message[0])
            if len(seen) == 3:
                pull.shutdown()
        return seen

    consumer = Deferred.fromCoroutine(consume())
    for number in range(3):
        push.send(b"%d" % number)
    assert await consumer.addTimeout(10, reactor) == [b"0", b"1", b"2"]
    push.shutdown()


@pytest_twisted.ensureDeferred
async def test_full_buffer_pauses_reading_until_the_sender_backs_up(zmq_factory, zmq_address):
    pull, push = _pipeline(zmq_factory, zmq_address, tight=True)
    for number in range(1000):
        push.send(b"%d" % number)
    await _turns(50)
    # Buffer, both high-water marks and libzmq's batching hold a few dozen; the rest must
    # still wait at the sender.
    assert push.sendQueueLength > 900
    received = [(await pull.receive(timeout=10))[0] for _ in range(1000)]
    assert received == [b"%d" % number for number in range(1000)]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_dealer_and_router_sockets_send_and_receive(zmq_factory, zmq_address):
    router = ZmqSocket(zmq_factory, zmq.ROUTER, ZmqEndpoint(bind, zmq_address("inproc")))
    dealer = ZmqSocket(zmq_factory, zmq.DEALER, identity=b"d1")
    dealer.addEndpoints([ZmqEndpoint(connect, router.lastEndpoint)])
    dealer.send(b"ping")
    assert await router.receive(timeout=10) == [b"d1", b"ping"]
    router.send([b"d1", b"pong"])
    assert await dealer.receive(timeout=10) == [b"pong"]
    dealer.shutdown()
    router.shutdown()


@pytest_twisted.ensureDeferred
async def test_receive_works_from_asyncio_code_through_as_future(zmq_factory, zmq_address):
    import asyncio

    if "asyncio" not in type(reactor).__module__:
        pytest.skip("needs the asyncio reactor (--reactor=asyncio)")
    pull, push = _pipeline(zmq_factory, zmq_address)
    loop = asyncio.get_event_loop()

    async def asyncioConsumer() -> list[bytes]:
        return await pull.receive(timeout=10).asFuture(loop)

    consumer = Deferred.fromFuture(asyncio.ensure_future(asyncioConsumer()))
    push.send(b"from asyncio")
    assert await consumer == [b"from asyncio"]
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_send_only_socket_type_sends(zmq_factory, zmq_address, loggedFailures):
    pull = ZmqSocket(zmq_factory, zmq.PULL, ZmqEndpoint(bind, zmq_address("inproc")))
    push = ZmqSocket(zmq_factory, zmq.PUSH, ZmqEndpoint(connect, pull.lastEndpoint))
    push.send(b"from a PUSH ZmqSocket")
    assert await pull.receive(timeout=10) == [b"from a PUSH ZmqSocket"]
    assert loggedFailures == []  # it never tried to read its write-only socket
    push.shutdown()
    pull.shutdown()
