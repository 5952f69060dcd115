"""
Endpoints: address forms of every transport, a clear refusal for a transport this libzmq
lacks, and removeEndpoints (unbind, disconnect) keeping ``connection.endpoints`` true.
"""

from __future__ import annotations

import socket

import pytest
import pytest_twisted
import zmq
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from txzmq2 import (
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqPullConnection,
    ZmqPushConnection,
    ZmqUnsupportedError,
    capabilities,
)

bind = ZmqEndpointType.bind
connect = ZmqEndpointType.connect


@pytest.mark.parametrize(
    "address",
    [
        "tcp://127.0.0.1:*",
        "tcp://[::1]:5555",
        "tcp://127.0.0.1:0;localhost:5555",
        "ws://127.0.0.1:8080/some/path",
        "wss://example.org:443",
        "epgm://127.0.0.1;239.192.1.1:5555",
        "pgm://eth0;239.192.1.1:5555",
        "norm://1,127.0.0.1:5555",
        "tipc://{5560,0,0}",
        "udp://239.0.0.1:5555",
        "vmci://2:5555",
    ],
)
def test_address_forms_of_every_transport_pass_the_shape_check(address):
    try:
        ZmqEndpoint(bind, address).validate()
    except ZmqUnsupportedError:
        pass  # a shape accepted, for a transport this libzmq lacks


@pytest.mark.parametrize(
    "address",
    [
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:65536",
        "epgm://239.192.1.1:5555",
        "pgm://eth0;239.192.1.1",
        "ws://127.0.0.1/path",
        "tpc://127.0.0.1:5555",
    ],
)
def test_malformed_address_is_a_value_error(address):
    with pytest.raises(ValueError, match="endpoint address"):
        ZmqEndpoint(bind, address).validate()


def test_transport_this_libzmq_lacks_is_refused_by_name(zmq_factory):
    missing = [t for t in ("ws", "epgm", "norm") if t not in capabilities().transports]
    if not missing:
        pytest.skip(f"libzmq {zmq.zmq_version()} has ws, epgm and norm")
    address = {
        "ws": "ws://127.0.0.1:*",
        "epgm": "epgm://127.0.0.1;239.192.1.1:5555",
        "norm": "norm://127.0.0.1:5555",
    }[missing[0]]
    with pytest.raises(ZmqUnsupportedError, match=f"no '{missing[0]}' transport"):
        ZmqPullConnection(zmq_factory, ZmqEndpoint(bind, address))
    assert not zmq_factory.connections


def test_bound_wildcard_is_listed_with_the_port_chosen(zmq_factory):
    pull = ZmqPullConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    assert pull.endpoints == [ZmqEndpoint(bind, pull.lastEndpoint)]
    assert not pull.endpoints[0].address.endswith(":*")
    pull.shutdown()


async def _unbound(pull: ZmqPullConnection) -> None:
    """Remove every endpoint of ``pull`` and wait for libzmq's I/O thread to close it."""
    closed = pull.monitor(zmq.EVENT_CLOSED)
    pull.removeEndpoints(list(pull.endpoints))
    assert pull.endpoints == []
    await closed.waitFor(zmq.EVENT_CLOSED, timeout=10)
    closed.stop()


@pytest_twisted.ensureDeferred
async def test_removed_tcp_bind_refuses_new_peers(zmq_factory):
    pull = ZmqPullConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    port = int(pull.lastEndpoint.rsplit(":", 1)[1])
    socket.create_connection(("127.0.0.1", port), timeout=5).close()  # listening
    await _unbound(pull)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    pull.shutdown()


@pytest_twisted.ensureDeferred
async def test_removed_ipc_bind_refuses_new_peers(zmq_factory, zmq_address):
    address = zmq_address("ipc")
    pull = ZmqPullConnection(zmq_factory, ZmqEndpoint(bind, address))
    await _unbound(pull)
    with socket.socket(socket.AF_UNIX) as probe, pytest.raises(OSError):
        probe.connect(address.removeprefix("ipc://"))
    pull.shutdown()


class Counting(ZmqPullConnection):
    def __init__(self, *args, **kwargs):
        self.received: list[bytes] = []
        self.reached: dict[int, Deferred[None]] = {}
        super().__init__(*args, **kwargs)

    def onPull(self, message):
        self.received.append(message[0])
        waiter = self.reached.pop(len(self.received), None)
        if waiter is not None:
            waiter.callback(None)

    def whenReceived(self, count: int) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if len(self.received) >= count:
            waiter.callback(None)
        else:
            self.reached[count] = waiter
        return waiter.addTimeout(10, reactor)


@pytest_twisted.ensureDeferred
async def test_messages_to_a_removed_connect_target_stop(zmq_factory):
    kept = Counting(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    dropped = Counting(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    push = ZmqPushConnection(zmq_factory)
    push.addEndpoints([ZmqEndpoint(connect, kept.lastEndpoint)])
    push.addEndpoints([ZmqEndpoint(connect, dropped.lastEndpoint)])
    # PUSH deals round-robin over its two pipes: one message each.
    push.send(b"0")
    push.send(b"1")
    await kept.whenReceived(1)
    await dropped.whenReceived(1)
    push.removeEndpoints([ZmqEndpoint(connect, dropped.lastEndpoint)])
    assert push.endpoints == [ZmqEndpoint(connect, kept.lastEndpoint)]
    for number in range(10):
        push.send(b"after %d" % number)
    # All ten reach the one target left; had any gone to the removed one, this would wait.
    await kept.whenReceived(11)
    assert len(dropped.received) == 1
    for connection in (push, kept, dropped):
        connection.shutdown()


def test_removing_an_endpoint_never_added_is_a_value_error(zmq_factory):
    pull = ZmqPullConnection(zmq_factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
    with pytest.raises(ValueError, match="has no endpoint"):
        pull.removeEndpoints([ZmqEndpoint(connect, "tcp://127.0.0.1:1")])
    assert len(pull.endpoints) == 1
    pull.shutdown()
