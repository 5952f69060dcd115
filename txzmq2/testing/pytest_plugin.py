"""
pytest fixtures for code that uses txzmq2 (needs pytest-twisted, which runs the reactor:
``pip install 'txzmq2[testing]'``).

- ``zmq_factory``: a :class:`~txzmq2.ZmqFactory` on the running reactor. After the test it
  shuts the factory down (closing every connection) and waits for the context to terminate,
  then fails the test if a request was still pending or a connection was still open: shut
  down what your test (or the code under test) opened, as trial asks you to close ports.
  The ini option ``zmq_allow_open_connections = true`` turns the open-connection check off.
- ``zmq_address``: an :class:`~txzmq2.testing.AddressFactory`; ``zmq_address("ipc")`` gives a
  fresh address on that transport.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from txzmq2.factory import ZmqFactory
from txzmq2.testing._addresses import AddressFactory
from txzmq2.testing._checks import leftovers

_ALLOW_OPEN = "zmq_allow_open_connections"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _ALLOW_OPEN,
        type="bool",
        default=False,
        help="txzmq2: let tests end with connections of zmq_factory still open",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        # A test that failed already left its connections open because it failed: saying
        # so as well would only bury the real failure.
        item.stash[_testFailed] = report.failed
    return report


_testFailed = pytest.StashKey[bool]()


@pytest.fixture
def zmq_factory(request: pytest.FixtureRequest) -> Iterator[ZmqFactory]:
    """A factory on the running reactor, shut down and checked after the test."""
    try:
        import pytest_twisted
    except ImportError:
        # Installing txzmq2 alone does not bring it: say what to install, not a traceback.
        pytest.fail(
            "txzmq2's zmq_factory fixture needs pytest-twisted (it runs the reactor): "
            "pip install 'txzmq2[testing]'",
            pytrace=False,
        )
    from twisted.internet import reactor

    factory = ZmqFactory(reactor)
    yield factory
    checkOpen = not (
        request.config.getini(_ALLOW_OPEN) or request.node.stash.get(_testFailed, False)
    )
    problems = leftovers(factory, openConnections=checkOpen)
    pytest_twisted.blockon(factory.shutdown())
    if problems:
        pytest.fail(problems)


@pytest.fixture
def zmq_address() -> Iterator[AddressFactory]:
    """Unique inproc, ipc and tcp-loopback addresses for one test."""
    addresses = AddressFactory()
    yield addresses
    addresses.cleanup()
