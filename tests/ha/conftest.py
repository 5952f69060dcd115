"""
Helpers of the ``txzmq2.ha`` tests: short heartbeats, a Binary Star pair on ipc addresses,
an echo server each node serves, and a way to wait on a condition without sleeping blind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet.task import deferLater

from txzmq2 import ZmqEndpoint, ZmqFactory, ZmqREPConnection
from txzmq2.ha import BinaryStar
from txzmq2.testing import AddressFactory

HEARTBEAT = 0.05
"""Binary Star heartbeat of these tests (seconds): short, so failover takes milliseconds."""
PATIENCE = 5.0
"""Seconds a test waits at most for something that takes milliseconds when all is well."""


async def until(predicate: Callable[[], object], timeout: float = PATIENCE) -> None:
    """Wait until ``predicate()`` is true, checking every 5 ms; fail after ``timeout``."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            pytest.fail(f"still false after {timeout} s: {predicate.__doc__ or predicate}")
        await deferLater(reactor, 0.005)


async def lasting(seconds: float) -> None:
    """Let time pass: the scenario is that nothing happens meanwhile."""
    from twisted.internet import reactor

    await deferLater(reactor, seconds)


class Echo(ZmqREPConnection):
    """Answers ``[name, *request]``: the client sees who answered."""

    name = b"?"

    def handleRequest(self, *parts: bytes) -> list[bytes]:
        return [self.name, *parts]


class Pair:
    """
    Binary Star nodes with an echo server each, on ipc addresses; whatever it made is shut
    down after the test.
    """

    def __init__(self, factory: ZmqFactory, addresses: AddressFactory) -> None:
        self.factory = factory
        self.stateAddresses = {True: addresses("ipc"), False: addresses("ipc")}
        self.serverAddresses = {True: addresses("ipc"), False: addresses("ipc")}
        self._made: list[Any] = []

    def node(self, primary: bool, serve: bool = True) -> BinaryStar:
        node = BinaryStar(
            self.factory,
            primary,
            self.stateAddresses[primary],
            self.stateAddresses[not primary],
            heartbeat=HEARTBEAT,
        )
        self._made.append(node)
        if serve:
            server = Echo(self.factory, ZmqEndpoint("bind", self.serverAddresses[primary]))
            server.name = b"primary" if primary else b"backup"
            self._made.append(server)
            node.serve(server)
        return node

    def keep(self, made: Any) -> Any:
        self._made.append(made)
        return made

    def shutdown(self) -> None:
        for made in reversed(self._made):
            made.shutdown()


@pytest.fixture
def pair(zmq_factory: ZmqFactory, zmq_address: AddressFactory) -> Iterator[Pair]:
    made = Pair(zmq_factory, zmq_address)
    yield made
    made.shutdown()
