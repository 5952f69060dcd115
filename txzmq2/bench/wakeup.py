"""
What one wake-up costs, piece by piece: the reactor's dispatch of an FD event, a reactor turn,
a scheduled call, a Deferred, an ``await``, and a txzmq2 read pass against a plain pyzmq read.

Each piece runs alone in a loop in its own process, on the default reactor (not running: its
methods are called as ``mainLoop`` calls them), so the figures add up to what a sequential
round trip pays on each side. Without ``--callgrind`` each piece prints nanoseconds per
iteration; with it, instructions per iteration counted by valgrind's callgrind (two runs, a
small and a large count; the difference, so start-up cancels out), which do not depend on the
machine's load. Both subtract an empty loop of the same count.

``--wakeups`` counts instead what a sequential round trip makes each side do: FD wake-ups,
wake-ups that found no message, and passes scheduled with ``callLater(0)``, for a txzmq2 REQ
client and a txzmq2 REP server, each against a blocking pyzmq peer in its own process.

``python -m txzmq2.bench.wakeup [--count N] [--callgrind] [--wakeups]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket as stdsocket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from txzmq2.bench import roundtrip
from txzmq2.bench.common import CALLGRIND, callgrindInstructions, freezeStartupHeap

__all__ = ["PIECES", "main", "measure"]

PAYLOAD = b"x" * 64
CALLGRIND_COUNTS = (2_000, 12_000)
WAKEUP_COUNT = 2_000
STOP = roundtrip.STOP

Loop = Callable[[int], None]


def _noop(*_: object) -> None:
    pass


def _reactor() -> Any:
    """This process's default reactor, installed but never run."""
    from twisted.internet import reactor

    return reactor


def _readyReader(reactor: Any, doRead: Callable[[], object]) -> Any:
    """A reader on a socket that always has a byte to read (epoll and poll are level-triggered)."""
    from twisted.internet.interfaces import IReadDescriptor
    from zope.interface import implementer

    left, right = stdsocket.socketpair()
    right.send(b"!")

    @implementer(IReadDescriptor)
    class Reader:
        def fileno(self) -> int:
            return left.fileno()

        def logPrefix(self) -> str:
            return "Reader"

        def connectionLost(self, reason: object) -> None:
            pass

    reader = Reader()
    reader.doRead = doRead  # type: ignore[attr-defined]
    reader.sockets = (left, right)  # type: ignore[attr-defined]
    reactor.addReader(reader)
    return reader


def _drop(reactor: Any, reader: Any) -> None:
    """Take ``reader`` off the reactor (the warm-up's must not be dispatched too) and close it."""
    reactor.removeReader(reader)
    for socket in reader.sockets:
        socket.close()


def _empty(count: int) -> None:
    for _ in range(count):
        pass


def _dispatch(count: int) -> None:
    """``doIteration(0)`` with one ready FD whose ``doRead`` does nothing."""
    reactor = _reactor()
    reader = _readyReader(reactor, _noop)
    iteration = reactor.doIteration
    for _ in range(count):
        iteration(0)
    _drop(reactor, reader)


def _logContext(count: int) -> None:
    """
    ``log.callWithLogger``, as the reactor wraps each FD event (with the three arguments it
    passes on), around a no-op.
    """
    from twisted.python import log

    reactor = _reactor()
    reader = _readyReader(reactor, _noop)
    call: Callable[..., object] = log.callWithLogger
    fd = reader.fileno()
    for _ in range(count):
        call(reader, _noop, reader, fd, 1)
    _drop(reactor, reader)


def _readOrWrite(count: int) -> None:
    """The reactor's ``_doReadOrWrite`` for a read event (``fileno``, ``doRead``, the checks)."""
    reactor = _reactor()
    reader = _readyReader(reactor, _noop)
    handle = reactor._doReadOrWrite
    fd = reader.fileno()
    event = getattr(reactor, "_POLL_IN", 1)
    for _ in range(count):
        handle(reader, fd, event)
    _drop(reactor, reader)


