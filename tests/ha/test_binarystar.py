"""
Binary Star in one process, over ipc: the state machine of each node as its peer and the
clients see it. (Failover across hosts, with SIGKILL and cut links: tests/faults/test_ha.py.)
"""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError

from tests.ha.conftest import HEARTBEAT, Echo, lasting, until
from txzmq2 import (
    ZmqConnectionClosed,
    ZmqEndpoint,
    ZmqREQConnection,
    ZmqRequestTimeoutError,
    ZmqStateError,
)
from txzmq2.ha import BinaryStar, BinaryStarState, FreelanceClient, FreelanceServer

pytestmark = pytest.mark.timeout(30)

TRY = 4 * HEARTBEAT
"""Timeout of one request try: a few heartbeats."""


def client(pair, primary: bool) -> ZmqREQConnection:
    return pair.keep(
        ZmqREQConnection(pair.factory, ZmqEndpoint("connect", pair.serverAddresses[primary]))
    )


async def runningPair(pair) -> tuple[BinaryStar, BinaryStar]:
    primary, backup = pair.node(True), pair.node(False)
    await primary.whenActive()
    await until(lambda: backup.state == "passive")
    return primary, backup


def test_state_names_are_the_four_of_the_guide():
    assert [state.value for state in BinaryStarState] == [
        "primary",
        "backup",
        "active",
        "passive",
    ]
    assert BinaryStarState.active == "active"


@pytest_twisted.ensureDeferred
async def test_nodes_start_as_primary_and_backup(pair):
    assert pair.node(True).state == "primary"
    assert pair.node(False).state == "backup"


@pytest_twisted.ensureDeferred
async def test_started_together_the_primary_is_active_and_the_backup_passive(pair):
    primary, backup = await runningPair(pair)
    assert (primary.state, backup.state) == ("active", "passive")
    assert await client(pair, True).sendMsg(b"hi", timeout=1) == [b"primary", b"hi"]


@pytest_twisted.ensureDeferred
async def test_started_backup_first_the_primary_still_becomes_active(pair):
    backup = pair.node(False)
    await lasting(3 * HEARTBEAT)
    assert backup.state == "backup"
    primary = pair.node(True)
    await primary.whenActive()
    await until(lambda: backup.state == "passive")


@pytest_twisted.ensureDeferred
async def test_passive_node_drops_requests_while_its_active_peer_is_heard(pair):
    _primary, backup = await runningPair(pair)
    with pytest.raises(ZmqRequestTimeoutError):
        await client(pair, False).sendMsg(b"hi", timeout=TRY, retries=2)
    assert backup.state == "passive"


@pytest_twisted.ensureDeferred
async def test_passive_stays_passive_without_client_requests_when_the_active_dies(pair):
    primary, backup = await runningPair(pair)
    primary.shutdown()
    await lasting(5 * HEARTBEAT)
    assert backup.state == "passive"


@pytest_twisted.ensureDeferred
async def test_passive_takes_over_on_a_client_request_once_its_peer_is_silent(pair):
    primary, backup = await runningPair(pair)
    primary.shutdown()
    # Retried every try until the two heartbeats of silence are over: then the vote wins.
    answer = client(pair, False).sendMsg(b"hi", timeout=TRY, retries=5)
    assert await answer == [b"backup", b"hi"]
    assert backup.state == "active"


@pytest_twisted.ensureDeferred
async def test_restarted_primary_comes_back_passive(pair):
    primary, backup = await runningPair(pair)
    primary.shutdown()
    await client(pair, False).sendMsg(b"vote", timeout=TRY, retries=5)
    assert backup.state == "active"
    restarted = pair.node(True, serve=False)
    await until(lambda: restarted.state == "passive")
    assert backup.state == "active"


@pytest_twisted.ensureDeferred
async def test_restarted_primary_does_not_serve_before_it_has_heard_the_active_backup(
    pair, zmq_address
):
    primary, _backup = await runningPair(pair)
    primary.shutdown()
    await client(pair, False).sendMsg(b"vote", timeout=TRY, retries=5)
    restarted = pair.node(True, serve=False)
    server = pair.keep(Echo(pair.factory, ZmqEndpoint("bind", zmq_address("ipc"))))
    restarted.serve(server)
    direct = pair.keep(ZmqREQConnection(pair.factory, ZmqEndpoint("connect", server.lastEndpoint)))
    # At once, before it can have heard anything: starting, it gives the backup two
    # heartbeats to speak up; then it hears it active and stands by.
    with pytest.raises(ZmqRequestTimeoutError):
        await direct.sendMsg(b"too early", timeout=TRY)
    await until(lambda: restarted.state == "passive")


@pytest_twisted.ensureDeferred
async def test_a_backup_that_never_heard_its_primary_never_serves(pair):
    backup = pair.node(False)
    with pytest.raises(ZmqRequestTimeoutError):
        await client(pair, False).sendMsg(b"hi", timeout=TRY, retries=3)
    assert backup.state == "backup"


