"""
``txzmq2 broker``, ``lbbroker``, ``forwarder`` and ``streamer`` as a user runs them: bound to
ports the OS chose (read back from their log), real messages through them from pyzmq
peers, and a clean stop with status 0 on SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
import zmq

from tests.cli.support import (
    EXERCISES,
    Process,
    boundAddress,
    exerciseBroker,
    runningDevice,
    txzmq2,
)
from tests.peers import blockingSocket

LOOPBACK = "tcp://127.0.0.1:*"

Launch = Callable[..., Process]


def startDevice(launch: Launch, device: str, *extra: str) -> Process:
    return launch(txzmq2(device, "--frontend", LOOPBACK, "--backend", LOOPBACK, *extra))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("device", sorted(EXERCISES))
def test_device_passes_real_messages_and_stops_on_sigint(
    device: str, launch: Launch, context: Any
) -> None:
    process = startDevice(launch, device)
    addresses = runningDevice(process)
    EXERCISES[device](context, addresses["frontend"], addresses["backend"])
    assert process.stop(signal.SIGINT) == 0, process.stderr
    assert f"{device}: stopped" in process.stderr
    assert "Traceback" not in process.stderr


@pytest.mark.timeout(30)
@pytest.mark.parametrize("device", sorted(EXERCISES))
def test_device_stops_on_sigterm_with_status_0(device: str, launch: Launch) -> None:
    process = startDevice(launch, device)
    runningDevice(process)
    assert process.stop(signal.SIGTERM) == 0, process.stderr
    assert f"{device}: stopped" in process.stderr
    assert "Traceback" not in process.stderr


@pytest.mark.timeout(30)
def test_broker_logs_how_many_messages_it_forwarded(launch: Launch, context: Any) -> None:
    process = startDevice(launch, "broker")
    addresses = runningDevice(process)
    exerciseBroker(context, addresses["frontend"], addresses["backend"])
    assert process.stop() == 0
    assert "broker: forwarded 2 messages" in process.stderr


@pytest.mark.timeout(30)
def test_quiet_device_logs_nothing_and_still_works(launch: Launch, context: Any) -> None:
    # With --quiet nothing says where it bound: the device connects to the peers instead.
    client = blockingSocket(context, zmq.REQ)
    server = blockingSocket(context, zmq.REP)
    frontend = client.bind_to_random_port("tcp://127.0.0.1")
    backend = server.bind_to_random_port("tcp://127.0.0.1")
    process = launch(
        txzmq2(
            "broker",
            "--frontend",
            f">tcp://127.0.0.1:{frontend}",
            "--backend",
            f">tcp://127.0.0.1:{backend}",
            "--quiet",
        )
    )
    client.send(b"ping")
    assert server.recv() == b"ping"
    server.send(b"pong")
    assert client.recv() == b"pong"
    assert process.stop() == 0
    assert process.stderr == ""


@pytest.mark.timeout(30)
def test_every_repeated_frontend_is_bound(launch: Launch, context: Any) -> None:
    process = startDevice(launch, "broker", "--frontend", LOOPBACK)
    process.waitFor(r": running$")
    frontends = [
        line.rsplit(" ", 1)[1]
        for line in process.stderr.splitlines()
        if "frontend (ROUTER) bound to" in line
    ]
    assert len(frontends) == 2
    # One server: the broker deals requests out round-robin to every server connected.
    server = blockingSocket(context, zmq.REP)
    server.connect(boundAddress(process, "backend"))
    for frontend in frontends:
        client = blockingSocket(context, zmq.REQ)
        client.connect(frontend)
        client.send(frontend.encode())
        assert server.recv() == frontend.encode()
        server.send(b"ok")
        assert client.recv() == b"ok"
    assert process.stop() == 0


@pytest.mark.timeout(30)
def test_backend_connects_to_a_server_with_the_connect_prefix(
    launch: Launch, context: Any
) -> None:
    server = blockingSocket(context, zmq.REP)
    port = server.bind_to_random_port("tcp://127.0.0.1")
    process = launch(
        txzmq2("broker", "--frontend", LOOPBACK, "--backend", f">tcp://127.0.0.1:{port}")
    )
    process.waitFor(rf"backend \(DEALER\) connecting to tcp://127\.0\.0\.1:{port}$")
    client = blockingSocket(context, zmq.REQ)
    client.connect(boundAddress(process, "frontend"))
    client.send(b"ping")
    assert server.recv() == b"ping"
    server.send(b"pong")
    assert client.recv() == b"pong"
    assert process.stop() == 0


@pytest.mark.timeout(30)
def test_capture_gets_a_copy_of_every_message_forwarded(launch: Launch, context: Any) -> None:
    process = startDevice(launch, "streamer", "--capture", LOOPBACK)
    addresses = runningDevice(process)
    capture = blockingSocket(context, zmq.PULL)
    capture.connect(boundAddress(process, "capture"))
    pusher = blockingSocket(context, zmq.PUSH)
    puller = blockingSocket(context, zmq.PULL)
    pusher.connect(addresses["frontend"])
    puller.connect(addresses["backend"])
    pusher.send_multipart([b"job", b"1"])
    assert puller.recv_multipart() == [b"job", b"1"]
    assert capture.recv_multipart() == [b"job", b"1"]
    assert process.stop() == 0