def _turn(count: int) -> None:
    """The rest of a ``mainLoop`` turn: ``runUntilCurrent`` and ``timeout``, one timer pending."""
    reactor = _reactor()
    timer = reactor.callLater(3600, _noop)
    run = reactor.runUntilCurrent
    timeout = reactor.timeout
    for _ in range(count):
        run()
        timeout()
    timer.cancel()


def _callLater(count: int) -> None:
    """A call scheduled with ``callLater(0)`` and run by the next ``runUntilCurrent``."""
    reactor = _reactor()
    later = reactor.callLater
    run = reactor.runUntilCurrent
    for _ in range(count):
        later(0, _noop)
        run()


def _deferred(count: int) -> None:
    """A Deferred created, given a callback, and fired."""
    from twisted.internet.defer import Deferred

    for _ in range(count):
        deferred: Any = Deferred()
        deferred.addCallback(_noop)
        deferred.callback(None)


def _await(count: int) -> None:
    """A coroutine awaiting a new Deferred, fired from outside (as a reply fires a request's)."""
    from twisted.internet.defer import Deferred, ensureDeferred

    waiting: list[Deferred[None]] = []

    async def loop() -> None:
        for _ in range(count):
            deferred: Deferred[None] = Deferred()
            waiting.append(deferred)
            await deferred

    ensureDeferred(loop())
    while waiting:
        waiting.pop().callback(None)


def _boundPeer(socketType: int) -> tuple[zmq.Context[Any], zmq.Socket[Any], str]:
    """A fresh context and a pyzmq socket of ``socketType`` bound on inproc, and its address."""
    context: zmq.Context[Any] = zmq.Context()
    peer = context.socket(socketType)
    address = f"inproc://wakeup-{os.getpid()}"
    peer.bind(address)
    return context, peer, address


def _pyzmqRead(count: int) -> None:
    """
    One message sent by a PUSH over inproc and read by a pyzmq PULL as any reader woken by
    ``ZMQ_FD`` must: ``recv``, then ``EVENTS`` (the edge rule: is another one waiting?).
    """
    context, push, address = _boundPeer(zmq.PUSH)
    pull = context.socket(zmq.PULL)
    pull.connect(address)
    send, recv, get = push.send, pull.recv, pull.get
    for _ in range(count):
        send(PAYLOAD)
        recv(zmq.NOBLOCK)
        get(zmq.EVENTS)
    context.destroy(linger=0)


def _txzmq2Read(count: int) -> None:
    """
    The same message read by a txzmq2 PULL's ``doRead`` (the pass the reactor runs when the
    FD signals: read a batch, deliver to ``onPull``, look at ``EVENTS``).
    """
    from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqPullConnection

    context, push, address = _boundPeer(zmq.PUSH)
    factory = ZmqFactory(_reactor(), context=context)
    pull = ZmqPullConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    pull.onPull = _noop  # type: ignore[method-assign, assignment]
    send, doRead = push.send, pull.doRead
    for _ in range(count):
        send(PAYLOAD)
        doRead()
    pull.shutdown()
    context.destroy(linger=0)


def _pyzmqSend(count: int) -> None:
    """One message sent by a pyzmq DEALER over inproc, and its peer's ``recv``."""
    context, peer, address = _boundPeer(zmq.DEALER)
    dealer = context.socket(zmq.DEALER)
    dealer.connect(address)
    send, recv = dealer.send, peer.recv
    for _ in range(count):
        send(PAYLOAD)
        recv()
    context.destroy(linger=0)


def _txzmq2Send(count: int) -> None:
    """
    The same from a txzmq2 DEALER's ``send``, outside a pass (from a timer, another
    connection's callback), with what it leaves the reactor to run (``runUntilCurrent``).
    """
    from txzmq2 import ZmqDealerConnection, ZmqEndpoint, ZmqEndpointType, ZmqFactory

    context, peer, address = _boundPeer(zmq.DEALER)
    reactor = _reactor()
    factory = ZmqFactory(reactor, context=context)
    dealer = ZmqDealerConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
    send, recv, run = dealer.send, peer.recv, reactor.runUntilCurrent
    for _ in range(count):
        send(PAYLOAD)
        run()
        recv()
    dealer.shutdown()
    context.destroy(linger=0)


