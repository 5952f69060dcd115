"""
Fixtures of the RPC tests: a server with a client (``rpc``), a raw DEALER peer (``raw``),
and the log events of a test (``logged``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.rpc.support import Calculator, RawPeer
from txzmq2 import ZmqEndpoint, ZmqEndpointType
from txzmq2.rpc import RPCClient, RPCServer

Serve = Callable[..., tuple[RPCClient, RPCServer]]


@pytest.fixture
def rpc(zmq_factory, zmq_address) -> Iterator[Serve]:
    """
    ``rpc(service=None, transport="inproc", client={...}, **serverOptions)``: a fresh
    RPCServer (serving a :class:`Calculator` unless given a service) and an RPCClient
    connected to it, whose calls time out after 5 s unless ``client`` says otherwise.
    """

    def serve(
        service: object = None,
        transport: str = "inproc",
        client: dict[str, Any] | None = None,
        **serverOptions: Any,
    ) -> tuple[RPCClient, RPCServer]:
        server = RPCServer(
            zmq_factory,
            ZmqEndpoint(ZmqEndpointType.bind, zmq_address(transport)),
            Calculator() if service is None else service,
            **serverOptions,
        )
        opened.append(server)
        clientOptions = {"timeout": 5.0, **(client or {})}
        connect = ZmqEndpoint(ZmqEndpointType.connect, server.lastEndpoint)
        rpcClient = RPCClient(zmq_factory, connect, **clientOptions)
        opened.append(rpcClient)
        return rpcClient, server

    opened: list[RPCClient | RPCServer] = []
    yield serve
    for connection in opened:
        connection.shutdown()


@pytest.fixture
def raw(zmq_factory) -> Iterator[Callable[[RPCServer], RawPeer]]:
    """``raw(server)``: a :class:`RawPeer` connected to ``server``."""

    def connect(server: RPCServer) -> RawPeer:
        peer = RawPeer(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, server.lastEndpoint))
        opened.append(peer)
        return peer

    opened: list[RawPeer] = []
    yield connect
    for peer in opened:
        peer.shutdown()
