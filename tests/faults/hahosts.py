"""
The hosts of the ``txzmq2.ha`` fault tests, each a standalone program:
``python -m tests.faults.hahosts ROLE``.

Roles (``--help`` on each lists its options):

- ``bstar``: a Binary Star node (``--primary`` or not) serving a Freelance server at
  ``--frontend`` that answers ``[NAME, *request]``; prints ``{"ready": NAME}``, then
  ``{"state": STATE, "at": t}`` on every transition.
- ``flserver``: a Freelance server at ``--bind`` answering ``[NAME, *request]``; prints
  ``{"ready": NAME}``.
- ``flclient``: the client role of :mod:`tests.faults.hosts` (lanes of numbered requests,
  ``mark``/``await``/``stop`` on stdin) over a Freelance client of the ``--connect``
  servers, in order.
- ``mdbroker``: a Majordomo broker bound at ``--bind``; prints ``{"ready": "mdbroker"}``.
- ``mdworker``: a Majordomo worker of ``echo`` answering ``[NAME, *request]`` after
  ``--hold-ms``; prints ``{"handling": request}`` as each request arrives.
- ``titanic``: a Titanic service on ``--broker`` storing in ``--database``; prints
  ``{"ready": "titanic"}``.
- ``ticlient``: a Titanic client; on stdin ``submit COUNT`` (answers ``{"submitted": ids}``),
  ``collect`` (polls until every reply is in: ``{"collected": {id: reply}}``), ``close``
  (closes each, then asks for its reply again: ``{"closed": {id: outcome}}``) and ``stop``
  (``{"summary": ...}``: how many times each call's Deferred fired; then it exits).

Times are ``time.monotonic()`` seconds, one clock for every process of the machine.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from time import monotonic
from typing import Any

from tests.faults.hosts import (
    RequestRecord,
    _FailureCounter,
    _react,
    _say,
    runClient,
)

__all__ = ["main"]

HEARTBEAT_MDP = 0.25
"""Majordomo heartbeat of every part (seconds)."""


def _named(name: str) -> Callable[..., list[bytes]]:
    tag = name.encode()
    return lambda *frames: [tag, *frames]


def _bstar(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet.defer import Deferred

        from txzmq2 import ZmqFactory
        from txzmq2.ha import BinaryStar, FreelanceServer

        factory = ZmqFactory(reactor)
        node = BinaryStar(factory, args.primary, args.local, args.remote, args.heartbeat)
        server = FreelanceServer(factory, args.frontend, _named(args.name))
        node.serve(server)

        def say() -> None:
            _say({"state": node.state.value, "at": monotonic()})

        node.onActive = node.onPassive = say
        _say({"ready": args.name})
        await Deferred()  # serve until killed

    _react(args.reactor, main)


def _flserver(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet.defer import Deferred

        from txzmq2 import ZmqFactory
        from txzmq2.ha import FreelanceServer

        FreelanceServer(ZmqFactory(reactor), args.bind, _named(args.name))
        _say({"ready": args.name})
        await Deferred()  # serve until killed

    _react(args.reactor, main)


def _flclient(args: argparse.Namespace) -> None:
    async def connect(
        args: argparse.Namespace, reactor: Any, factory: Any, records: list[RequestRecord]
    ) -> tuple[Callable[[bytes], Any], Callable[[], int]]:
        from txzmq2.ha import FreelanceClient

        client = FreelanceClient(
            factory, args.connect, args.timeout, args.retries, pingInterval=args.ping
        )
        return client.request, lambda: client.pendingRequests

    runClient(args, connect)


def _mdbroker(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet.defer import Deferred

        from txzmq2 import ZmqEndpoint, ZmqFactory
        from txzmq2.mdp import MajordomoBroker

        endpoint = ZmqEndpoint("bind", args.bind)
        MajordomoBroker(ZmqFactory(reactor), endpoint, heartbeatInterval=HEARTBEAT_MDP)
        _say({"ready": "mdbroker"})
        await Deferred()  # serve until killed

    _react(args.reactor, main)


def _mdworker(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet.defer import Deferred
        from twisted.internet.task import deferLater

        from txzmq2 import ZmqEndpoint, ZmqFactory
        from txzmq2.mdp import MajordomoWorker

        reply = _named(args.name)

        def handle(*frames: bytes) -> Any:
            _say({"handling": [frame.decode() for frame in frames]})
            return deferLater(reactor, args.hold_ms / 1000, reply, *frames)

        endpoint = ZmqEndpoint("connect", args.broker)
        MajordomoWorker(
            ZmqFactory(reactor),
            endpoint,
            "echo",
            handle,
            heartbeatInterval=HEARTBEAT_MDP,
            reconnectDelay=HEARTBEAT_MDP,
        )
        await Deferred()  # serve until killed

    _react(args.reactor, main)


def _titanic(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet.defer import Deferred

        from txzmq2 import ZmqFactory
        from txzmq2.ha import TitanicService

        TitanicService(
            ZmqFactory(reactor),
            args.broker,
            args.database,
            dispatchTimeout=args.dispatch_timeout,
            retryDelay=0.1,
            heartbeatInterval=HEARTBEAT_MDP,
        )
        _say({"ready": "titanic"})
        await Deferred()  # serve until killed

    _react(args.reactor, main)


def _ticlient(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet import stdio
        from twisted.internet.defer import Deferred, gatherResults
        from twisted.internet.task import deferLater
        from twisted.protocols.basic import LineReceiver

        from txzmq2 import ZmqFactory
        from txzmq2.ha import TitanicClient

        factory = ZmqFactory(reactor)
        client = TitanicClient(factory, args.broker, timeout=args.timeout, retries=args.retries)
        fired: Counter[int] = Counter()
        calls = 0
        ids: list[str] = []
        finished: Deferred[None] = Deferred()

        def counted(call: Deferred[Any]) -> Deferred[Any]:
            nonlocal calls
            number = calls
            calls += 1

            def count(result: Any) -> Any:
                fired[number] += 1
                return result

            return call.addBoth(count)

        async def submit(count: int) -> None:
            submitted = await gatherResults(
                [counted(client.submit("echo", b"%d" % n)) for n in range(count)]
            )
            ids.extend(submitted)
            commands.say({"submitted": submitted})

        async def collect() -> None:
            replies: dict[str, list[str]] = {}
            deadline = monotonic() + args.collect_timeout
            while len(replies) < len(ids) and monotonic() < deadline:
                for requestId in ids:
                    if requestId not in replies:
                        reply = await counted(client.reply(requestId))
                        if reply is not None:
                            replies[requestId] = [frame.decode() for frame in reply]
                await deferLater(reactor, 0.05)
            commands.say({"collected": replies})

        async def close() -> None:
            outcomes: dict[str, str] = {}
            for requestId in ids:
                await counted(client.close(requestId))
                try:
                    await counted(client.reply(requestId))
                    outcomes[requestId] = "reply"
                except Exception as error:
                    outcomes[requestId] = type(error).__name__
            commands.say({"closed": outcomes})

        async def stop() -> None:
            summary = {
                "calls": calls,
                "unfired": calls - len(fired),
                "firedMoreThanOnce": sum(1 for count in fired.values() if count > 1),
                "loggedFailures": failures.count,
            }
            commands.say({"summary": summary})
            client.shutdown()
            await factory.shutdown()
            commands.transport.loseConnection()

        class Commands(LineReceiver):
            delimiter = b"\n"

            def say(self, message: dict[str, Any]) -> None:
                self.transport.write(json.dumps(message).encode() + b"\n")

            def lineReceived(self, line: bytes) -> None:
                words = line.decode().split()
                if words[:1] == ["submit"]:
                    work = submit(int(words[1]))
                elif words == ["collect"]:
                    work = collect()
                elif words == ["close"]:
                    work = close()
                elif words == ["stop"]:
                    work = stop()
                else:
                    self.say({"error": f"unknown command {line!r}"})
                    return
                Deferred.fromCoroutine(work).addErrback(
                    lambda failure: self.say({"error": failure.getTraceback()})
                )

            def connectionLost(self, reason: Any = None) -> None:
                if not finished.called:
                    finished.callback(None)

        commands = Commands()
        stdio.StandardIO(commands, reactor=reactor)
        _say({"ready": "ticlient"})
        await finished

    _react(args.reactor, main)


# -- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.hahosts", description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True)

    def role(name: str, run: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        sub = roles.add_parser(name)
        sub.set_defaults(run=run)
        sub.add_argument("--reactor", choices=("default", "asyncio"), default="default")
        return sub

    bstar = role("bstar", _bstar)
    bstar.add_argument("--name", required=True, help="tag of every reply")
    bstar.add_argument("--primary", action="store_true", help="the primary (else the backup)")
    bstar.add_argument("--local", required=True, help="bind: where this node publishes state")
    bstar.add_argument("--remote", required=True, help="connect: the peer's state")
    bstar.add_argument("--frontend", required=True, help="bind: the Freelance server")
    bstar.add_argument("--heartbeat", type=float, default=0.5)
    flserver = role("flserver", _flserver)
    flserver.add_argument("--name", required=True, help="tag of every reply")
    flserver.add_argument("--bind", required=True)
    flclient = role("flclient", _flclient)
    flclient.add_argument("--connect", action="append", required=True, help="a server, in order")
    flclient.add_argument("--timeout", type=float, default=0.25, help="seconds per try")
    flclient.add_argument("--retries", type=int, default=20)
    flclient.add_argument("--ping", type=float, default=0.1, help="seconds between pings")
    flclient.add_argument("--lanes", type=int, default=1, help="concurrent request streams")
    flclient.add_argument("--pace", type=float, default=0.01, help="seconds between requests")
    mdbroker = role("mdbroker", _mdbroker)
    mdbroker.add_argument("--bind", required=True)
    mdworker = role("mdworker", _mdworker)
    mdworker.add_argument("--name", required=True, help="tag of every reply")
    mdworker.add_argument("--broker", required=True)
    mdworker.add_argument("--hold-ms", type=int, default=0, help="hold each request this long")
    titanic = role("titanic", _titanic)
    titanic.add_argument("--broker", required=True)
    titanic.add_argument("--database", required=True)
    titanic.add_argument("--dispatch-timeout", type=float, default=1.0)
    ticlient = role("ticlient", _ticlient)
    ticlient.add_argument("--broker", required=True)
    ticlient.add_argument("--timeout", type=float, default=1.0, help="seconds per try")
    ticlient.add_argument("--retries", type=int, default=20)
    ticlient.add_argument("--collect-timeout", type=float, default=20.0)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the role named on the command line."""
    args = _parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
