"""
Fixtures and helpers of the Majordomo tests: short heartbeats, our three parts made and shut
down per test, reference peers run in threads, raw sockets that show the exact frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from txzmq2 import (
    ZmqDealerConnection,
    ZmqEndpoint,
    ZmqEndpointType,
    ZmqFactory,
    ZmqRouterConnection,
)
from txzmq2.mdp import MajordomoBroker, MajordomoClient, MajordomoWorker

INTERVAL = 0.1
"""Heartbeat interval of every part in these tests (seconds): short, so tests are fast..."""
LIVENESS = 3
"""...with the RFC's usual liveness."""
PATIENCE = 5.0
"""Seconds a test waits at most for something that takes milliseconds when all is well."""


def echo(*frames: bytes) -> list[bytes]:
    return list(frames)


async def until(predicate: Callable[[], object], timeout: float = PATIENCE) -> None:
    """Wait until ``predicate()`` is true, checking every 10 ms; fail after ``timeout``."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            pytest.fail(f"still false after {timeout} s: {predicate.__doc__ or predicate}")
        await deferLater(reactor, 0.01)


def saying(events: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """The log events whose format contains ``text``."""
    return [event for event in events if text in (event.get("log_format") or "")]


class Collector:
    """Records messages and hands them out as Deferreds: ``next()`` fires with the next one."""

    def __init__(self) -> None:
        self.messages: list[list[bytes]] = []
        self._taken = 0
        self._waiters: list[Deferred[list[bytes]]] = []

    def add(self, message: list[bytes]) -> None:
        self.messages.append(message)
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.called:  # else it timed out
                self._taken += 1
                waiter.callback(message)
                break

    def next(self, timeout: float = PATIENCE) -> Deferred[list[bytes]]:
        """The next message not handed out yet; fails with ``TimeoutError`` after ``timeout``."""
        from twisted.internet import reactor

        waiter: Deferred[list[bytes]] = Deferred()
        if self._taken < len(self.messages):
            self._taken += 1
            waiter.callback(self.messages[self._taken - 1])
            return waiter
        self._waiters.append(waiter)
        waiter.addTimeout(timeout, reactor)
        return waiter


async def nextBut(
    inbox: Collector, skipped: list[bytes], timeout: float = PATIENCE
) -> list[bytes]:
    """The next message in ``inbox`` other than ``skipped`` (a heartbeat, say), within
    ``timeout`` seconds in all, however many ``skipped`` come before it."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + timeout
    while (message := await inbox.next(max(0.0, deadline - reactor.seconds()))) == skipped:
        pass
    return message


class RawRouter(ZmqRouterConnection):
    """A plain ROUTER recording each message as ``[sender, *frames]`` in ``inbox``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inbox = Collector()
        super().__init__(*args, **kwargs)

    def gotMessage(self, senderId: bytes, *frames: bytes) -> None:
        self.inbox.add([senderId, *frames])


class RawDealer(ZmqDealerConnection):
    """A plain DEALER recording each message in ``inbox``; with ``answerHeartbeats`` it
    answers each MDP HEARTBEAT with one, as a worker that is alive would."""

    answerHeartbeats = False
    _heartbeat = [b"", b"MDPW01", b"\x04"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.inbox = Collector()
        super().__init__(*args, **kwargs)

    def gotMessage(self, *frames: bytes) -> None:
        if self.answerHeartbeats and list(frames) == self._heartbeat:
            self.send(self._heartbeat)
        self.inbox.add(list(frames))


class Parts:
    """Makes our Majordomo parts on the test's factory, with the tests' heartbeat timings,
    and shuts them all down after the test (timers included)."""

    def __init__(self, factory: ZmqFactory) -> None:
        self.factory = factory
        self._made: list[Any] = []

    def _keep(self, part: Any) -> Any:
        self._made.append(part)
        return part

    def broker(self, address: str = "tcp://127.0.0.1:*", **options: Any) -> MajordomoBroker:
        options.setdefault("heartbeatInterval", INTERVAL)
        options.setdefault("heartbeatLiveness", LIVENESS)
        endpoint = ZmqEndpoint(ZmqEndpointType.bind, address)
        return self._keep(MajordomoBroker(self.factory, endpoint, **options))

    def worker(
        self,
        address: str,
        service: bytes | str,
        handler: Callable[..., Any] = echo,
        **options: Any,
    ) -> MajordomoWorker:
        options.setdefault("heartbeatInterval", INTERVAL)
        options.setdefault("heartbeatLiveness", LIVENESS)
        options.setdefault("reconnectDelay", INTERVAL / 2)
        options.setdefault("maxReconnectDelay", INTERVAL * 4)
        endpoint = ZmqEndpoint(ZmqEndpointType.connect, address)
        return self._keep(MajordomoWorker(self.factory, endpoint, service, handler, **options))

    def client(self, address: str) -> MajordomoClient:
        return self._keep(MajordomoClient(self.factory, ZmqEndpoint("connect", address)))

    def router(self) -> RawRouter:
        return self._keep(RawRouter(self.factory, ZmqEndpoint("bind", "tcp://127.0.0.1:*")))

    def dealer(self, address: str, answerHeartbeats: bool = False) -> RawDealer:
        dealer = RawDealer(self.factory, ZmqEndpoint("connect", address))
        dealer.answerHeartbeats = answerHeartbeats
        return self._keep(dealer)

    def shutdown(self) -> None:
        for part in reversed(self._made):
            part.shutdown()


@pytest.fixture
def mdp(zmq_factory: ZmqFactory) -> Iterator[Parts]:
    parts = Parts(zmq_factory)
    yield parts
    parts.shutdown()
