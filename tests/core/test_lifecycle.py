"""
Factory and connection life: import without a reactor, options, endpoints, errors,
logging of user errors, shutdown that never blocks the reactor.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import globalLogPublisher

from txzmq2 import (
    ZmqConnectionClosed,
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqRouterConnection,
    ZmqSubConnection,
    ZmqUnroutableError,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect


def _runPython(source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_import_does_not_import_the_global_reactor():
    result = _runPython(
        """
        import sys
        import txzmq2, txzmq2.testing, txzmq2.app.cli
        factory = txzmq2.ZmqFactory()
        assert "twisted.internet.reactor" not in sys.modules, "reactor imported"
        factory.reactor  # first use imports it
        assert "twisted.internet.reactor" in sys.modules
        factory.shutdown()
        """
    )
    assert result.returncode == 0, result.stderr


def test_registered_factory_shuts_down_with_the_reactor():
    result = _runPython(
        """
        import tempfile
        from twisted.internet import reactor
        from txzmq2 import ZmqFactory, ZmqPushConnection, ZmqEndpoint
        factory = ZmqFactory(lingerPeriod=200)
        factory.registerForShutdown()
        nobody = "ipc://" + tempfile.mkdtemp() + "/nobody.sock"
        push = ZmqPushConnection(factory, ZmqEndpoint("connect", nobody))
        push.push(b"never delivered")  # held by libzmq until linger expires
        reactor.callWhenRunning(reactor.stop)
        reactor.run()
        assert not factory.connections
        assert factory.context.closed
        print("clean")
        """
    )
    assert result.returncode == 0, result.stderr
    assert "clean" in result.stdout


def test_factory_uses_the_reactor_it_was_given(zmq_factory):
    assert zmq_factory.reactor is reactor
    connection = ZmqPullConnection(zmq_factory)
    assert connection in zmq_factory.connections
    connection.shutdown()
    assert connection not in zmq_factory.connections


@pytest_twisted.ensureDeferred
async def test_factory_shutdown_twice_is_harmless():
    factory = ZmqFactory(reactor)
    ZmqPullConnection(factory)
    first, second = factory.shutdown(), factory.shutdown()
    await first
    await second
    await factory.shutdown()
    assert factory.context.closed
    assert not factory.connections


@pytest_twisted.ensureDeferred
async def test_context_passed_in_is_left_to_its_owner():
    context = zmq.Context()
    try:
        factory = ZmqFactory(reactor, context=context)
        ZmqPullConnection(factory)
        await factory.shutdown()
        assert not context.closed
        assert not factory.connections
    finally:
        context.term()


@pytest_twisted.ensureDeferred
async def test_shutdown_with_queued_messages_does_not_block_the_reactor(zmq_address):
    factory = ZmqFactory(reactor, lingerPeriod=300)

    class Push(ZmqPushConnection):
        sendHighWaterMark = 10

    # A connect to an ipc path nobody listens on: libzmq holds the messages for linger.
    push = Push(factory, ZmqEndpoint(connect, zmq_address("ipc")))
    for n in range(100):
        push.push(b"%d" % n)
    assert push.sendQueueLength > 0
    ticks: list[float] = []
    clock = LoopingCall(lambda: ticks.append(time.perf_counter()))
    clock.start(0.005)
    started = time.perf_counter()
    done = factory.shutdown()
    assert time.perf_counter() - started < 0.05, "shutdown() blocked"
    await done
    elapsed = time.perf_counter() - started
    clock.stop()
    assert 0.2 < elapsed < 5, f"context terminated after {elapsed:.3f} s, not after linger"
    assert len(ticks) >= 10, "the reactor did not turn while the context terminated"


def test_send_after_shutdown_raises_a_clear_error(zmq_factory):
    push = ZmqPushConnection(zmq_factory)
    push.shutdown()
    push.shutdown()  # idempotent
    with pytest.raises(ZmqConnectionClosed, match="shut down"):
        push.push(b"late")
    with pytest.raises(ZmqConnectionClosed):
        push.addEndpoints([ZmqEndpoint(bind, "inproc://late")])
    assert push.fileno() == -1


@pytest.mark.parametrize(
    "message, error",
    [
        ("text", TypeError),
        ([b"ok", "text"], TypeError),
        ([b"ok", 3], TypeError),
        ([], ValueError),
    ],
)
def test_send_refuses_what_is_not_frames(zmq_factory, message, error):
    push = ZmqPushConnection(zmq_factory)
    with pytest.raises(error):
        push.send(message)
    push.shutdown()


@pytest.mark.parametrize(
    "endpoint",
    [
        ZmqEndpoint("listen", "tcp://127.0.0.1:*"),
        ZmqEndpoint(bind, "127.0.0.1:5555"),
        ZmqEndpoint(bind, "tpc://127.0.0.1:*"),
        ZmqEndpoint(bind, b"tcp://127.0.0.1:*"),
    ],
)
def test_malformed_endpoint_is_refused_before_libzmq(zmq_factory, endpoint):
    connection = ZmqPullConnection(zmq_factory)
    with pytest.raises(ValueError, match="endpoint"):
        connection.addEndpoints([endpoint])
    assert connection.endpoints == []
    connection.shutdown()


def test_last_endpoint_resolves_the_os_chosen_port(zmq_factory):
    connection = ZmqPullConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    address = connection.lastEndpoint
    assert address.startswith("tcp://127.0.0.1:")
    assert int(address.rsplit(":", 1)[1]) > 0
    connection.shutdown()


def test_options_left_as_none_keep_libzmq_defaults(zmq_factory):
    connection = ZmqPullConnection(zmq_factory)
    assert connection.socket.get(zmq.SNDHWM) == 1000
    assert connection.socket.get(zmq.RCVHWM) == 1000
    assert connection.socket.get(zmq.MAXMSGSIZE) == -1
    assert connection.socket.get(zmq.LINGER) == zmq_factory.lingerPeriod
    connection.shutdown()


def test_option_class_attributes_are_applied(zmq_factory):
    class Tuned(ZmqDealerConnection):
        highWaterMark = 50
        recvHighWaterMark = 70
        maxMessageSize = 4096
        tcpKeepalive = 1
        tcpKeepaliveIdle = 30
        reconnectInterval = 250
        reconnectIntervalMax = 5000

    connection = Tuned(zmq_factory, identity="worker-1")
    socket = connection.socket
    assert socket.get(zmq.SNDHWM) == 50
    assert socket.get(zmq.RCVHWM) == 70
    assert socket.get(zmq.MAXMSGSIZE) == 4096
    assert socket.get(zmq.TCP_KEEPALIVE) == 1
    assert socket.get(zmq.TCP_KEEPALIVE_IDLE) == 30
    assert socket.get(zmq.RECONNECT_IVL) == 250
    assert socket.get(zmq.RECONNECT_IVL_MAX) == 5000
    assert socket.get(zmq.ROUTING_ID) == b"worker-1"
    connection.shutdown()


def test_router_mandatory_send_to_unknown_identity_raises(zmq_factory):
    class Router(ZmqRouterConnection):
        routerMandatory = True

    router = Router(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    with pytest.raises(ZmqUnroutableError):
        router.sendMsg(b"nobody", b"hello")
    router.shutdown()


def test_subscribe_refuses_what_is_not_a_tag(zmq_factory):
    sub = ZmqSubConnection(zmq_factory)
    with pytest.raises(TypeError):
        sub.subscribe(3)
    sub.shutdown()


@pytest_twisted.ensureDeferred
async def test_error_in_user_callback_is_logged_and_next_message_delivered(
    zmq_factory, zmq_address
):
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    second: Deferred[list[bytes]] = Deferred()

    class Fragile(ZmqPullConnection):
        def onPull(self, message):
            if message == [b"boom"]:
                raise RuntimeError("user bug")
            second.callback(message)

    try:
        pull = Fragile(zmq_factory, ZmqEndpoint(bind, zmq_address("inproc")))
        push = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
        push.push(b"boom")
        push.push(b"fine")
        assert await second == [b"fine"]
    finally:
        globalLogPublisher.removeObserver(events.append)
    failures = [e for e in events if "log_failure" in e]
    assert len(failures) == 1
    assert failures[0]["log_failure"].check(RuntimeError)
    assert "user bug" in failures[0]["log_failure"].getTraceback()
    push.shutdown()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_shutdown_hooks_run_once_before_connections_close(loggedFailures):
    factory = ZmqFactory(reactor)
    pull = ZmqPullConnection(factory)
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("hook failed")

    factory.addShutdownHook(lambda: seen.append("open" if not pull.closed else "closed"))
    factory.addShutdownHook(broken)

    def forgotten() -> None:
        seen.append("forgotten")

    factory.addShutdownHook(forgotten)
    factory.removeShutdownHook(forgotten)
    await factory.shutdown()
    await factory.shutdown()
    assert seen == ["open"]
    assert [event["log_failure"].type for event in loggedFailures] == [RuntimeError]
