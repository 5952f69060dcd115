"""
Shutdown under load: the reactor stops while thousands of requests are in flight (most of
them still queued to a peer that never reads). Every pending Deferred fails with
``ZmqConnectionClosed``, exactly once, and the process exits within the factory's linger
period: closing with undeliverable messages must not wait for them.

The client is the ``flood`` program of :mod:`tests.faults.hosts` (its factory registered
for shutdown), run once for the module; the peer is a blocking pyzmq ROUTER here that
accepts the connection and never reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from time import monotonic
from typing import Any

import pytest
import zmq

from tests.faults.testbed import ROOT, reactorName

COUNT = 5000
MARGIN = 1.0
"""Seconds allowed beyond the linger period for the reactor's own shutdown and exit."""


@dataclass
class FloodRun:
    stopping: dict[str, Any]
    summary: dict[str, Any]
    exitSeconds: float
    """From ``reactor.stop()`` to the process's end (as seen here)."""
    exitCode: int
    stderr: str


@pytest.fixture(scope="module")
def flood() -> Iterator[FloodRun]:
    context = zmq.Context()
    peer = context.socket(zmq.ROUTER)
    # A small queue that nobody reads: the client's sends back up into its own queues.
    peer.set(zmq.RCVHWM, 100)
    peer.set(zmq.LINGER, 0)
    peer.bind("tcp://127.0.0.1:*")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.faults.hosts", "flood"),
            *("--reactor", reactorName(), "--count", str(COUNT)),
            *("--connect", peer.get_string(zmq.LAST_ENDPOINT)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        output, stderr = process.communicate(timeout=15)
        # Both clocks are the system's CLOCK_MONOTONIC.
        exitSeconds = monotonic()
        lines = [json.loads(line) for line in output.splitlines()]
        assert len(lines) == 2, (output, stderr)
        stopping, summary = lines[0]["stopping"], lines[1]["summary"]
        exitSeconds -= stopping["at"]
        yield FloodRun(stopping, summary, exitSeconds, process.returncode, stderr)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        peer.close()
        context.term()


@pytest.mark.timeout(30)
def test_reactor_stop_fails_every_request_in_flight_with_connection_closed(flood):
    assert flood.exitCode == 0, flood.stderr
    assert flood.stopping["pending"] == COUNT
    assert flood.stopping["queued"] > 0  # still waiting to be sent
    assert flood.summary["outcomes"] == {"ZmqConnectionClosed": COUNT}
    assert flood.summary["unfired"] == 0
    assert flood.summary["firedMoreThanOnce"] == 0
    assert flood.summary["loggedFailures"] == 0


@pytest.mark.timeout(30)
def test_reactor_stop_leaves_no_request_timer_active(flood):
    assert flood.exitCode == 0, flood.stderr
    assert flood.summary["timersLeft"] == []


@pytest.mark.timeout(30)
def test_reactor_stop_under_load_exits_within_the_linger_period(flood):
    assert flood.exitCode == 0, flood.stderr
    linger = flood.stopping["lingerMs"] / 1000
    # reactor.stop() to the end of the reactor's shutdown, inside the process ...
    assert flood.summary["stopSeconds"] < linger + MARGIN / 2
    # ... and to the end of the process, seen from here.
    assert flood.exitSeconds < linger + MARGIN
