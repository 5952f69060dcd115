"""
Where a sequential round trip's CPU goes, on the requesting side alone.

Three clients, one at a time, each against a fresh blocking pyzmq REP echo peer in its own
process, over tcp loopback, one 64-byte request outstanding:

- ``txzmq2``: :meth:`~txzmq2.ZmqREQConnection.sendMsg`, the next request sent from the
  reply's callback;
- ``floor``: the least any Twisted reader on pyzmq can do for the same wire format
  (``[id, b"", payload]``) and the same guarantees: a Deferred per request, whole messages
  read with ``copy=False`` (the cheapest way to learn whether more frames follow),
  ``EVENTS`` read after each wake-up's reads and after a send made outside one, nothing
  else (no timers, no batch budget, no outbound queue, no error handling);
- ``pyzmq``: a blocking REQ socket, the ceiling.

Each client runs in its own process and prints round trips per second, and wall and CPU
(thread) time per round trip. With ``--callgrind`` each one runs instead twice under
valgrind's callgrind, with a small and a large count; the difference gives the
instructions executed per round trip by the client process (every thread, libzmq's I/O
thread included; the kernel not). That figure does not depend on what else the machine
is doing, so it can compare changes that wall-clock timing on a noisy machine cannot.

``python -m txzmq2.bench.roundtrip [--count N] [--callgrind]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import zmq

from txzmq2.bench.common import freezeStartupHeap, runBesidePeer

__all__ = ["CLIENTS", "STOP", "main", "measure", "peerCommand", "serve"]

PAYLOAD = b"x" * 64
WARM_UP = 200
STOP = b"stop"
CALLGRIND_COUNTS = (500, 2500)


def serve() -> None:
    """The peer: a blocking REP echo on an OS-chosen tcp port, until a ``stop`` request."""
    context = zmq.Context()
    socket = context.socket(zmq.REP)
    socket.bind("tcp://127.0.0.1:*")
    print(socket.get_string(zmq.LAST_ENDPOINT), flush=True)
    while True:
        frames = socket.recv_multipart()
        socket.send_multipart(frames)
        if frames == [STOP]:
            break
    socket.close(linger=1000)
    context.term()


def _timed(count: int, started: list[float]) -> dict[str, float]:
    wall = time.perf_counter() - started[0]
    cpu = time.thread_time() - started[1]
    return {
        "round_trips_per_s": count / wall,
        "wall_us": wall / count * 1e6,
        "cpu_us": cpu / count * 1e6,
    }


def _runPyzmq(endpoint: str, count: int) -> dict[str, float]:
    context = zmq.Context()
    socket = context.socket(zmq.REQ)
    socket.connect(endpoint)
    for _ in range(WARM_UP):
        socket.send(PAYLOAD)
        socket.recv()
    started = [time.perf_counter(), time.thread_time()]
    for _ in range(count):
        socket.send(PAYLOAD)
        socket.recv()
    result = _timed(count, started)
    socket.send(STOP)
    socket.recv()
    socket.close(linger=0)
    context.term()
    return result


def _onReactor(
    loop: Callable[[Any, Callable[[dict[str, float]], None]], None],
) -> dict[str, float]:
    """Run ``loop(reactor, finish)`` on this process's (default) reactor until ``finish``."""
    from twisted.internet import reactor as installed

    reactor: Any = installed
    outcome: dict[str, float] = {}

    def finish(result: dict[str, float]) -> None:
        outcome.update(result)
        reactor.stop()

    reactor.callWhenRunning(loop, reactor, finish)
    reactor.run()
    return outcome


def _sequential(
    request: Callable[[bytes], Any], count: int, done: Callable[[dict[str, float]], None]
) -> None:
    """Issue ``count`` requests after a warm-up, each from the previous one's reply."""
    issued = 0
    started = [0.0, 0.0]

    def issue(_: object = None) -> None:
        nonlocal issued
        if issued == WARM_UP:
            started[:] = [time.perf_counter(), time.thread_time()]
        if issued == WARM_UP + count:
            done(_timed(count, started))
            return
        issued += 1
        request(PAYLOAD).addCallback(issue)

    issue()


def _runTxzmq2(endpoint: str, count: int) -> dict[str, float]:
    def loop(reactor: Any, finish: Callable[[dict[str, float]], None]) -> None:
        from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqREQConnection

        factory = ZmqFactory(reactor)
        client = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, endpoint))

        def done(result: dict[str, float]) -> None:
            client.sendMsg(STOP).addBoth(lambda _: factory.shutdown()).addBoth(
                lambda _: finish(result)
            )

        _sequential(client.sendMsg, count, done)

    return _onReactor(loop)


