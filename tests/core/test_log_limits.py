"""
Warnings a peer can provoke once per message are rate-limited per source and kind: a flood
of malformed messages logs a few of them, says that more are being held back, and later how
many were; the connection goes on serving.
"""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from tests.peers import blockingSocket, inThread
from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqREPConnection, _logging
from txzmq2._logging import RateLimitedLogger


class Source:
    """Something that logs (a stand-in for a connection)."""

    log = RateLimitedLogger(observer=lambda event: Source.events.append(event))
    events: list[dict[str, Any]] = []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(_logging, "monotonic", clock)
    return clock


@pytest.fixture(autouse=True)
def _freshEvents() -> Iterator[None]:
    Source.events.clear()
    yield
    Source.events.clear()


def texts() -> list[str]:
    return [formatEvent(event) for event in Source.events]


def test_a_source_logs_a_kind_of_warning_burst_times_then_says_it_holds_the_rest(clock):
    source = Source()
    for number in range(25):
        source.log.warn("bad message {number}", number=number)
    logged = texts()
    assert logged[:10] == [f"bad message {number}" for number in range(10)]
    assert len(logged) == 11
    assert "logged 10 times" in logged[10] and "bad message {number}" in logged[10]
    assert Source.events[10]["log_level"] == LogLevel.warn


def test_after_the_window_the_count_held_back_is_logged_then_logging_resumes(clock):
    source = Source()
    for number in range(25):
        source.log.warn("bad message {number}", number=number)
    clock.now += RateLimitedLogger.window
    source.log.warn("bad message {number}", number=25)
    logged = texts()[11:]
    assert len(logged) == 2
    assert logged[0].startswith(f"{source!r}: 15 more like this were not logged in the last 10 s")
    assert logged[1] == "bad message 25"


def test_within_the_window_nothing_more_is_logged_however_many_arrive(clock):
    source = Source()
    for _ in range(1000):
        source.log.error("bad message")
        clock.now += RateLimitedLogger.window / 2000
    assert len(Source.events) == 11


def test_each_source_and_each_kind_has_its_own_limit(clock):
    first, second = Source(), Source()
    for _ in range(20):
        first.log.warn("kind one")
        first.log.warn("kind two")
        second.log.warn("kind one")
    for text, source in (("kind one", first), ("kind two", first), ("kind one", second)):
        plain = [
            event
            for event in Source.events
            if event["log_source"] is source and formatEvent(event) == text
        ]
        assert len(plain) == 10


def test_a_limit_kind_splits_one_format_into_kinds_and_is_not_logged(clock):
    source = Source()
    for _ in range(20):
        source.log.warn("bridged: {text}", text="one", limitKind="template one")
        source.log.warn("bridged: {text}", text="two", limitKind="template two")
    logged = texts()
    assert logged.count("bridged: one") == logged.count("bridged: two") == 10
    assert not any("limitKind" in event for event in Source.events)


def test_debug_and_info_are_never_held_back(clock):
    source = Source()
    for _ in range(50):
        source.log.info("chatty")
        source.log.debug("chattier")
    assert len(Source.events) == 100


def test_failures_are_limited_like_warnings_and_keep_their_traceback(clock):
    source = Source()
    for _ in range(15):
        try:
            raise ValueError("handler bug")
        except ValueError:
            source.log.failure("handler failed")
    failures = [event for event in Source.events if "log_failure" in event]
    assert len(failures) == 10
    assert all(isinstance(event["log_failure"].value, ValueError) for event in failures)


def test_a_source_that_cannot_be_weakly_referenced_is_not_limited(clock):
    class Slotted:
        __slots__ = ()
        log = Source.log

    source = Slotted()
    for _ in range(20):
        source.log.warn("unlimited")
    assert len(Source.events) == 20


def test_counts_go_with_their_source(clock):
    source = Source()
    source.log.warn("once")
    assert source in Source.log._windows
    alive = weakref.ref(source)
    Source.events.clear()  # the event refers to its source too
    del source
    gc.collect()
    assert alive() is None  # the counts did not keep it alive


class Echo(ZmqREPConnection):
    def handleRequest(self, *parts: bytes) -> tuple[bytes, ...]:
        return parts


@pytest_twisted.ensureDeferred
async def test_flood_of_malformed_requests_logs_a_few_and_the_rep_still_answers(
    zmq_factory, zmq_address
):
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    address = zmq_address("inproc")

    def run() -> list[bytes]:
        socket = blockingSocket(zmq_factory.context, zmq.DEALER)
        try:
            socket.bind(address)
            for number in range(2000):
                socket.send_multipart([b"no delimiter %d" % number])
            socket.send_multipart([b"", b"good"])
            return socket.recv_multipart()
        finally:
            socket.close()

    try:
        done = inThread(run)
        server = Echo(zmq_factory, ZmqEndpoint(ZmqEndpointType.connect, address))
        try:
            assert await done == [b"", b"good"]
        finally:
            server.shutdown()
    finally:
        globalLogPublisher.removeObserver(events.append)
    ours = [event for event in events if event.get("log_source") is server]
    drops = [e for e in ours if "without an empty delimiter" in (e.get("log_format") or "")]
    assert len(drops) == RateLimitedLogger.burst
    held = [e for e in ours if "counted, not logged" in (e.get("log_format") or "")]
    assert len(held) == 1
