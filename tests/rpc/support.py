"""
What the RPC tests share: a service to call, a raw DEALER peer that speaks the wire format
by hand, and small waiting helpers. Nothing here sleeps: every wait is on a Deferred.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import deferLater

from txzmq2 import ZmqDealerConnection
from txzmq2.rpc import expose

CALL = b"txzmq2-rpc/1 call msgpack"
NOTIFY = b"txzmq2-rpc/1 notify msgpack"
REPLY = b"txzmq2-rpc/1 reply msgpack"
ERROR = b"txzmq2-rpc/1 error msgpack"


class Boom(Exception):
    """Raised by service methods under test."""


def reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class Calculator:
    """
    The service most tests call. ``hold`` parks a call until the test releases it, which is
    how tests keep calls running without timing anything.
    """

    def __init__(self) -> None:
        self.held: list[Deferred[Any]] = []
        self.running = 0
        """Calls to ``hold`` not released yet."""
        self.peakHeld = 0
        self.recorded: list[Any] = []
        self._heldWaiters: list[tuple[int, Deferred[None]]] = []
        self._recordWaiters: list[tuple[int, Deferred[None]]] = []

    @expose
    def add(self, a: Any, b: Any) -> Any:
        return a + b

    @expose
    def greet(self, name: str, greeting: str = "hello", *, punctuation: str = "!") -> str:
        return f"{greeting} {name}{punctuation}"

    @expose
    def echo(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [list(args), kwargs]

    @expose
    def fail(self, message: str) -> None:
        raise Boom(message)

    @expose
    def failLater(self, message: str) -> Deferred[None]:
        def raiseBoom() -> None:
            raise Boom(message)

        return deferLater(reactor(), 0, raiseBoom)

    @expose
    async def failAsync(self, message: str) -> None:
        await deferLater(reactor(), 0)
        raise Boom(message)

    @expose
    def doubleLater(self, x: Any) -> Deferred[Any]:
        return deferLater(reactor(), 0, lambda: 2 * x)

    @expose
    async def slowDouble(self, x: Any) -> Any:
        await self.hold()
        return 2 * x

    @expose
    async def doubleAsync(self, x: Any) -> Any:
        await deferLater(reactor(), 0)
        return 2 * x

    @expose
    def alreadyDone(self, x: Any) -> Deferred[Any]:
        return succeed(x)

    @expose
    def hold(self) -> Deferred[Any]:
        """Answered when the test calls :meth:`release`."""
        held: Deferred[Any] = Deferred()
        self.held.append(held)
        self.running += 1
        self.peakHeld = max(self.peakHeld, self.running)
        self._fire(self._heldWaiters, len(self.held))
        held.addBoth(self._released)
        return held

    @expose
    def unencodable(self) -> object:
        return object()

    @expose
    def record(self, value: Any) -> None:
        self.recorded.append(value)
        self._fire(self._recordWaiters, len(self.recorded))

    @expose
    def recordThenFail(self, value: Any) -> None:
        self.record(value)
        raise Boom("recorded, then failed")

    def hidden(self) -> str:
        return "not exposed"

    # -- for the tests -----------------------------------------------------------------------

    def _released(self, result: Any) -> Any:
        self.running -= 1
        return result

    def heldCalls(self, count: int) -> Deferred[None]:
        """Fires once ``count`` calls to ``hold`` have arrived in all."""
        return self._wait(self._heldWaiters, count, len(self.held))

    def recordedValues(self, count: int) -> Deferred[None]:
        """Fires once ``count`` values have been recorded."""
        return self._wait(self._recordWaiters, count, len(self.recorded))

    def release(self, value: Any = "released") -> None:
        """Answer the oldest held call still waiting."""
        for held in self.held:
            if not held.called:
                held.callback(value)
                return
        raise AssertionError("no held call to release")

    def releaseAll(self) -> None:
        for held in self.held:
            if not held.called:
                held.callback("released")

    def _wait(
        self, waiters: list[tuple[int, Deferred[None]]], count: int, now: int
    ) -> Deferred[None]:
        if now >= count:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        waiters.append((count, waiter))
        return waiter

    @staticmethod
    def _fire(waiters: list[tuple[int, Deferred[None]]], now: int) -> None:
        for entry in list(waiters):
            if now >= entry[0]:
                waiters.remove(entry)
                # On the next turn: the test must go on once the server is done with the
                # call, not from inside the method the server is still running.
                reactor().callLater(0, entry[1].callback, None)


class RawPeer(ZmqDealerConnection):
    """
    A DEALER that speaks the wire format by hand: it sends any frames the test gives, and
    hands over every message it receives, in order.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.received: list[list[bytes]] = []
        self._waiters: list[Deferred[list[bytes]]] = []
        super().__init__(*args, **kwargs)

    def gotMessage(self, *frames: bytes) -> None:
        if self._waiters:
            self._waiters.pop(0).callback(list(frames))
        else:
            self.received.append(list(frames))

    def nextMessage(self) -> Deferred[list[bytes]]:
        """The next message received (one already waiting, or the next to arrive)."""
        if self.received:
            return succeed(self.received.pop(0))
        waiter: Deferred[list[bytes]] = Deferred()
        self._waiters.append(waiter)
        return waiter.addTimeout(5.0, reactor())

    def call(self, method: str, *args: Any, requestId: bytes = b"", **kwargs: Any) -> None:
        """Send a well-formed call (``requestId`` goes before the delimiter, if given)."""
        envelope = [requestId, b""] if requestId else [b""]
        self.sendMultipart([*envelope, CALL, msgpack.packb([method, list(args), kwargs])])


def decodeError(frames: list[bytes]) -> dict[str, Any]:
    """The body of an error reply received by a raw peer (``[b"", header, payload]``)."""
    assert frames[:2] == [b"", ERROR], frames
    body: dict[str, Any] = msgpack.unpackb(frames[2])
    return body


async def fails(deferred: Deferred[Any], errorType: type[BaseException]) -> BaseException:
    """Await ``deferred``, which must fail with ``errorType``; return the error."""
    with pytest.raises(errorType) as caught:
        await deferred
    return caught.value


def eventsFrom(events: list[dict[str, Any]], source: object) -> list[dict[str, Any]]:
    """The log events emitted by ``source`` (a connection)."""
    return [event for event in events if event.get("log_source") is source]


def failuresIn(events: list[dict[str, Any]]) -> list[Any]:
    """The Failures logged among ``events``."""
    return [event["log_failure"] for event in events if "log_failure" in event]
