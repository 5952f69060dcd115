"""
``txzmq2.ha`` across hosts: every node, server, worker and client a program of
:mod:`tests.faults.hahosts` in a network namespace of its own on a private bridged network,
killed with SIGKILL, restarted, and cut off from its peer.

- Binary Star: the active primary killed under load fails over to the backup once the
  clients vote; the restarted primary comes back passive; a cut between the two servers
  alone never makes a second active.
- Freelance: three servers, two killed one after the other under load.
- Titanic: the service and the worker killed and restarted between submit and reply.

Every request's Deferred fires exactly once. Skipped where network namespaces cannot be
made (not root, no iproute2).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import pytest_twisted

from tests.faults.hosts import OUTCOME_REPLY
from tests.faults.test_network import (
    RESUME_TIMEOUT,
    assertEveryRequestEndedOnce,
    mark,
    served,
    summary,
    wait,
)
from tests.faults.testbed import HostProcess, Hosts, Network, NetworkUnavailable

pytestmark = pytest.mark.timeout(60)

HA_HOSTS = "tests.faults.hahosts"
PORT_STATE = 5560
PORT_FRONTEND = 5561
PORT_BROKER = 5570
HEARTBEAT = 1.0
"""Binary Star heartbeat: the default."""
TIMEOUT = 0.2
"""Seconds per try of the Freelance clients."""


@pytest.fixture
def makeNetwork(hosts: Hosts) -> Iterator[Callable[[list[str]], Network]]:
    """``makeNetwork(names)``: a network of those hosts, removed after the test."""
    made: list[Network] = []

    def make(names: list[str]) -> Network:
        network = Network(names)
        try:
            network.create()
        except NetworkUnavailable as reason:
            pytest.skip(str(reason))
        made.append(network)
        return network

    try:
        yield make
    finally:
        # A namespace lives on while a process is in it: kill the hosts first.
        pytest_twisted.blockon(hosts.killAll())
        for network in made:
            network.destroy()


def start(hosts: Hosts, network: Network, role: str, host: str, *arguments: str) -> HostProcess:
    return hosts.start(role, *arguments, name=host, prefix=network.prefix(host), module=HA_HOSTS)


def tcp(network: Network, host: str, port: int) -> str:
    return f"tcp://{network.addresses[host]}:{port}"


# -- Binary Star -------------------------------------------------------------------------------


def startNode(hosts: Hosts, network: Network, primary: bool) -> HostProcess:
    name, peer = ("primary", "backup") if primary else ("backup", "primary")
    return start(
        hosts,
        network,
        "bstar",
        name,
        *("--name", name, *(["--primary"] if primary else [])),
        *("--local", tcp(network, name, PORT_STATE)),
        *("--remote", tcp(network, peer, PORT_STATE)),
        *("--frontend", tcp(network, name, PORT_FRONTEND)),
        *("--heartbeat", str(HEARTBEAT)),
    )


async def servedBy(client: HostProcess, count: int) -> str:
    """Wait until ``count`` requests sent from now on were answered; the last one's server."""
    client.command("await", "any", count)
    return str((await client.expect("served", RESUME_TIMEOUT))["by"])


async def nextState(node: HostProcess, timeout: float = RESUME_TIMEOUT) -> tuple[str, float]:
    line = await node.expect("state", timeout)
    return line["state"], line["at"]


async def startPair(
    hosts: Hosts, network: Network
) -> tuple[HostProcess, HostProcess, HostProcess]:
    """Both nodes (primary active, backup passive) and a client served by the primary."""
    primary, backup = startNode(hosts, network, True), startNode(hosts, network, False)
    for node in (primary, backup):
        await node.expect("ready")
    assert (await nextState(primary))[0] == "active"
    assert (await nextState(backup))[0] == "passive"
    client = start(
        hosts,
        network,
        "flclient",
        "client",
        *("--connect", tcp(network, "primary", PORT_FRONTEND)),
        *("--connect", tcp(network, "backup", PORT_FRONTEND)),
        *("--timeout", str(TIMEOUT), "--retries", "40", "--lanes", "2", "--pace", "0.02"),
    )
    await client.expect("ready")
    await served(client, "primary", 10)
    return primary, backup, client


