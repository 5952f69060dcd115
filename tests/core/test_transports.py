"""
Transports beyond tcp, ipc and inproc: websockets, multicast (epgm, pgm, norm) and tipc,
through txzmq2's connection classes. Each test skips, saying which, where this libzmq lacks
the transport; pyzmq built on Debian's libzmq has them all (.ci/env-debian-libzmq.sh).
Multicast runs in a network namespace whose only interface is loopback (needs root), so
nothing it sends can leave the machine.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import DeferredQueue

from tests.peers import inThread
from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPairConnection,
    ZmqPubConnection,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqREPConnection,
    ZmqREQConnection,
    ZmqRouterConnection,
    ZmqSubConnection,
    capabilities,
)
from txzmq2.testing import waitForSubscription

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect
TIMEOUT = 10
ROOT = Path(__file__).parents[2]
TICKER = ROOT / "examples" / "multicast_ticker.py"


def needs(transport: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        transport not in capabilities().transports,
        reason=f"libzmq {zmq.zmq_version()} has no {transport} transport"
        " (pyzmq on Debian's libzmq has: .ci/env-debian-libzmq.sh)",
    )


class Pull(ZmqPullConnection):
    def __init__(self, *args, **kwargs):
        self.received: DeferredQueue[list[bytes]] = DeferredQueue()
        super().__init__(*args, **kwargs)

    def onPull(self, message):
        self.received.put(message)


class Sub(ZmqSubConnection):
    def __init__(self, *args, **kwargs):
        self.received: DeferredQueue[tuple[bytes, bytes]] = DeferredQueue()
        super().__init__(*args, **kwargs)

    def gotMessage(self, message, tag):
        self.received.put((tag, message))


class Echo(ZmqREPConnection):
    def handleRequest(self, *parts):
        return [b"echo", *parts]


def _ws(path: str = "") -> str:
    return f"ws://127.0.0.1:*{path}"


@needs("ws")
@pytest_twisted.ensureDeferred
async def test_push_reaches_pull_over_websocket(zmq_factory):
    pull = Pull(zmq_factory, ZmqEndpoint(bind, _ws()))
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, pull.lastEndpoint))
    push.send([b"over", b"ws"])
    assert await pull.received.get().addTimeout(TIMEOUT, reactor) == [b"over", b"ws"]
    push.shutdown()
    pull.shutdown()


@needs("ws")
@pytest_twisted.ensureDeferred
async def test_pub_reaches_sub_over_websocket(zmq_factory):
    pub = ZmqPubConnection(zmq_factory, ZmqEndpoint(bind, _ws("/feed")))
    sub = Sub(zmq_factory, ZmqEndpoint(connect, pub.lastEndpoint))
    sub.subscribe(b"news")
    await waitForSubscription(pub, sub, timeout=TIMEOUT)
    pub.publish(b"headline", b"news")
    assert await sub.received.get().addTimeout(TIMEOUT, reactor) == (b"news", b"headline")
    sub.shutdown()
    pub.shutdown()


@needs("ws")
@pytest_twisted.ensureDeferred
async def test_request_gets_its_reply_over_websocket(zmq_factory):
    server = Echo(zmq_factory, ZmqEndpoint(bind, _ws("/rpc")))
    client = ZmqREQConnection(zmq_factory, ZmqEndpoint(connect, server.lastEndpoint))
    assert await client.sendMsg(b"hello", timeout=TIMEOUT) == [b"echo", b"hello"]
    client.shutdown()
    server.shutdown()


class Frames:
    """Puts the frames of each ``gotMessage`` call in ``received``."""

    def __init__(self, *args, **kwargs):
        self.received: DeferredQueue[tuple[bytes, ...]] = DeferredQueue()
        super().__init__(*args, **kwargs)

    def gotMessage(self, *frames):
        self.received.put(frames)


class Router(Frames, ZmqRouterConnection): ...


class Dealer(Frames, ZmqDealerConnection): ...


class Pair(Frames, ZmqPairConnection): ...


@needs("ws")
@pytest_twisted.ensureDeferred
async def test_dealer_and_router_talk_over_websocket(zmq_factory):
    router = Router(zmq_factory, ZmqEndpoint(bind, _ws("/route")))
    dealer = Dealer(zmq_factory, ZmqEndpoint(connect, router.lastEndpoint), identity=b"d")
    dealer.sendMsg(b"ping")
    assert await router.received.get().addTimeout(TIMEOUT, reactor) == (b"d", b"ping")
    router.sendMsg(b"d", b"pong")
    assert await dealer.received.get().addTimeout(TIMEOUT, reactor) == (b"pong",)
    dealer.shutdown()
    router.shutdown()


@needs("ws")
@pytest_twisted.ensureDeferred
async def test_pair_peers_talk_over_websocket(zmq_factory):
    left = Pair(zmq_factory, ZmqEndpoint(bind, _ws()))
    right = Pair(zmq_factory, ZmqEndpoint(connect, left.lastEndpoint))
    right.sendMultipart([b"two", b"frames"])
    assert await left.received.get().addTimeout(TIMEOUT, reactor) == (b"two", b"frames")
    left.sendMsg(b"back")
    assert await right.received.get().addTimeout(TIMEOUT, reactor) == (b"back",)
    right.shutdown()
    left.shutdown()


@needs("ws")
def test_websocket_echo_example_runs():
    # Here rather than in tests/test_examples.py: the core tests are what the environment
    # with a ws-capable libzmq runs.
    result = subprocess.run(
        [sys.executable, "examples/websocket_echo.py"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert "client: websocket -> echo: websocket" in result.stdout
    assert "client: 3 replies over websocket" in result.stdout


def _tipcWorks() -> bool:
    try:
        socket.socket(socket.AF_TIPC, socket.SOCK_RDM).close()
    except (AttributeError, OSError):
        return False
    return True


@needs("tipc")
@pytest.mark.skipif(not _tipcWorks(), reason="the kernel has no TIPC (modprobe tipc)")
@pytest_twisted.ensureDeferred
async def test_push_reaches_pull_over_tipc(zmq_factory):
    service = 5560 + os.getpid() % 1000
    pull = Pull(zmq_factory, ZmqEndpoint(bind, f"tipc://{{{service},0,0}}"))
    push = ZmqPushConnection(zmq_factory, ZmqEndpoint(connect, pull.endpoints[0].address))
    push.send(b"over tipc")
    assert await pull.received.get().addTimeout(TIMEOUT, reactor) == [b"over tipc"]
    push.shutdown()
    pull.shutdown()


def _reactorName() -> str:
    module = type(reactor).__module__
    for name in ("asyncio", "poll", "select", "epoll"):
        if f".{name}reactor" in module:
            return name
    return "select"


def _inLoopbackNamespace(address: str) -> subprocess.CompletedProcess[str]:
    """Run examples/multicast_ticker.py on this test's reactor, in a new network namespace
    whose only interface is loopback (with multicast on)."""
    setUp = (
        "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo"
        ' && exec "$0" "$@"'
    )
    ticker = [sys.executable, str(TICKER), address, "--ticks", "3", "--reactor", _reactorName()]
    return subprocess.run(
        ["unshare", "--net", "sh", "-c", setUp, *ticker],
        capture_output=True,
        text=True,
        timeout=40,
        cwd=ROOT,
    )


def _namespaceSkip() -> str | None:
    if os.geteuid() != 0:
        return "multicast runs in a network namespace of its own, which needs root"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2) for a network namespace"
    return None


@pytest.mark.parametrize(
    "address",
    [
        "epgm://127.0.0.1;239.192.1.1:5555",
        "pgm://127.0.0.1;239.192.1.2:5556",
        "norm://127.0.0.1;239.192.1.3:5557",
    ],
    ids=["epgm", "pgm", "norm"],
)
@pytest_twisted.ensureDeferred
async def test_multicast_ticker_is_heard_in_a_loopback_only_namespace(address):
    transport = address.split(":", 1)[0]
    if transport not in capabilities().transports:
        pytest.skip(f"libzmq {zmq.zmq_version()} has no {transport} transport")
    reason = _namespaceSkip()
    if reason is not None:
        pytest.skip(reason)
    result = await inThread(_inLoopbackNamespace, address)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sub: heard 3 ticks" in result.stdout
