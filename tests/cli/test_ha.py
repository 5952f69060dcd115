"""
``txzmq2 bstar`` and ``txzmq2 titanic`` as a user runs them: a broker pair that fails over
when the primary is killed, and the Titanic service behind a Majordomo broker written from
7/MDP, used by a TSP client written from 9/TSP (all blocking pyzmq peers).
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from tests.cli.support import Process, assertUsageError, run, runningDevice, txzmq2
from tests.mdp.reference import RfcBroker, RfcWorker, rfcRequest
from tests.peers import blockingSocket

Launch = Callable[..., Process]
LOOPBACK = "tcp://127.0.0.1:*"
HEARTBEAT = 0.2


def lazyPirate(context: Any, frontend: str, request: bytes, tries: int = 20) -> list[bytes]:
    """One request through a broker's frontend, on a fresh REQ socket per try."""
    for _ in range(tries):
        client = blockingSocket(context, zmq.REQ)
        try:
            client.connect(frontend)
            client.send(request)
            if client.poll(int(2 * HEARTBEAT * 1000)):
                return list(client.recv_multipart())
        finally:
            client.close()
    raise AssertionError(f"no reply to {request!r} in {tries} tries")


def echoServer(context: Any, backend: str, stop: threading.Event) -> threading.Thread:
    """A REP server on a broker's backend, in a thread until ``stop`` is set."""
    server = blockingSocket(context, zmq.REP)
    server.connect(backend)

    def serve() -> None:
        try:
            while not stop.is_set():
                if server.poll(10):
                    server.send_multipart([b"echo", *server.recv_multipart()])
        finally:
            server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(40)
def test_bstar_pair_serves_through_the_primary_then_fails_over_to_the_backup(
    launch: Launch, context: Any, tmp_path: Any
) -> None:
    state = {"primary": f"ipc://{tmp_path}/p", "backup": f"ipc://{tmp_path}/b"}

    def node(role: str, peer: str) -> Process:
        return launch(
            txzmq2(
                *("bstar", f"--{role}", "--local", state[role], "--remote", state[peer]),
                *("--heartbeat", str(HEARTBEAT), "--frontend", LOOPBACK, "--backend", LOOPBACK),
            )
        )

    primary, backup = node("primary", "backup"), node("backup", "primary")
    addresses = {"primary": runningDevice(primary), "backup": runningDevice(backup)}
    primary.waitFor(r"broker: primary active$")
    backup.waitFor(r"broker: backup passive$")
    stop = threading.Event()
    servers = [echoServer(context, addresses[role]["backend"], stop) for role in addresses]
    try:
        assert lazyPirate(context, addresses["primary"]["frontend"], b"1") == [b"echo", b"1"]
        primary.close()  # SIGKILL
        # The client fails over: its tries on the backup vote it active.
        assert lazyPirate(context, addresses["backup"]["frontend"], b"2") == [b"echo", b"2"]
        backup.waitFor(r"broker: backup active$")
    finally:
        stop.set()
        for server in servers:
            server.join()
    assert backup.stop(signal.SIGTERM) == 0, backup.stderr
    assert "Traceback" not in backup.stderr


def test_bstar_needs_a_role() -> None:
    line = assertUsageError(
        run(
            *("bstar", "--local", "ipc:///tmp/a", "--remote", "ipc:///tmp/b"),
            *("--frontend", LOOPBACK, "--backend", LOOPBACK),
        )
    )
    assert "--primary" in line


@pytest.mark.timeout(40)
def test_titanic_stores_and_answers_through_a_majordomo_broker(
    launch: Launch, tmp_path: Any
) -> None:
    context: zmq.Context[Any] = zmq.Context()
    broker = RfcBroker(context, interval=HEARTBEAT)
    worker = RfcWorker(context, broker.address, b"echo", interval=HEARTBEAT)
    threads = [threading.Thread(target=peer.run, daemon=True) for peer in (broker, worker)]
    for thread in threads:
        thread.start()
    database = tmp_path / "titanic.db"
    titanic = launch(
        txzmq2(
            *("titanic", "--broker", broker.address, "--database", str(database)),
            *("--heartbeat", str(HEARTBEAT)),
        )
    )
    try:
        titanic.waitFor(r"titanic: running$")
        status, requestId = rfcRequest(context, broker.address, b"titanic.request", b"echo", b"hi")
        assert status == b"200"
        deadline = time.monotonic() + 10
        while (reply := rfcRequest(context, broker.address, b"titanic.reply", requestId)) == [
            b"300"
        ] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert reply == [b"200", b"hi"]
        assert rfcRequest(context, broker.address, b"titanic.close", requestId) == [b"200"]
        assert titanic.stop(signal.SIGINT) == 0, titanic.stderr
    finally:
        worker.stop()
        broker.stop()
        for thread in threads:
            thread.join()
        context.destroy(linger=0)
    with sqlite3.connect(database) as stored:
        assert stored.execute("SELECT COUNT(*) FROM titanic").fetchone() == (0,)


def test_titanic_with_a_database_it_cannot_open_is_a_usage_error(tmp_path: Any) -> None:
    line = assertUsageError(
        run("titanic", "--broker", "tcp://127.0.0.1:5555", "--database", str(tmp_path))
    )
    assert "cannot open the database" in line
