"""
Soak: many request-replies through a broker, with memory and bookkeeping measured at the
start and at the end. ``python -m txzmq2.bench.soak`` runs 50,000 (a CI-sized run);
``python -m txzmq2.bench.soak --count 1000000`` is the full soak.

One process, one reactor: a :class:`~txzmq2.ZmqREQConnection` client, a
:class:`~txzmq2.ZmqProxy` queue (ROUTER frontend, DEALER backend) and an echo
:class:`~txzmq2.ZmqREPConnection` server, over tcp loopback, with ``--inflight`` requests
outstanding, each with a timeout (so each arms and cancels a timer).

After a warm-up (allocators and caches reach their working size) the baseline is taken:
resident memory (``VmRSS``), Python objects tracked by the garbage collector, pending
requests (client and server), active timers (the reactor's delayed calls), connections and
queued sends. The same figures are taken after the last reply (once the passes it left
scheduled have run), and RSS along the way.

Checks: the bookkeeping is back to its baseline exactly, no request failed, RSS grew by at
most ``--max-rss-growth`` MiB and the object count by at most ``--max-object-growth``. The
figures go to stdout as a markdown table (or one JSON object with ``--json``); the exit
status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

__all__ = ["Snapshot", "SoakResult", "main", "soak"]

DEFAULT_COUNT = 50_000
WARM_UP = 5_000
INFLIGHT = 100
REQUEST_TIMEOUT = 10.0
"""Seconds each request may take; a stalled soak fails its requests instead of hanging."""
CONNECT_TIMEOUT = 10.0
SAMPLES = 10
"""RSS samples taken along the way (one every tenth of the run)."""


@dataclass(frozen=True)
class Snapshot:
    """The figures compared between the start and the end of a soak."""

    rss_kb: int
    python_objects: int
    client_pending: int
    server_pending: int
    active_timers: int
    connections: int
    queued_sends: int


@dataclass
class SoakResult:
    """A soak's figures and checks; its fields are the keys of ``--json`` output."""

    count: int
    inflight: int
    reactor: str
    completed: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    per_s: float = 0.0
    start: Snapshot | None = None
    end: Snapshot | None = None
    rss_samples_kb: list[int] = field(default_factory=list)
    timers_left: list[str] = field(default_factory=list)
    """The timers active at the end, if any (what a leak of timers would show)."""
    checks: dict[str, bool] = field(default_factory=dict)
    passed: bool = False


