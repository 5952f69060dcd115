"""
The broker's bounds on waiting requests, as an asynchronous client sending a burst meets
them: what is refused is counted and logged (rate-limited), never silently lost.
"""

from __future__ import annotations

import pytest
import pytest_twisted

from tests.mdp.conftest import INTERVAL, until
from tests.mdp.reference import MDPC01
from txzmq2._logging import RateLimitedLogger

pytestmark = pytest.mark.timeout(30)

BURST = 200
"""Requests one client sends at once."""


def refusals(logged: list[dict]) -> list[dict]:
    return [e for e in logged if "(maxQueuedRequests)" in (e.get("log_format") or "")]


@pytest_twisted.ensureDeferred
async def test_burst_beyond_maxQueuedRequests_is_counted_and_logged_at_a_bounded_rate(mdp, logged):
    broker = mdp.broker(maxQueuedRequests=10)
    client = mdp.dealer(broker.lastEndpoint)
    for number in range(BURST):
        client.send([b"", MDPC01, b"nobody", b"%d" % number])
    await until(lambda: broker.refusedRequests == BURST - 10)
    assert broker.queuedRequests == 10
    # Every refusal counted; the log says so a bounded number of times, then how many it
    # held back.
    assert 1 <= len(refusals(logged)) <= RateLimitedLogger.burst
    assert refusals(logged)[-1]["refused"] == len(refusals(logged))


@pytest_twisted.ensureDeferred
async def test_requests_dropped_after_requestExpiry_are_counted(mdp):
    broker = mdp.broker(requestExpiry=2 * INTERVAL)
    client = mdp.dealer(broker.lastEndpoint)
    for number in range(3):
        client.send([b"", MDPC01, b"nobody", b"%d" % number])
    await until(lambda: broker.expiredRequests == 3)
    assert (broker.queuedRequests, broker.refusedRequests) == (0, 0)
