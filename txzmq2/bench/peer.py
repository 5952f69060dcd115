"""
The far side of a measurement in a process of its own: ``python -m txzmq2.bench.peer SPEC``.

It binds, prints ``{"endpoint": ...}``, then reads commands from stdin: ``go`` starts the
sending (PUSH, PUB), ``stop`` or end of file ends it, after which it prints its own peak RSS
(and, for the event-loop implementations, its loop's longest stall) as one JSON line. See
:class:`txzmq2.bench.common.PeerProcess` for the other end.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any

from txzmq2.bench.common import Spec, freezeStartupHeap, peakRssKb

__all__ = ["main"]


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _readCommands(handle: Callable[[str], object]) -> None:
    """Pass each stdin command to ``handle`` (from a daemon thread); end of file is ``stop``."""

    def read() -> None:
        for line in sys.stdin:
            handle(line.strip())
        handle("stop")

    threading.Thread(target=read, name="peer-commands", daemon=True).start()


def _runOnReactor(spec: Spec) -> None:
    """The far side in txzmq2 or txZMQ, on this process's reactor, watched for stalls."""
    from twisted.internet import reactor as installed
    from twisted.internet.defer import maybeDeferred

    from txzmq2.bench.cases import StallMonitor, startProbes

    if spec.impl == "txzmq":
        from txzmq2.bench.txzmq_cases import serve
    else:
        from txzmq2.bench.cases import serve

    reactor: Any = installed
    side = serve(reactor, spec)
    stall = StallMonitor(reactor)
    # A PUB publishes probes until told to go: the subscriber's sign that it is subscribed.
    probes = startProbes(reactor, side.probe) if side.probe is not None else None
    stopping = False

    def stopProbes() -> None:
        if probes is not None and probes.running:
            probes.stop()

    def stopReactor(_: object) -> None:
        reactor.stop()

    def handle(command: str) -> None:
        nonlocal stopping
        if command == "go" and side.send is not None:
            stopProbes()
            stall.start()
            side.send()
        elif command == "stop" and not stopping:
            stopping = True
            stopProbes()
            _say(rss_kb=peakRssKb(), max_stall_s=stall.stop())
            maybeDeferred(side.shutdown).addBoth(stopReactor)

    freezeStartupHeap()
    if side.send is None:
        stall.start()  # a request server: watched from the start
    _say(endpoint=side.endpoint)
    _readCommands(lambda command: reactor.callFromThread(handle, command))
    reactor.run()


def _runPyzmq(spec: Spec) -> None:
    import zmq

    from txzmq2.bench.baseline import runServerSide

    go, stop = threading.Event(), threading.Event()

    def handle(command: str) -> None:
        (go if command == "go" else stop).set()

    context: zmq.Context[Any] = zmq.Context()
    freezeStartupHeap()
    _readCommands(handle)
    try:
        runServerSide(context, spec, lambda endpoint: _say(endpoint=endpoint), go, stop)
    finally:
        context.destroy(linger=100)
    _say(rss_kb=peakRssKb(), max_stall_s=None)


def main(argv: list[str] | None = None) -> None:
    """Run the peer described by the JSON :class:`~txzmq2.bench.common.Spec` in ``argv[0]``."""
    arguments = sys.argv[1:] if argv is None else argv
    spec = Spec.fromJson(arguments[0])
    if spec.impl in ("pyzmq", "pyzmq_frames"):
        _runPyzmq(spec)
    elif spec.impl in ("zmq_asyncio", "aiozmq"):
        from txzmq2.bench.asyncio_cases import runPeer

        freezeStartupHeap()
        runPeer(spec, _say, _readCommands)
    else:
        _runOnReactor(spec)


if __name__ == "__main__":
    main()
