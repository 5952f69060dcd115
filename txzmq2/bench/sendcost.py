"""
What one small message costs its sender, on the sending side alone.

Three senders, one at a time, each into a fresh blocking pyzmq PULL in its own process,
over tcp loopback, 100-byte messages:

- ``send``: a txzmq2 PUSH sending 256 messages per reactor turn with
  :meth:`~txzmq2.ZmqConnection.send`, registered as the connection's producer (paused
  while its outbound queue is above the high-water mark), as the benchmark's sender;
- ``sendMany``: the same, each turn's 256 messages in one
  :meth:`~txzmq2.ZmqConnection.sendMany` call;
- ``pyzmq``: a blocking PUSH calling ``send`` in a loop, the ceiling.

Each sender runs in its own process and reports the process's CPU time (every thread,
libzmq's I/O thread included) from its first send to the delivery of its last message, per
message. With ``--callgrind`` each runs instead twice under valgrind's callgrind, with a
small and a large count, and the difference gives the instructions per message, start-up
and shut-down left out; they do not depend on what else the machine is doing.

``--hwm 0`` lifts both high-water marks, so that libzmq takes every message at once and
the figure is the send path's own; at the default mark (1,000) the sender also pays for
meeting it, as often as timing makes it (under valgrind, which runs libzmq's I/O thread on
the sender's CPU, often). The txzmq2 senders take the native path when the extension is
built, the pure-Python one under ``TXZMQ2_PURE_PYTHON=1``.

``python -m txzmq2.bench.sendcost [--count N] [--hwm N] [--callgrind]``
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
from collections.abc import Sequence
from typing import Any

import zmq

from txzmq2.bench.common import freezeStartupHeap, runBesidePeer

__all__ = ["SENDERS", "main", "measure"]

PAYLOAD = b"x" * 100
BURST = 256
SENDERS = ("send", "sendMany", "pyzmq")


def _sink(count: int, hwm: int) -> None:
    """The peer: a blocking PULL on an OS-chosen tcp port that reads ``count`` messages."""
    context = zmq.Context()
    socket = context.socket(zmq.PULL)
    socket.set(zmq.RCVHWM, hwm)
    socket.bind("tcp://127.0.0.1:*")
    print(socket.get_string(zmq.LAST_ENDPOINT), flush=True)
    for _ in range(count):
        socket.recv()
    socket.close()
    context.term()


def _cpuSeconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sendPyzmq(endpoint: str, count: int, hwm: int) -> float:
    """Send ``count`` messages; the CPU seconds from the first send to the last delivered."""
    context = zmq.Context()
    socket = context.socket(zmq.PUSH)
    socket.set(zmq.SNDHWM, hwm)
    socket.connect(endpoint)
    started = _cpuSeconds()
    for _ in range(count):
        socket.send(PAYLOAD)
    socket.close(linger=-1)  # term() returns once every message is delivered
    context.term()
    return _cpuSeconds() - started


def _sendTxzmq2(endpoint: str, count: int, hwm: int, batch: bool) -> float:
    """Send ``count`` messages; the CPU seconds from the first send to the last delivered."""
    from twisted.internet import reactor as installed

    from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqPushConnection
    from txzmq2.bench.cases import BurstSender

    class Push(ZmqPushConnection):
        sendHighWaterMark = hwm

    reactor: Any = installed
    factory = ZmqFactory(reactor, lingerPeriod=-1)
    push = Push(factory, ZmqEndpoint(ZmqEndpointType.connect, endpoint))
    if batch:
        sender = BurstSender(
            reactor,
            lambda: None,
            count,
            consumer=push,
            burst=BURST,
            sendBatch=lambda n: push.sendMany([PAYLOAD] * n),
        )
    else:
        sender = BurstSender(reactor, lambda: push.send(PAYLOAD), count, consumer=push)

    cpu: list[float] = []

    def start() -> None:
        cpu.append(_cpuSeconds())
        sender.start()

    def sent(_: object) -> Any:
        drained: Any = push.whenSendQueueEmpty(timeout=600)
        # The factory's shutdown ends when libzmq has delivered every message (no linger).
        drained.addCallback(lambda _: factory.shutdown())
        drained.addCallback(lambda _: cpu.append(_cpuSeconds()))
        drained.addBoth(lambda _: reactor.stop())
        return drained

    sender.finished.addCallback(sent)
    reactor.callWhenRunning(start)
    reactor.run()
    if len(cpu) != 2:
        raise RuntimeError("the sender did not finish")
    return cpu[1] - cpu[0]


def _runSender(name: str, count: int, hwm: int, callgrind: bool) -> float:
    """One sender against a fresh sink: its CPU seconds, or under callgrind instructions."""
    options = ("--count", str(count), "--hwm", str(hwm))
    output, instructions = runBesidePeer(
        _module("--sink", *options),
        lambda endpoint: _module("--sender", name, "--endpoint", endpoint, *options),
        callgrind,
        timeout=1200,
    )
    if instructions is not None:
        return instructions
    return float(json.loads(output.strip().splitlines()[-1])["cpu_s"])


def measure(name: str, count: int, hwm: int = 1000, callgrind: bool = False) -> dict[str, Any]:
    """
    Measure one sender: CPU µs per message from the first send to the last delivered, or
    with ``callgrind`` instructions per message (from two runs, ``count // 10`` and
    ``count`` messages).
    """
    if not callgrind:
        return {"sender": name, "cpu_us": _runSender(name, count, hwm, False) / count * 1e6}
    small = count // 10
    fewer = _runSender(name, small, hwm, callgrind)
    more = _runSender(name, count, hwm, callgrind)
    return {"sender": name, "instructions": (more - fewer) / (count - small)}


def _module(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "txzmq2.bench.sendcost", *arguments]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m txzmq2.bench.sendcost",
        description="CPU per 100-byte message on the sending side: txzmq2's send and "
        "sendMany, and blocking pyzmq, each into a blocking PULL in another process.",
    )
    parser.add_argument("--count", type=int, default=200_000, help="messages (200,000)")
    parser.add_argument(
        "--hwm", type=int, default=1000, help="both high-water marks (1,000; 0: unbounded)"
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="count instructions per message under valgrind instead of timing",
    )
    parser.add_argument("--sink", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sender", choices=SENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.count < 10:
        parser.error("--count must be at least 10")
    if options.sink:
        _sink(options.count, options.hwm)
        return 0
    if options.sender:
        freezeStartupHeap()
        if options.sender == "pyzmq":
            cpu = _sendPyzmq(options.endpoint, options.count, options.hwm)
        else:
            batch = options.sender == "sendMany"
            cpu = _sendTxzmq2(options.endpoint, options.count, options.hwm, batch)
        print(json.dumps({"cpu_s": cpu}))
        return 0
    if options.callgrind and shutil.which("valgrind") is None:
        parser.error("--callgrind needs valgrind (apt-get install valgrind)")
    results = [measure(name, options.count, options.hwm, options.callgrind) for name in SENDERS]
    unit = "instructions" if options.callgrind else "cpu_us"
    heading = "instructions per message" if options.callgrind else "CPU µs per message"
    print(f"| sender | {heading} | vs pyzmq |\n|---|---|---|")
    base = results[-1][unit]
    digits = 0 if options.callgrind else 3
    for result in results:
        figure, ratio = result[unit], result[unit] / base
        print(f"| {result['sender']} | {figure:,.{digits}f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
