"""
Suite-wide set-up: reactor choice, leak checks, and the reference-peer helpers.

The reactor is pytest-twisted's ``--reactor`` (``default``, which is epoll on Linux, or
``asyncio``); ``--reactor-impl=poll|select`` swaps the default reactor for Twisted's poll or
select reactor, so the core tests can run on each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted
import zmq
from twisted.internet.defer import Deferred

_REACTORS = {
    "poll": ("twisted.internet.pollreactor", "PollReactor"),
    "select": ("twisted.internet.selectreactor", "SelectReactor"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reactor-impl",
        choices=sorted(_REACTORS),
        default=None,
        help="run on Twisted's poll or select reactor instead of the default one",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    choice = config.getoption("--reactor-impl")
    if choice is None:
        return
    import importlib

    import pytest_twisted

    moduleName, className = _REACTORS[choice]

    def install() -> None:
        module = importlib.import_module(moduleName)
        pytest_twisted._install_reactor(
            reactor_installer=module.install, reactor_type=getattr(module, className)
        )

    pytest_twisted.reactor_installers["default"] = install


def pytest_report_header(config: pytest.Config) -> str:
    from twisted.internet import reactor

    return f"twisted reactor: {type(reactor).__module__}.{type(reactor).__name__}"


@pytest.fixture(scope="session", autouse=True)
def _pyzmqGarbageCollector() -> None:
    """
    pyzmq sends frames of 64 KiB or more without copying them, and the first such send
    starts a thread that lives as long as the process (its "garbage collector"). Started
    before any test, it is not taken for a thread some test left behind.
    """
    from zmq.utils.garbage import gc

    if not gc.is_alive():
        gc.start()


@pytest.fixture(autouse=True)
def _noLeaks() -> Iterator[None]:
    """Every test leaves no delayed call and no thread behind."""
    from twisted.internet import reactor

    threadsBefore = set(threading.enumerate())
    yield
    leftovers = [call for call in reactor.getDelayedCalls() if call.active()]
    for call in leftovers:
        call.cancel()
    threads = [t for t in threading.enumerate() if t not in threadsBefore and t.is_alive()]
    assert not leftovers, f"test left delayed calls: {leftovers}"
    assert not threads, f"test left threads running: {threads}"


@pytest.fixture
def logged() -> Iterator[list[dict]]:
    """Every twisted.logger event emitted during the test."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


@pytest.fixture
def loggedFailures() -> Iterator[list[dict]]:
    """Every ``log_failure`` event logged through twisted.logger during the test."""
    from twisted.logger import globalLogPublisher

    failures: list[dict] = []

    def observe(event: dict) -> None:
        if "log_failure" in event:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    yield failures
    globalLogPublisher.removeObserver(observe)


@pytest.fixture
def everyWarningLogged(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Lift the limit on repeated warnings (``RateLimitedLogger``, tested on its own in
    ``tests/core/test_log_limits.py``), for tests that check every drop is logged.
    """
    from txzmq2._logging import RateLimitedLogger

    monkeypatch.setattr(RateLimitedLogger, "burst", 1_000_000_000)


@pytest.fixture
def peerContext() -> Iterator[zmq.Context[Any]]:
    """A context of its own for the reference peers, as a separate program would have."""
    context: zmq.Context[Any] = zmq.Context()
    yield context
    context.term()


@pytest.fixture
def runPeer(peerContext: zmq.Context[Any]) -> Iterator[Callable[[Any], Deferred[Any]]]:
    """``runPeer(peer)`` runs ``peer.run()`` in a thread and returns the Deferred of its
    result; after the test every peer still running is stopped and waited for (before
    ``peerContext`` is terminated, which waits for their sockets)."""
    from tests.peers import inThread

    running: list[tuple[Any, Deferred[Any]]] = []

    def run(peer: Any) -> Deferred[Any]:
        done = inThread(peer.run)
        running.append((peer, done))
        return done

    yield run
    for peer, _ in running:
        peer.stop()
    for _, done in running:
        done.addErrback(lambda _: None)  # the test has seen (or not cared for) its outcome
        pytest_twisted.blockon(done)


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    """Hostile peers in processes of their own (``tests.peers.ScriptProcess``) that the
    test appends: each is killed after the test."""
    started: list[Any] = []
    yield started
    for process in started:
        process.kill()