@pytest_twisted.ensureDeferred
async def test_a_primary_alone_serves_once_two_heartbeats_have_passed(pair):
    primary = pair.node(True)
    answer = await client(pair, True).sendMsg(b"hi", timeout=TRY, retries=5)
    assert answer == [b"primary", b"hi"]
    assert primary.state == "active"


@pytest_twisted.ensureDeferred
async def test_callbacks_run_on_each_transition_into_their_state(pair):
    transitions: list[str] = []
    primary = pair.node(True)
    primary.onActive = lambda: transitions.append("primary active")
    backup = pair.node(False)
    backup.onActive = lambda: transitions.append("backup active")
    backup.onPassive = lambda: transitions.append("backup passive")
    await until(lambda: backup.state == "passive")
    primary.shutdown()
    await client(pair, False).sendMsg(b"vote", timeout=TRY, retries=5)
    assert transitions == ["primary active", "backup passive", "backup active"]


@pytest_twisted.ensureDeferred
async def test_a_failing_callback_is_logged_and_the_transition_happens(pair, loggedFailures):
    primary = pair.node(True)
    primary.onActive = lambda: 1 / 0
    pair.node(False)
    await primary.whenActive()
    assert primary.state == "active"
    assert len(loggedFailures) == 1


@pytest_twisted.ensureDeferred
async def test_when_active_fires_once_at_once_for_an_active_node(pair):
    primary, _ = await runningPair(pair)
    fired: list[object] = []
    primary.whenActive().addBoth(fired.append)
    assert fired == [None]


@pytest_twisted.ensureDeferred
async def test_when_active_fails_when_the_node_shuts_down_first(pair):
    backup = pair.node(False)
    waiting = backup.whenActive()
    backup.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        await waiting


@pytest_twisted.ensureDeferred
async def test_when_active_can_be_cancelled(pair):
    backup = pair.node(False)
    waiting = backup.whenActive()
    waiting.cancel()
    with pytest.raises(CancelledError):
        await waiting
    backup.shutdown()  # nothing left to fail


@pytest_twisted.ensureDeferred
async def test_shutdown_stops_heartbeats_and_closes_state_sockets(pair):
    from twisted.internet import reactor

    node = pair.node(True, serve=False)
    node.shutdown()
    node.shutdown()
    assert not [call for call in reactor.getDelayedCalls() if "_publish" in repr(call)]
    assert node._publisher.closed and node._subscriber.closed


@pytest_twisted.ensureDeferred
async def test_a_connection_is_served_by_one_node_only(pair):
    primary = pair.node(True)
    server = pair.keep(FreelanceServer(pair.factory, "tcp://127.0.0.1:*", lambda *f: f))
    primary.serve(server)
    with pytest.raises(ZmqStateError):
        primary.serve(server)
    with pytest.raises(TypeError):
        primary.serve(object())


@pytest_twisted.ensureDeferred
async def test_freelance_pings_reach_a_passive_node_but_are_no_votes(pair, zmq_address):
    primary, backup = await runningPair(pair)
    server = pair.keep(FreelanceServer(pair.factory, zmq_address("ipc"), lambda *f: [b"ok"]))
    backup.serve(server)
    primary.shutdown()
    freelance = pair.keep(
        FreelanceClient(pair.factory, [server.lastEndpoint], timeout=TRY, pingInterval=HEARTBEAT)
    )
    # Pinged for longer than the peer's silence: alive, yet the node stays passive...
    await until(lambda: freelance.aliveServers == [server.lastEndpoint])
    await lasting(3 * HEARTBEAT)
    assert backup.state == "passive"
    # ...until a request votes.
    assert await freelance.request(b"x", retries=5) == [b"ok"]
    assert backup.state == "active"


@pytest_twisted.ensureDeferred
async def test_a_freelance_client_fails_over_to_the_backup_and_sticks_to_it(pair, zmq_address):
    primaryNode, backupNode = pair.node(True, serve=False), pair.node(False, serve=False)
    servers = {}
    for node, name in ((primaryNode, b"primary"), (backupNode, b"backup")):
        servers[name] = pair.keep(
            FreelanceServer(pair.factory, zmq_address("ipc"), lambda *f, name=name: [name, *f])
        )
        node.serve(servers[name])
    await primaryNode.whenActive()
    await until(lambda: backupNode.state == "passive")
    freelance = pair.keep(
        FreelanceClient(
            pair.factory,
            [servers[b"primary"].lastEndpoint, servers[b"backup"].lastEndpoint],
            timeout=TRY,
            retries=10,
            pingInterval=HEARTBEAT,
        )
    )
    assert (await freelance.request(b"1"))[0] == b"primary"
    primaryNode.shutdown()
    servers[b"primary"].shutdown()
    assert (await freelance.request(b"2"))[0] == b"backup"
    # The primary comes back (passive): the client stays with the server that answers.
    pair.keep(
        BinaryStar(
            pair.factory, True, pair.stateAddresses[True], pair.stateAddresses[False], HEARTBEAT
        )
    )
    for number in range(3, 6):
        assert (await freelance.request(b"%d" % number, retries=0))[0] == b"backup"


