"""
Multi-host faults: a broker, two workers and a client, each in a network namespace of its
own on a private bridged network, with links cut mid-run and restored.

Every host is a program of :mod:`tests.faults.hosts`. The client runs numbered requests
(Lazy Pirate: a timeout per try, and retries) and reports how each one ended; the test cuts
and restores links and asserts on that report: every request's Deferred fires exactly once,
with a reply or a declared failure, and service resumes once the link is back.

A cut link does not end a TCP connection: what is sent meanwhile waits in the kernel and
goes through once the link is back (after TCP's retransmission backoff), so requests stall
until their timeout; a late reply to a request already answered or timed out is dropped.

Skipped where network namespaces cannot be made (not root, no iproute2).
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from tests.faults.hosts import OUTCOME_REPLY
from tests.faults.testbed import HostProcess, Hosts, Network

PORT_FRONTEND = 5555
PORT_BACKEND = 5556
RESUME_TIMEOUT = 20.0
"""Bound on service resuming after a link is restored (TCP backoff is a few seconds)."""


def wait(seconds: float) -> Any:
    """Let a fault last ``seconds`` (its duration is the scenario, not a synchronisation)."""
    from twisted.internet import reactor

    return deferLater(reactor, seconds, lambda: None)


async def startServing(hosts: Hosts, network: Network, *clientOptions: str) -> HostProcess:
    """Start the broker, both workers and then the client; return the client once it runs."""
    broker = network.addresses["broker"]
    hosts.start(
        "broker",
        *("--frontend", f"tcp://{broker}:{PORT_FRONTEND}"),
        *("--backend", f"tcp://{broker}:{PORT_BACKEND}"),
        prefix=network.prefix("broker"),
    )
    await hosts.started[-1].expect("ready")
    workers = [
        hosts.start(
            "worker",
            *("--name", name, "--connect", f"tcp://{broker}:{PORT_BACKEND}"),
            name=name,
            prefix=network.prefix(name),
        )
        for name in ("w1", "w2")
    ]
    for worker in workers:
        await worker.expect("ready")
    client = hosts.start(
        "client",
        *("--connect", f"tcp://{broker}:{PORT_FRONTEND}", *clientOptions),
        prefix=network.prefix("client"),
    )
    await client.expect("ready")
    return client


async def mark(client: HostProcess, name: str) -> float:
    """Have the client note the time as ``name``; return that time (the client's clock)."""
    client.command("mark", name)
    return float((await client.expect("mark"))["at"])


async def served(client: HostProcess, worker: str, count: int = 1) -> None:
    """Wait until ``count`` requests sent from now on were answered by ``worker`` (``any``)."""
    client.command("await", worker, count)
    await client.expect("served", RESUME_TIMEOUT)


async def summary(client: HostProcess) -> dict[str, Any]:
    client.command("stop")
    report: dict[str, Any] = (await client.expect("summary"))["summary"]
    assert await client.ended() == 0
    return report


def assertEveryRequestEndedOnce(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each request ended exactly once, in a declared way; nothing left pending."""
    requests: list[dict[str, Any]] = report["requests"]
    assert [request["n"] for request in requests] == list(range(len(requests)))
    assert [request["n"] for request in requests if request["fired"] != 1] == []
    outcomes = {request["outcome"] for request in requests}
    assert outcomes <= {OUTCOME_REPLY, "ZmqRequestTimeoutError"}
    assert report["pendingAtEnd"] == 0
    assert report["loggedFailures"] == 0
    return requests


@pytest.mark.timeout(45)
@pytest_twisted.ensureDeferred
async def test_worker_link_cut_and_restored_loses_no_request_and_the_worker_serves_again(
    hosts, network
):
    # One lane: the broker's DEALER alternates strictly between the two workers, so a try
    # that went to the cut-off worker is retried on the other one.
    timeout, retries = 0.25, 3
    client = await startServing(
        hosts, network, "--timeout", str(timeout), "--retries", str(retries), "--lanes", "1"
    )
    await served(client, "w1")
    await served(client, "w2")

    network.cut("w1")
    cut = await mark(client, "cut")
    await wait(1.0)
    restored = await mark(client, "restore")
    network.restore("w1")
    await served(client, "w1")

    requests = assertEveryRequestEndedOnce(await summary(client))
    assert {request["outcome"] for request in requests} == {OUTCOME_REPLY}
    duringCut = [
        request for request in requests if request["sent"] >= cut and request["ended"] < restored
    ]
    assert duringCut, "no request was sent and answered while w1 was cut off"
    assert {request["worker"] for request in duringCut} == {"w2"}
    # Tries that went to w1 waited out their timeout before a retry reached w2 ...
    assert any(request["ended"] - request["sent"] >= timeout for request in duringCut)
    # ... and w1 answered them once its link was back: those late replies were dropped.
    assert any(request["wire"] > 1 for request in duringCut)


@pytest.mark.timeout(45)
@pytest_twisted.ensureDeferred
async def test_client_link_cut_beyond_its_timeout_fails_requests_once_then_service_resumes(
    hosts, network
):
    timeout, retries = 0.3, 1
    lifetime = timeout * (retries + 1)  # from sending a request to its timeout failure
    client = await startServing(
        hosts,
        network,
        *("--timeout", str(timeout), "--retries", str(retries), "--lanes", "4", "--pace", "0.02"),
    )
    await served(client, "any", 10)

    network.cut("client")
    cut = await mark(client, "cut")
    await wait(lifetime + 1.0)
    restored = await mark(client, "restore")
    network.restore("client")
    await served(client, "any")
    resumed = await mark(client, "resumed")
    await served(client, "any", 20)

    requests = assertEveryRequestEndedOnce(await summary(client))
    lostInCut = [request for request in requests if cut <= request["sent"] <= restored - lifetime]
    assert lostInCut, "no request lived and died within the cut"
    assert {request["outcome"] for request in lostInCut} == {"ZmqRequestTimeoutError"}
    # Their failures came once their last try timed out, not before.
    assert all(request["ended"] - request["sent"] >= lifetime for request in lostInCut)
    # Late replies to them came once the link was back, and were dropped.
    assert any(request["wire"] > 0 for request in lostInCut)
    beforeCut = [request for request in requests if request["ended"] < cut]
    assert len(beforeCut) >= 10
    assert {request["outcome"] for request in beforeCut} == {OUTCOME_REPLY}
    afterResume = [request for request in requests if request["sent"] >= resumed]
    assert len(afterResume) >= 20
    assert {request["outcome"] for request in afterResume} == {OUTCOME_REPLY}
