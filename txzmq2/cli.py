"""
The ``txzmq2`` command (also ``python -m txzmq2``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

__all__ = ["main"]


def _demo(reactor: Any, rounds: int) -> Any:
    from twisted.internet.defer import ensureDeferred

    from txzmq2 import (
        ZmqEndpoint,
        ZmqEndpointType,
        ZmqFactory,
        ZmqREPConnection,
        ZmqREQConnection,
    )

    class EchoServer(ZmqREPConnection):
        def handleRequest(self, *parts: bytes) -> list[bytes]:
            return [b"echo: " + b" ".join(parts)]

    async def run() -> None:
        factory = ZmqFactory(reactor)
        try:
            server = EchoServer(factory, ZmqEndpoint(ZmqEndpointType.bind, "tcp://127.0.0.1:*"))
            address = server.lastEndpoint
            print(f"REP server bound to {address}")
            client = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, address))
            client.defaultRequestTimeout = 5.0
            latencies = []
            for n in range(1, rounds + 1):
                started = perf_counter()
                reply = await client.sendMsg(b"hello", b"%d" % n)
                latency = (perf_counter() - started) * 1e6
                latencies.append(latency)
                print(f"  request {n}: reply {reply!r} in {latency:.0f} us")
            latencies.sort()
            print(
                f"{rounds} round trips over tcp loopback: "
                f"median {latencies[len(latencies) // 2]:.0f} us, best {latencies[0]:.0f} us"
            )
        finally:
            await factory.shutdown()

    return ensureDeferred(run())


def _bench(argv: list[str]) -> int:
    # The suite lives in the repository, not in the installed package: find a checkout's.
    checkout = str(Path(__file__).resolve().parent.parent)
    if Path(checkout, "benchmarks", "runner.py").is_file() and checkout not in sys.path:
        sys.path.insert(0, checkout)
    try:
        runner = importlib.import_module("benchmarks.runner")
    except ImportError:
        print(
            "txzmq2 bench: the benchmark suite is not importable; "
            "run it from a source checkout of txzmq2 (it has a benchmarks/ directory)",
            file=sys.stderr,
        )
        return 2
    return int(runner.main(argv, prog="txzmq2 bench"))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="txzmq2", description="ZeroMQ for Twisted.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a REP server and a REQ client on tcp loopback and time a few round trips",
        description="Run a REP server and a REQ client on tcp loopback in one reactor, "
        "print a few request/reply round trips and their latency, and exit.",
    )
    demo.add_argument("--rounds", type=_positive, default=5, help="round trips (default 5)")
    commands.add_parser(
        "bench",
        add_help=False,
        help="run the benchmark suite against plain pyzmq (from a source checkout; "
        "txzmq2 bench --help lists its options)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``txzmq2`` command line; exits with 0 on success, 2 on a usage error."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:
        # Every argument after "bench" belongs to the suite's own parser.
        sys.exit(_bench(argv[1:]))
    args = _parser().parse_args(argv)
    from twisted.internet.task import react

    if args.command == "demo":
        react(_demo, (args.rounds,))
    sys.exit(0)
