"""Fixtures of the fault tests: host processes, and a private network to put them in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytest_twisted

from tests.faults.testbed import Hosts, Network, NetworkUnavailable


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Host programs for one test, all killed (and reaped) at teardown."""
    started = Hosts()
    try:
        yield started
    finally:
        pytest_twisted.blockon(started.killAll())


@pytest.fixture
def network(hosts: Hosts) -> Iterator[Network]:
    """
    A network of four hosts (``broker``, ``w1``, ``w2``, ``client``), removed at teardown
    once the hosts running in it are killed. Skips the test where namespaces cannot be made.
    """
    made = Network(["broker", "w1", "w2", "client"])
    try:
        made.create()
    except NetworkUnavailable as reason:
        pytest.skip(str(reason))
    try:
        yield made
    finally:
        # A namespace lives on while a process is in it: kill the hosts first.
        pytest_twisted.blockon(hosts.killAll())
        made.destroy()