@pytest_twisted.ensureDeferred
async def test_when_active_after_shutdown_fails_at_once(pair):
    primary, _backup = await runningPair(pair)
    primary.shutdown()
    with pytest.raises(ZmqConnectionClosed):
        await primary.whenActive()


@pytest_twisted.ensureDeferred
async def test_a_majordomo_broker_serves_clients_only_while_active_and_workers_always(
    pair, zmq_address
):
    from txzmq2.mdp import MajordomoBroker, MajordomoClient, MajordomoWorker

    primary, backup = await runningPair(pair)
    address = zmq_address("ipc")
    broker = pair.keep(MajordomoBroker(pair.factory, ZmqEndpoint("bind", address)))
    backup.serve(broker)
    # A worker registers with the passive node's broker: its commands are no votes.
    pair.keep(MajordomoWorker(pair.factory, ZmqEndpoint("connect", address), "echo", echo))
    await until(lambda: broker.services == {b"echo": 1})
    assert backup.state == "passive"
    client = pair.keep(MajordomoClient(pair.factory, ZmqEndpoint("connect", address)))
    with pytest.raises(ZmqRequestTimeoutError):
        await client.request("echo", b"dropped", timeout=TRY)
    primary.shutdown()
    assert await client.request("echo", b"vote", timeout=TRY, retries=5) == [b"vote"]
    assert backup.state == "active"


def echo(*frames: bytes) -> list[bytes]:
    return list(frames)


@pytest_twisted.ensureDeferred
async def test_a_node_shut_down_drops_the_requests_of_what_it_served(pair):
    primary, _backup = await runningPair(pair)
    primary.shutdown()
    with pytest.raises(ZmqRequestTimeoutError):
        await client(pair, True).sendMsg(b"hi", timeout=TRY)


@pytest_twisted.ensureDeferred
async def test_a_state_message_that_is_no_state_is_logged_and_changes_nothing(pair, logged):
    from txzmq2 import ZmqPubConnection

    backup = pair.node(False, serve=False)
    # A stranger publishing on the primary's state address.
    stranger = pair.keep(
        ZmqPubConnection(pair.factory, ZmqEndpoint("bind", pair.stateAddresses[True]))
    )

    def dropped() -> list[dict]:
        return [e for e in logged if "dropped a state message" in (e.get("log_format") or "")]

    # Published until one arrives (a subscriber joins late: the first ones are lost).
    for _ in range(500):
        if dropped():
            break
        stranger.publish(b"\xffnonsense", b"bstar")
        await lasting(0.01)
    assert dropped()
    assert backup.state == "backup"


@pytest_twisted.ensureDeferred
async def test_two_actives_that_meet_again_resolve_to_the_primary(pair, zmq_address, logged):
    # An island split, as the docs warn against: each node with clients of its own and
    # no word from the other (each listens where the other does not publish).
    nowhere = {True: zmq_address("ipc"), False: zmq_address("ipc")}
    nodes = {}
    for primary in (True, False):
        nodes[primary] = pair.keep(
            BinaryStar(
                pair.factory, primary, pair.stateAddresses[primary], nowhere[primary], HEARTBEAT
            )
        )
        server = pair.keep(Echo(pair.factory, ZmqEndpoint("bind", pair.serverAddresses[primary])))
        nodes[primary].serve(server)
    # The backup once saw an active primary (so it may take over), then lost it.
    nodes[False]._heardPeer(b"active")
    assert nodes[False].state == "passive"
    for primary in (True, False):
        await client(pair, primary).sendMsg(b"vote", timeout=TRY, retries=10)
    assert (nodes[True].state, nodes[False].state) == ("active", "active")
    # The link heals: each now hears the other.
    for primary in (True, False):
        nodes[primary]._subscriber.addEndpoints(
            [ZmqEndpoint("connect", pair.stateAddresses[not primary])]
        )
    await until(lambda: nodes[False].state == "passive")
    assert nodes[True].state == "active"
    assert [e for e in logged if "the backup yields" in (e.get("log_format") or "")]


@pytest_twisted.ensureDeferred
async def test_an_rpc_server_answers_calls_only_while_its_node_is_active(pair, zmq_address):
    from txzmq2.rpc import RPCClient, RPCServer, expose

    class Adder:
        @expose
        def add(self, a: int, b: int) -> int:
            return a + b

    primary, backup = await runningPair(pair)
    address = zmq_address("ipc")
    backup.serve(pair.keep(RPCServer(pair.factory, ZmqEndpoint("bind", address), Adder())))
    rpc = pair.keep(RPCClient(pair.factory, ZmqEndpoint("connect", address)))
    with pytest.raises(ZmqRequestTimeoutError):
        await rpc.callRemoteWithOptions("add", (1, 2), timeout=TRY)
    primary.shutdown()
    assert await rpc.callRemoteWithOptions("add", (1, 2), timeout=TRY, retries=5) == 3
    assert backup.state == "active"