PIECES: dict[str, tuple[str, Loop]] = {
    "empty": ("empty loop (subtracted from the others)", _empty),
    "dispatch": (
        "reactor dispatch of one FD event (doIteration(0), doRead doing nothing)",
        _dispatch,
    ),
    "logcontext": ("- of it, callWithLogger (the log context)", _logContext),
    "readorwrite": ("- of it, _doReadOrWrite (fileno, doRead, the checks)", _readOrWrite),
    "turn": ("rest of a reactor turn (runUntilCurrent, timeout; one timer pending)", _turn),
    "calllater": ("callLater(0) and the runUntilCurrent that runs it", _callLater),
    "deferred": ("Deferred: create, addCallback, callback", _deferred),
    "await": ("await of a Deferred fired later (ensureDeferred)", _await),
    "pyzmq": (
        "pyzmq recv and EVENTS read of one message (inproc), with the PUSH's send",
        _pyzmqRead,
    ),
    "txzmq2": ("txzmq2 PULL doRead of one message (inproc), with the PUSH's send", _txzmq2Read),
    "pyzmqsend": ("pyzmq DEALER send of one message (inproc), with the peer's recv", _pyzmqSend),
    "txzmq2send": (
        "txzmq2 DEALER send from outside a pass (inproc), its follow-up, the peer's recv",
        _txzmq2Send,
    ),
}
_SUBTRACTED = "empty"


def _module(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "txzmq2.bench.wakeup", *arguments]


def _instructions(piece: str, count: int) -> int:
    command = [*CALLGRIND, *_module("--piece", piece, "--count", str(count))]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True)
    return callgrindInstructions(run.stderr)