def _runFloor(endpoint: str, count: int) -> dict[str, float]:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReadDescriptor
    from zmq.backend import Socket as BaseSocket
    from zope.interface import implementer

    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.connect(endpoint)
    send = BaseSocket.send.__get__(socket)
    recv = BaseSocket.recv.__get__(socket)
    get = BaseSocket.get.__get__(socket)
    events, pollin, more, last = int(zmq.EVENTS), int(zmq.POLLIN), 3, 1  # NOBLOCK (|SNDMORE)
    pending: dict[bytes, Deferred[list[bytes]]] = {}

    @implementer(IReadDescriptor)
    class Reader:
        reading = False
        number = 0
        fd = int(socket.get(zmq.FD))

        def fileno(self) -> int:
            return self.fd

        def logPrefix(self) -> str:
            return "floor"

        def connectionLost(self, reason: object) -> None:
            pass

        def doRead(self) -> None:
            self.reading = True
            try:
                woken = True
                while woken or get(events) & pollin:
                    woken = False
                    try:
                        frame = recv(1, copy=False)
                    except zmq.Again:
                        continue  # the loop condition reads EVENTS before giving up
                    message = [frame.bytes]
                    while frame.more:
                        frame = recv(1, copy=False)
                        message.append(frame.bytes)
                    pending.pop(message[0]).callback(message[2:])
            finally:
                self.reading = False

        def request(self, payload: bytes) -> Deferred[list[bytes]]:
            self.number += 1
            requestId = self.number.to_bytes(8, "big")
            deferred: Deferred[list[bytes]] = Deferred()
            pending[requestId] = deferred
            send(requestId, more)
            send(b"", more)
            send(payload, last)
            if not self.reading and get(events) & pollin:
                reactor.callLater(0, self.doRead)  # the send consumed the edge
            return deferred

    reader = Reader()
    reactor: Any = None

    def loop(running: Any, finish: Callable[[dict[str, float]], None]) -> None:
        nonlocal reactor
        reactor = running
        reactor.addReader(reader)

        def done(result: dict[str, float]) -> None:
            reactor.removeReader(reader)
            send(b"", more)
            send(STOP, last)
            # After the reader's loop has finished with the socket (this runs inside it).
            reactor.callLater(0, close, result)

        def close(result: dict[str, float]) -> None:
            socket.close(linger=1000)
            context.term()
            finish(result)

        _sequential(reader.request, count, done)

    return _onReactor(loop)


CLIENTS: dict[str, Callable[[str, int], dict[str, float]]] = {
    "txzmq2": _runTxzmq2,
    "floor": _runFloor,
    "pyzmq": _runPyzmq,
}


def _module(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "txzmq2.bench.roundtrip", *arguments]


def peerCommand() -> list[str]:
    """The command that runs :func:`serve` in a process of its own (it prints its address)."""
    return _module("--serve")


def _runClient(name: str, count: int, callgrind: bool) -> tuple[dict[str, Any], int | None]:
    """One client against a fresh peer; its figures, and instructions when ``callgrind``."""
    output, instructions = runBesidePeer(
        peerCommand(),
        lambda endpoint: _module("--client", name, "--endpoint", endpoint, "--count", str(count)),
        callgrind,
    )
    return json.loads(output.strip().splitlines()[-1]), instructions


def measure(name: str, count: int, callgrind: bool = False) -> dict[str, Any]:
    """
    Measure one client in its own process: round trips/s, wall and CPU µs per round trip;
    with ``callgrind``, instructions per round trip instead (two runs under valgrind).
    """
    if not callgrind:
        figures, _ = _runClient(name, count, False)
        return {"client": name, **figures}
    small, large = CALLGRIND_COUNTS
    _, fewer = _runClient(name, small, True)
    _, more = _runClient(name, large, True)
    assert fewer is not None and more is not None
    return {"client": name, "instructions": (more - fewer) / (large - small)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m txzmq2.bench.roundtrip",
        description="CPU per sequential round trip on the requesting side: txzmq2, the "
        "least a Twisted reader on pyzmq can do, and blocking pyzmq.",
    )
    parser.add_argument("--count", type=int, default=10_000, help="round trips (10,000)")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per round trip under valgrind instead of timing",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=sorted(CLIENTS), help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.serve:
        serve()
        return 0
    if options.client:
        freezeStartupHeap()
        print(json.dumps(CLIENTS[options.client](options.endpoint, options.count)))
        return 0
    if options.callgrind and shutil.which("valgrind") is None:
        parser.error("--callgrind needs valgrind (apt-get install valgrind)")
    results = [measure(name, options.count, options.callgrind) for name in CLIENTS]
    if options.callgrind:
        print("| client | instructions per round trip | vs pyzmq |\n|---|---|---|")
        base = results[-1]["instructions"]
        for result in results:
            ratio = result["instructions"] / base
            print(f"| {result['client']} | {result['instructions']:,.0f} | {ratio:.1f}x |")
    else:
        print("| client | round trips/s | wall µs | CPU µs |\n|---|---|---|---|")
        for result in results:
            print(
                f"| {result['client']} | {result['round_trips_per_s']:,.0f} |"
                f" {result['wall_us']:.1f} | {result['cpu_us']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
