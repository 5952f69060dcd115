"""
The one-liners as a user runs them: ``req``, ``pub`` and ``push`` read stdin (a pipe or a
file) and exit by themselves; ``rep``, ``sub`` and ``pull`` print what arrives until
``--count`` or a signal. Peers are blocking pyzmq sockets, or other txzmq2 commands.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zmq

from tests.cli.support import Process, boundAddress, runningDevice, txzmq2
from tests.peers import blockingSocket

Launch = Callable[..., Process]

pytestmark = pytest.mark.timeout(30)


def boundPeer(context: Any, socketType: int, **options: Any) -> tuple[Any, str]:
    """A blocking pyzmq socket bound to a loopback port the OS chose, and its address."""
    peer = blockingSocket(context, socketType, **options)
    port = peer.bind_to_random_port("tcp://127.0.0.1")
    return peer, f"tcp://127.0.0.1:{port}"


# -- req --------------------------------------------------------------------------------------


def test_req_sends_each_line_and_prints_the_replies_in_order(launch: Launch, context: Any) -> None:
    server, address = boundPeer(context, zmq.REP)
    # The last line has no newline: it is a line all the same.
    process = launch(txzmq2("req", address), stdin=b"one\ntwo\nthree")
    for _ in range(3):
        server.send_multipart([frame.upper() for frame in server.recv_multipart()])
    assert process.wait() == 0, process.stderr
    assert process.stdout == "ONE\nTWO\nTHREE\n"


def test_req_splits_lines_into_frames_and_prints_binary_frames_as_literals(
    launch: Launch, context: Any
) -> None:
    server, address = boundPeer(context, zmq.REP)
    process = launch(txzmq2("req", "--separator", "|", address), stdin=b"a|b\n")
    assert server.recv_multipart() == [b"a", b"b"]
    server.send_multipart([b"text", b"\x00\xff", b"", b"x|y"])
    assert process.wait() == 0, process.stderr
    assert process.stdout == "text|b'\\x00\\xff'|b''|b'x|y'\n"


def test_req_reads_stdin_from_a_file(launch: Launch, context: Any, tmp_path: Path) -> None:
    server, address = boundPeer(context, zmq.REP)
    requests = tmp_path / "requests.txt"
    requests.write_bytes(b"".join(b"request %d\n" % n for n in range(50)))
    with requests.open("rb") as stdin:
        process = launch(txzmq2("req", address), stdin=stdin)
        for _ in range(50):
            server.send_multipart(server.recv_multipart())
        assert process.wait() == 0, process.stderr
    assert process.stdout.splitlines() == [f"request {n}" for n in range(50)]


def test_req_exits_1_when_a_reply_does_not_come_in_time(launch: Launch) -> None:
    # Nothing listens there: the request waits in vain.
    process = launch(txzmq2("req", "--timeout", "0.3", "tcp://127.0.0.1:1"), stdin=b"hello\n")
    assert process.wait() == 1
    assert "req: no reply to request 1 within 0.3 s" in process.stderr
    assert "Traceback" not in process.stderr
    assert process.stdout == ""


# -- rep --------------------------------------------------------------------------------------


def test_rep_prints_each_request_and_echoes_it_until_count(launch: Launch, context: Any) -> None:
    process = launch(txzmq2("rep", "tcp://127.0.0.1:*", "--count", "2"))
    client = blockingSocket(context, zmq.REQ)
    client.connect(boundAddress(process, "ROUTER"))
    for request in ([b"hello"], [b"two", b"frames"]):
        client.send_multipart(request)
        assert client.recv_multipart() == request
    assert process.wait() == 0, process.stderr
    assert process.stdout == "hello\ntwo | frames\n"


def test_rep_answers_every_request_with_the_reply_option(launch: Launch, context: Any) -> None:
    process = launch(
        txzmq2("rep", "tcp://127.0.0.1:*", "--reply", "ok;done", "-s", ";", "--count", "1")
    )
    client = blockingSocket(context, zmq.REQ)
    client.connect(boundAddress(process, "ROUTER"))
    client.send(b"anything")
    assert client.recv_multipart() == [b"ok", b"done"]
    assert process.wait() == 0, process.stderr


# -- pub and sub ------------------------------------------------------------------------------


def test_sub_prints_the_messages_of_its_topics_until_count(launch: Launch, context: Any) -> None:
    publisher, address = boundPeer(context, zmq.XPUB)
    process = launch(txzmq2("sub", address, "--topic", "news", "--count", "2"))
    # An XPUB sees the subscription arrive: publish only then, no slow-joiner guessing.
    assert publisher.recv() == b"\x01news"
    publisher.send_multipart([b"news", b"first"])
    publisher.send_multipart([b"sports", b"ignored"])
    publisher.send_multipart([b"newsflash"])
    publisher.send_multipart([b"news", b"never printed"])
    assert process.wait() == 0, process.stderr
    assert process.stdout == "news | first\nnewsflash\n"


def test_pub_holds_lines_until_subscribed_then_publishes_them(
    launch: Launch, context: Any
) -> None:
    subscriber, address = boundPeer(context, zmq.SUB, subscribe=b"")
    process = launch(
        txzmq2("pub", address, "--topic", "t", "--wait-subscriptions", "1"), stdin=b"a\nb c\n"
    )
    assert subscriber.recv_multipart() == [b"t", b"a"]
    assert subscriber.recv_multipart() == [b"t", b"b c"]
    assert process.wait() == 0, process.stderr


def test_pub_exits_1_when_no_subscription_comes_in_time(launch: Launch) -> None:
    process = launch(
        txzmq2("pub", "tcp://127.0.0.1:*", "-w", "1", "--timeout", "0.3"), stdin=b"lost\n"
    )
    assert process.wait() == 1
    assert "pub: 0 of 1 subscription(s) within 0.3 s; nothing published" in process.stderr
    assert "Traceback" not in process.stderr


def test_pub_and_sub_commands_talk_through_the_forwarder(launch: Launch) -> None:
    forwarder = launch(
        txzmq2("forwarder", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*")
    )
    addresses = runningDevice(forwarder)
    sub = launch(txzmq2("sub", addresses["backend"], "--count", "2"))
    sub.waitFor(r"sub: running$")
    pub = launch(
        txzmq2("pub", addresses["frontend"], "-w", "1", "-s", ","), stdin=b"weather,sunny\nx\n"
    )
    assert pub.wait() == 0, pub.stderr
    assert sub.wait() == 0, sub.stderr
    assert sub.stdout == "weather | sunny\nx\n"
    assert forwarder.stop() == 0


# -- push and pull ----------------------------------------------------------------------------


def test_push_delivers_every_line_in_order_then_exits(
    launch: Launch, context: Any, tmp_path: Path
) -> None:
    puller, address = boundPeer(context, zmq.PULL)
    lines = tmp_path / "lines.txt"
    lines.write_bytes(b"".join(b"line %d\n" % n for n in range(200)))
    with lines.open("rb") as stdin:
        process = launch(txzmq2("push", address), stdin=stdin)
        assert [puller.recv() for _ in range(200)] == [b"line %d" % n for n in range(200)]
        assert process.wait() == 0, process.stderr


def test_push_exits_1_when_no_peer_connects_in_time(launch: Launch) -> None:
    process = launch(txzmq2("push", "tcp://127.0.0.1:1", "--timeout", "0.3"), stdin=b"a\nb\n")
    assert process.wait() == 1
    assert "push: no peer connected within 0.3 s; 2 message(s) not delivered" in process.stderr
    assert "Traceback" not in process.stderr


def test_pull_prints_each_message_until_count(launch: Launch, context: Any) -> None:
    process = launch(txzmq2("pull", "@tcp://127.0.0.1:*", "-n", "2"))
    pusher = blockingSocket(context, zmq.PUSH)
    pusher.connect(boundAddress(process, "PULL"))
    pusher.send_multipart([b"caf\xc3\xa9", b"\xff"])
    pusher.send_multipart([b"b'not bytes'"])
    assert process.wait() == 0, process.stderr
    assert process.stdout == "café | b'\\xff'\nb\"b'not bytes'\"\n"


def test_push_and_pull_commands_talk_through_the_streamer(launch: Launch) -> None:
    streamer = launch(
        txzmq2("streamer", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*")
    )
    addresses = runningDevice(streamer)
    pull = launch(txzmq2("pull", addresses["backend"], "--count", "3"))
    push = launch(txzmq2("push", addresses["frontend"]), stdin=b"1\n2\n3\n")
    assert push.wait() == 0, push.stderr
    assert pull.wait() == 0, pull.stderr
    assert pull.stdout == "1\n2\n3\n"
    assert streamer.stop() == 0


# -- req and rep through the broker -----------------------------------------------------------


def test_req_and_rep_commands_talk_through_the_broker(launch: Launch) -> None:
    broker = launch(
        txzmq2("broker", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*")
    )
    addresses = runningDevice(broker)
    rep = launch(txzmq2("rep", addresses["backend"], "--reply", "pong"))
    rep.waitFor(r"rep: running$")
    req = launch(txzmq2("req", addresses["frontend"]), stdin=b"ping 1\nping 2\n")
    assert req.wait() == 0, req.stderr
    assert req.stdout == "pong\npong\n"
    assert rep.stop(signal.SIGTERM) == 0
    assert rep.stdout == "ping 1\nping 2\n"
    assert broker.stop() == 0


# -- stopping ---------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("command", ["rep", "sub", "pull"])
def test_long_running_one_liner_stops_on_signal_with_status_0(
    command: str, signum: signal.Signals, launch: Launch
) -> None:
    process = launch(txzmq2(command, "tcp://127.0.0.1:*"))
    process.waitFor(rf"{command}: running$")
    assert process.stop(signum) == 0, process.stderr
    assert f"{command}: stopped" in process.stderr
    assert "Traceback" not in process.stderr


def test_req_stops_on_sigint_while_stdin_is_still_open(launch: Launch) -> None:
    reading, writing = os.pipe()
    try:
        with os.fdopen(reading, "rb") as stdin:
            process = launch(txzmq2("req", "tcp://127.0.0.1:1"), stdin=stdin)
        os.write(writing, b"unanswered\n")
        process.waitFor(r"req: running$")
        assert process.stop(signal.SIGINT) == 0, process.stderr
    finally:
        os.close(writing)
    assert "req: stopped" in process.stderr
    assert "Traceback" not in process.stderr