def _nanoseconds(piece: str, count: int) -> float:
    run = subprocess.run(
        _module("--piece", piece, "--count", str(count)),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return float(json.loads(run.stdout.strip().splitlines()[-1])["ns"])


def measure(piece: str, count: int, callgrind: bool = False) -> float:
    """Instructions (``callgrind``) or nanoseconds per iteration of ``piece`` (own process)."""
    if not callgrind:
        return _nanoseconds(piece, count)
    small, large = CALLGRIND_COUNTS
    return (_instructions(piece, large) - _instructions(piece, small)) / (large - small)


def _runPiece(piece: str, count: int) -> dict[str, float]:
    loop = PIECES[piece][1]
    loop(min(count, 200))  # warm: imports, first calls
    freezeStartupHeap()
    started = time.perf_counter_ns()
    loop(count)
    return {"ns": (time.perf_counter_ns() - started) / count}


# -- wake-ups per round trip -------------------------------------------------------------------


def _requester() -> None:
    """A blocking pyzmq REQ client on tcp: the address and a count on stdin, then ``stop``."""
    context: zmq.Context[Any] = zmq.Context()
    socket = context.socket(zmq.REQ)
    socket.connect(sys.stdin.readline().strip())
    count = int(sys.stdin.readline())
    for _ in range(count):
        socket.send(PAYLOAD)
        socket.recv()
    socket.send(STOP)
    socket.close(linger=1000)
    context.term()


def _counting(base: type[Any]) -> type[Any]:
    class Counting(base):  # type: ignore[misc]
        wakeups = emptyWakeups = scheduledPasses = 0

        def doRead(self) -> None:
            self.wakeups += 1
            before = self._engine.received
            super().doRead()
            if self._engine.received == before:
                self.emptyWakeups += 1

        def _runPass(self, woken: bool = False) -> None:
            self.scheduledPasses += 1
            super()._runPass(woken)

    return Counting


def _countWakeups(side: str, count: int) -> dict[str, float]:
    """Per round trip: FD wake-ups, those that found no message, and scheduled passes."""
    from twisted.internet import reactor as installed
    from twisted.internet.defer import Deferred

    from txzmq2 import (
        ZmqEndpoint,
        ZmqEndpointType,
        ZmqFactory,
        ZmqREPConnection,
        ZmqREQConnection,
    )

    reactor: Any = installed
    factory = ZmqFactory(reactor)
    done: Deferred[None] = Deferred()
    # The client's peer is the round-trip profile's REP echo (it stops at the same word).
    peerCommand = roundtrip.peerCommand() if side == "client" else _module("--requester")
    peer = subprocess.Popen(
        peerCommand,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert peer.stdin is not None and peer.stdout is not None
    if side == "client":
        endpoint = peer.stdout.readline().strip()
        client = _counting(ZmqREQConnection)(
            factory, ZmqEndpoint(ZmqEndpointType.connect, endpoint)
        )
        connection = client
        remaining = count

        def issue(_: object = None) -> None:
            nonlocal remaining
            if remaining == 0:
                client.sendMsg(STOP).chainDeferred(done)
                return
            remaining -= 1
            client.sendMsg(PAYLOAD).addCallback(issue)

        reactor.callWhenRunning(issue)
    else:
        server = _counting(ZmqREPConnection)(
            factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*")
        )
        connection = server

        def handle(*message: bytes) -> list[bytes]:
            if message == (STOP,):
                reactor.callLater(0.2, done.callback, None)  # the reply leaves first
            return list(message)

        server.handleRequest = handle
        peer.stdin.write(f"{server.lastEndpoint}\n{count}\n")
        peer.stdin.flush()
    done.addBoth(lambda _: factory.shutdown()).addBoth(lambda _: reactor.stop())
    reactor.run()
    peer.wait(timeout=30)
    return {
        "wakeups": connection.wakeups / count,
        "empty_wakeups": connection.emptyWakeups / count,
        "scheduled_passes": connection.scheduledPasses / count,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m txzmq2.bench.wakeup",
        description="What one wake-up costs, piece by piece (reactor dispatch, turn, "
        "callLater, Deferred, await, a txzmq2 read pass against a pyzmq read).",
    )
    parser.add_argument("--count", type=int, default=100_000, help="iterations (100,000)")
    parser.add_argument(
        "--callgrind", action="store_true", help="count instructions under valgrind instead"
    )
    parser.add_argument(
        "--wakeups",
        action="store_true",
        help="count wake-ups and scheduled passes per sequential round trip instead",
    )
    parser.add_argument("--piece", choices=sorted(PIECES), help=argparse.SUPPRESS)
    parser.add_argument("--requester", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", choices=("client", "server"), help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.piece:
        print(json.dumps(_runPiece(options.piece, options.count)))
        return 0
    if options.requester:
        _requester()
        return 0
    if options.side:
        print(json.dumps(_countWakeups(options.side, min(options.count, WAKEUP_COUNT))))
        return 0
    if options.wakeups:
        print("| side | FD wake-ups | of them empty | passes by callLater(0) |\n|---|---|---|---|")
        for side in ("client", "server"):
            run = subprocess.run(
                _module("--side", side, "--count", str(options.count)),
                capture_output=True,
                text=True,
                timeout=300,
                check=True,
            )
            figures = json.loads(run.stdout.strip().splitlines()[-1])
            print(
                f"| txzmq2 {'REQ client' if side == 'client' else 'REP server'} |"
                f" {figures['wakeups']:.2f} | {figures['empty_wakeups']:.2f} |"
                f" {figures['scheduled_passes']:.2f} |"
            )
        return 0
    if options.callgrind and shutil.which("valgrind") is None:
        parser.error("--callgrind needs valgrind (apt-get install valgrind)")
    figures = {piece: measure(piece, options.count, options.callgrind) for piece in PIECES}
    unit = "instructions" if options.callgrind else "ns"
    from txzmq2 import _fastpath

    path = "native" if _fastpath.native else "pure-Python"
    print(f"txzmq2 on its {path} path, {type(_reactor()).__name__}")
    print(f"| piece | {unit} per iteration |\n|---|---|")
    for piece, value in figures.items():
        if piece != _SUBTRACTED:
            print(f"| {PIECES[piece][0]} | {value - figures[_SUBTRACTED]:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