def _rssKb() -> int:
    """Resident memory now (not the peak), in KiB, from ``/proc/self/status``."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _activeTimers(reactor: Any) -> list[Any]:
    return [call for call in reactor.getDelayedCalls() if call.active()]


async def _settled(reactor: Any) -> None:
    """
    Return once the reactor has no active timer (or after a second): the last reply can
    leave a read or flush pass scheduled, which is work in progress, not a leak.
    """
    from twisted.internet.task import deferLater

    deadline = perf_counter() + 1.0
    while _activeTimers(reactor) and perf_counter() < deadline:
        await deferLater(reactor, 0.001, lambda: None)


def _snapshot(reactor: Any, factory: Any, client: Any, server: Any) -> Snapshot:
    gc.collect()
    return Snapshot(
        rss_kb=_rssKb(),
        python_objects=len(gc.get_objects()),
        client_pending=client.pendingRequests,
        server_pending=server.pendingRequests,
        active_timers=len(_activeTimers(reactor)),
        connections=len(factory.connections),
        queued_sends=sum(connection.sendQueueLength for connection in factory.connections),
    )


async def _requests(
    reactor: Any, client: Any, count: int, inflight: int, onProgress: Any = None
) -> tuple[int, int]:
    """
    Run ``count`` request-replies with ``inflight`` outstanding; stop issuing after the
    first failure. Return how many were answered and how many failed.
    """
    from twisted.internet.defer import Deferred

    done: Deferred[None] = Deferred()
    issued = answered = failed = 0
    payload = b"x" * 64

    def issue() -> None:
        nonlocal issued
        issued += 1
        client.sendMsg(payload, timeout=REQUEST_TIMEOUT).addCallbacks(gotReply, lost)

    def ended() -> None:
        if issued < count and not failed:
            issue()
        elif answered + failed == issued and not done.called:
            done.callback(None)

    def gotReply(_: object) -> None:
        nonlocal answered
        answered += 1
        if onProgress is not None:
            onProgress(answered)
        ended()

    def lost(_: object) -> None:
        nonlocal failed
        failed += 1
        ended()

    for _ in range(min(inflight, count)):
        issue()
    if count:
        await done
    return answered, failed


async def soak(reactor: Any, count: int, inflight: int, reactorName: str) -> SoakResult:
    """Run the soak on a running ``reactor``; return its figures (checks not yet made)."""
    from txzmq2 import (
        ZmqDealerConnection,
        ZmqEndpoint,
        ZmqEndpointType,
        ZmqFactory,
        ZmqProxy,
        ZmqREQConnection,
        ZmqRouterConnection,
    )
    from txzmq2.bench.cases import EchoServer

    bind, connect = ZmqEndpointType.bind, ZmqEndpointType.connect
    result = SoakResult(count=count, inflight=inflight, reactor=reactorName)
    factory = ZmqFactory(reactor)
    try:
        frontend = ZmqRouterConnection(factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
        backend = ZmqDealerConnection(factory, ZmqEndpoint(bind, "tcp://127.0.0.1:*"))
        ZmqProxy(factory, frontend, backend)
        server = EchoServer(factory, ZmqEndpoint(connect, backend.lastEndpoint), monitored=True)
        client = ZmqREQConnection(factory, ZmqEndpoint(connect, frontend.lastEndpoint))
        await server.whenConnected(CONNECT_TIMEOUT)
        await client.whenConnected(CONNECT_TIMEOUT)
        await _requests(reactor, client, WARM_UP, inflight)
        await _settled(reactor)
        result.start = _snapshot(reactor, factory, client, server)
        every = max(1, count // SAMPLES)

        def sample(answered: int) -> None:
            if answered % every == 0:
                result.rss_samples_kb.append(_rssKb())

        started = perf_counter()
        result.completed, result.failed = await _requests(reactor, client, count, inflight, sample)
        result.elapsed_s = round(perf_counter() - started, 3)
        result.per_s = round(result.completed / result.elapsed_s, 1) if result.elapsed_s else 0
        await _settled(reactor)
        result.end = _snapshot(reactor, factory, client, server)
        result.timers_left = [repr(call) for call in _activeTimers(reactor)]
    finally:
        await factory.shutdown()
    return result


def check(result: SoakResult, maxRssGrowthMib: float, maxObjectGrowth: int) -> SoakResult:
    """Fill in ``result.checks`` and ``result.passed``."""
    start, end = result.start, result.end
    assert start is not None and end is not None
    checks = {
        "every request answered": result.completed == result.count and result.failed == 0,
        f"RSS growth <= {maxRssGrowthMib:g} MiB": end.rss_kb - start.rss_kb
        <= maxRssGrowthMib * 1024,
        f"object growth <= {maxObjectGrowth:,}": end.python_objects - start.python_objects
        <= maxObjectGrowth,
    }
    for name in (
        "client_pending",
        "server_pending",
        "active_timers",
        "connections",
        "queued_sends",
    ):
        checks[f"{name.replace('_', ' ')} unchanged"] = getattr(end, name) == getattr(start, name)
    result.checks = checks
    result.passed = all(checks.values())
    return result


_ROWS = (
    ("RSS MiB", "rss_kb"),
    ("Python objects", "python_objects"),
    ("pending requests (client)", "client_pending"),
    ("pending requests (server)", "server_pending"),
    ("active timers", "active_timers"),
    ("connections", "connections"),
    ("queued sends", "queued_sends"),
)


def markdownTable(result: SoakResult) -> str:
    """The figures at the start and the end, RSS along the way, and the checks."""
    start, end = result.start, result.end
    assert start is not None and end is not None

    def show(name: str, value: int) -> str:
        return f"{value / 1024:,.1f}" if name == "rss_kb" else f"{value:,}"

    lines = [
        f"soak: {result.completed:,} of {result.count:,} request-replies through a ZmqProxy "
        f"broker (tcp, {result.inflight} in flight, {result.reactor} reactor) in "
        f"{result.elapsed_s:,.1f} s ({result.per_s:,.0f}/s), {result.failed} failed",
        "",
        "| figure | start | end | change |",
        "|---|---:|---:|---:|",
    ]
    for title, name in _ROWS:
        first, last = getattr(start, name), getattr(end, name)
        change = show(name, last - first)
        lines.append(
            f"| {title} | {show(name, first)} | {show(name, last)} | "
            f"{'+' if last >= first else ''}{change} |"
        )
    samples = " ".join(f"{kb / 1024:.1f}" for kb in result.rss_samples_kb)
    lines += ["", f"RSS along the way (MiB): {samples}", ""]
    lines += [f"- [{'x' if ok else ' '}] {name}" for name, ok in result.checks.items()]
    lines.append("\nPASSED" if result.passed else "\nFAILED")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m txzmq2.bench.soak",
        description="Request-replies through a broker, checking that nothing accumulates.",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"request-replies after the warm-up (default {DEFAULT_COUNT:,}; "
        "the full soak is 1000000)",
    )
    parser.add_argument(
        "--inflight", type=int, default=INFLIGHT, help=f"outstanding requests ({INFLIGHT})"
    )
    parser.add_argument(
        "--max-rss-growth",
        type=float,
        default=4.0,
        metavar="MIB",
        help="largest RSS growth that passes, in MiB (default 4)",
    )
    parser.add_argument(
        "--max-object-growth",
        type=int,
        default=1000,
        metavar="N",
        help="largest growth of gc-tracked objects that passes (default 1000)",
    )
    parser.add_argument("--reactor", choices=("default", "asyncio"), default="default")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak; return the exit status (0 when every check passed, else 1)."""
    args = _parser().parse_args(argv)
    if args.reactor == "asyncio":
        import asyncio

        from twisted.internet import asyncioreactor

        asyncioreactor.install(asyncio.new_event_loop())  # type: ignore[no-untyped-call, unused-ignore]
    from twisted.internet import reactor as installed
    from twisted.internet.defer import ensureDeferred

    reactor: Any = installed
    outcome: list[Any] = []

    def finished(value: Any) -> None:
        outcome.append(value)
        reactor.stop()

    def start() -> None:
        run = soak(reactor, args.count, args.inflight, args.reactor)
        ensureDeferred(run).addBoth(finished)

    print(f"soak: {args.count:,} request-replies ...", file=sys.stderr, flush=True)
    reactor.callWhenRunning(start)
    reactor.run()
    if not isinstance(outcome[0], SoakResult):
        outcome[0].printTraceback(file=sys.stderr)
        return 1
    result = check(outcome[0], args.max_rss_growth, args.max_object_growth)
    print(json.dumps(asdict(result)) if args.json else markdownTable(result))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