@pytest_twisted.ensureDeferred
async def test_binary_star_fails_over_on_client_votes_and_the_primary_comes_back_passive(
    hosts, makeNetwork
):
    network = makeNetwork(["primary", "backup", "client"])
    primary, backup, client = await startPair(hosts, network)

    killed = await mark(client, "kill")
    await primary.kill()
    state, activeAt = await nextState(backup)
    assert state == "active"
    await served(client, "backup", 10)

    restarted = startNode(hosts, network, True)
    await restarted.expect("ready")
    assert (await nextState(restarted))[0] == "passive"
    await served(client, "backup", 10)

    requests = assertEveryRequestEndedOnce(await summary(client))
    assert {request["outcome"] for request in requests} == {OUTCOME_REPLY}
    # The tries that went to the dead primary timed out and were retried on the backup:
    # the first of those retries is the first vote the backup can have had.
    retried = [r for r in requests if r["ended"] > killed and r["ended"] - r["sent"] > TIMEOUT]
    firstRetry = min(r["sent"] + TIMEOUT for r in retried)
    assert firstRetry - 0.05 <= activeAt <= firstRetry + 3 * HEARTBEAT
    assert {r["worker"] for r in requests if r["sent"] > activeAt} == {"backup"}
    # Neither node went anywhere else meanwhile.
    assert backup.takeLines() == [] and restarted.takeLines() == []


@pytest_twisted.ensureDeferred
async def test_binary_star_cut_between_the_servers_alone_never_makes_a_second_active(
    hosts, makeNetwork
):
    network = makeNetwork(["primary", "backup", "client"])
    primary, backup, client = await startPair(hosts, network)

    network.separate("primary", "backup")
    cut = await mark(client, "cut")
    await wait(4 * HEARTBEAT)  # the backup's peer has been silent for twice the limit...
    await served(client, "primary", 10)  # ...while the clients go on with the primary
    network.join("primary", "backup")
    await wait(2 * HEARTBEAT)

    requests = assertEveryRequestEndedOnce(await summary(client))
    assert {request["outcome"] for request in requests} == {OUTCOME_REPLY}
    assert {r["worker"] for r in requests} == {"primary"}
    assert [r for r in requests if r["sent"] >= cut]
    # The states said so: no transition at all after the start (active, passive).
    assert primary.takeLines() == [] and backup.takeLines() == []


# -- Freelance ---------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_freelance_client_survives_two_of_three_servers_killed_under_load(
    hosts, makeNetwork
):
    names = ["s1", "s2", "s3"]
    network = makeNetwork([*names, "client"])
    servers = {
        name: start(
            hosts, network, "flserver", name, "--name", name, "--bind", tcp(network, name, 5555)
        )
        for name in names
    }
    for server in servers.values():
        await server.expect("ready")
    client = start(
        hosts,
        network,
        "flclient",
        "client",
        *(argument for name in names for argument in ("--connect", tcp(network, name, 5555))),
        *("--timeout", str(TIMEOUT), "--retries", "10", "--lanes", "4", "--pace", "0.01"),
    )
    await client.expect("ready")
    # The client keeps to whichever server answered last, and which one answers first
    # depends on the machine's load: kill the one serving, twice, whichever it is.
    for _ in range(2):
        serving = await servedBy(client, 20)
        await servers[serving].kill()
    await served(client, "any", 20)

    requests = assertEveryRequestEndedOnce(await summary(client))
    assert {request["outcome"] for request in requests} == {OUTCOME_REPLY}
    assert {request["worker"] for request in requests} == set(names)


# -- Titanic -----------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_titanic_delivers_replies_across_kills_of_the_service_and_the_worker(
    hosts, makeNetwork, tmp_path
):
    network = makeNetwork(["broker", "titanic", "worker", "client"])
    broker = tcp(network, "broker", PORT_BROKER)
    database = str(tmp_path / "titanic.db")
    start(hosts, network, "mdbroker", "broker", "--bind", broker)
    await hosts.started[-1].expect("ready")

    def titanic() -> HostProcess:
        arguments = ("--broker", broker, "--database", database)
        return start(hosts, network, "titanic", "titanic", *arguments)

    def worker(name: str, holdMs: int) -> HostProcess:
        return start(
            hosts, network, "mdworker", "worker", "--name", name, "--broker", broker,
            "--hold-ms", str(holdMs),
        )  # fmt: skip

    service = titanic()
    await service.expect("ready")
    slow = worker("w1", 60_000)  # takes the first request and holds it until killed
    client = start(hosts, network, "ticlient", "client", "--broker", broker)
    await client.expect("ready")
    client.command("submit", 10)
    ids: list[str] = (await client.expect("submitted"))["submitted"]
    assert len(set(ids)) == 10
    await slow.expect("handling")

    await service.kill()
    await slow.kill()
    service = titanic()
    await service.expect("ready")
    worker("w2", 0)

    client.command("collect")
    collected: dict[str, Any] = (await client.expect("collected", 30))["collected"]
    assert collected == {requestId: ["w2", str(n)] for n, requestId in enumerate(ids)}
    client.command("close")
    closed = (await client.expect("closed"))["closed"]
    assert closed == {requestId: "ZmqUnknownRequestError" for requestId in ids}
    client.command("stop")
    report = (await client.expect("summary"))["summary"]
    assert await client.ended() == 0
    assert report["calls"] > 30
    assert (report["unfired"], report["firedMoreThanOnce"], report["loggedFailures"]) == (0, 0, 0)
