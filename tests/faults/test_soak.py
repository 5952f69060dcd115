"""
Soak: ``python -m txzmq2.bench.soak`` with its CI-sized default (50,000 request-replies
through a ZmqProxy broker) leaves nothing behind: pending maps, timers, connections and
queued sends are back to their baseline, and memory and the object count stay flat.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.faults.testbed import ROOT, reactorName

MAX_RSS_GROWTH_KB = 4 * 1024
MAX_OBJECT_GROWTH = 1000


@pytest.mark.timeout(50)
def test_soak_through_a_broker_leaves_no_growth_behind():
    run = subprocess.run(
        [sys.executable, "-m", "txzmq2.bench.soak", "--json", "--reactor", reactorName()],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["passed"] and all(result["checks"].values())
    assert result["completed"] == result["count"] >= 50_000
    assert result["failed"] == 0
    start, end = result["start"], result["end"]
    for name in ("client_pending", "server_pending", "active_timers", "queued_sends"):
        assert start[name] == end[name] == 0, name
    assert start["connections"] == end["connections"] == 4  # frontend, backend, two peers
    assert end["rss_kb"] - start["rss_kb"] <= MAX_RSS_GROWTH_KB
    assert end["python_objects"] - start["python_objects"] <= MAX_OBJECT_GROWTH
