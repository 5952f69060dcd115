"""
The hosts of the fault tests, each a standalone program: ``python -m tests.faults.hosts ROLE``.

Roles (``--help`` on each lists its options):

- ``broker``: a request-reply queue (:class:`~txzmq2.ZmqProxy`, ROUTER frontend, DEALER
  backend), both bound; prints ``{"ready": "broker", "frontend": ..., "backend": ...}``.
- ``worker``: a REP server connected to a broker's backend, answering ``[name, *request]``
  (after ``--hold-ms``, so that it always holds some requests under load); prints
  ``{"ready": NAME}`` once its handshake with the broker is done.
- ``client``: a Lazy Pirate client (``timeout`` and ``retries``) with ``--lanes`` sequential
  request streams, numbered requests, one every ``--pace`` seconds per lane. It prints
  ``{"ready": "client"}`` after its first reply, then obeys one command per line on stdin:

  - ``mark NAME``: note the time as ``NAME``; answers ``{"mark": NAME, "at": t}``.
  - ``await WORKER COUNT``: answers ``{"served": WORKER, "by": NAME}`` once ``COUNT``
    requests sent after the command have been answered by ``WORKER`` (``any``: by anyone);
    ``NAME`` answered the last of them.
  - ``stop``: issue no more requests, wait for those outstanding, answer
    ``{"summary": ...}`` (every request: when sent and ended, its outcome, who answered,
    how many times its Deferred fired and how many replies to it arrived) and exit.

- ``flood``: connect to ``--connect`` (a peer that never answers), send ``--count``
  requests (each with a ``--timeout`` far away), print ``{"stopping": ...}`` and stop the
  reactor with all of them in flight; once the reactor has stopped print
  ``{"summary": ...}``: how the requests' Deferreds ended, and any timer left active.

Times are ``time.monotonic()`` seconds of the host's own clock. Logged warnings and errors go
to stderr; the client and flood summaries count logged failures.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from time import monotonic
from typing import Any

__all__ = ["main"]

OUTCOME_REPLY = "reply"
"""The outcome of a request answered with a reply (others are exception class names)."""

CONNECT_TIMEOUT = 20.0


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _installReactor(name: str) -> Any:
    if name == "asyncio":
        import asyncio

        from twisted.internet import asyncioreactor

        asyncioreactor.install(asyncio.new_event_loop())
    from twisted.internet import reactor

    return reactor


class _FailureCounter:
    """Counts ``log_failure`` events; warnings and worse go to stderr."""

    def __init__(self) -> None:
        self.count = 0

    def start(self) -> None:
        from twisted.logger import (
            FilteringLogObserver,
            LogLevel,
            LogLevelFilterPredicate,
            globalLogBeginner,
            textFileLogObserver,
        )

        toStderr = FilteringLogObserver(
            textFileLogObserver(sys.stderr),
            [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)],
        )
        globalLogBeginner.beginLoggingTo([toStderr, self._observe], redirectStandardIO=False)

    def _observe(self, event: dict[str, Any]) -> None:
        if "log_failure" in event:
            self.count += 1


def _react(
    reactorName: str, main: Callable[[Any, _FailureCounter], Coroutine[Any, Any, None]]
) -> None:
    reactor = _installReactor(reactorName)
    from twisted.internet import task
    from twisted.internet.defer import ensureDeferred

    failures = _FailureCounter()
    failures.start()
    task.react(lambda _: ensureDeferred(main(reactor, failures)), _reactor=reactor)


# -- broker and worker --------------------------------------------------------------------------


def _broker(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet.defer import Deferred

        from txzmq2 import (
            ZmqDealerConnection,
            ZmqEndpoint,
            ZmqEndpointType,
            ZmqFactory,
            ZmqProxy,
            ZmqRouterConnection,
        )

        factory = ZmqFactory(reactor)
        frontend = ZmqRouterConnection(factory, ZmqEndpoint(ZmqEndpointType.bind, args.frontend))
        backend = ZmqDealerConnection(factory, ZmqEndpoint(ZmqEndpointType.bind, args.backend))
        ZmqProxy(factory, frontend, backend)
        _say(
            {
                "ready": "broker",
                "frontend": frontend.lastEndpoint,
                "backend": backend.lastEndpoint,
            }
        )
        await Deferred()  # serve until killed

    _react(args.reactor, main)


def _worker(args: argparse.Namespace) -> None:
    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet.defer import Deferred
        from twisted.internet.task import deferLater

        from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqREPConnection

        name = args.name.encode()

        class Worker(ZmqREPConnection):
            reconnectInterval = args.reconnect_ms
            monitored = True  # whenConnected after the connect

            def handleRequest(self, *parts: bytes) -> Any:
                # Tagged with the worker's name: the client sees who answered.
                reply = [name, *parts]
                if args.hold_ms:
                    return deferLater(reactor, args.hold_ms / 1000, lambda: reply)
                return reply

        worker = Worker(ZmqFactory(reactor), ZmqEndpoint(ZmqEndpointType.connect, args.connect))
        await worker.whenConnected(CONNECT_TIMEOUT)
        _say({"ready": args.name})
        await Deferred()  # serve until killed

    _react(args.reactor, main)


# -- client -------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """One request of the client: what happened to it, as the summary reports it."""

    n: int
    sent: float
    ended: float | None = None
    outcome: str | None = None
    """``"reply"`` or the exception class name; ``None`` while it has not ended."""
    worker: str | None = None
    """Who answered (the reply's first frame)."""
    fired: int = 0
    """How many times the request's Deferred fired: exactly once is the contract."""
    wire: int = 0
    """Replies to this request that reached the client, dropped ones included."""


@dataclass
class _Await:
    worker: str
    remaining: int
    since: float


Send = Callable[[bytes], Any]
"""Sends one numbered request; returns the Deferred of its reply frames."""
Connect = Callable[[argparse.Namespace, Any, Any, list[RequestRecord]], Coroutine[Any, Any, Any]]
"""Makes a client on (args, reactor, factory, records), waits until it can send, and returns
``(send, pending)``: a :data:`Send` and a function counting the requests still pending."""


def _client(args: argparse.Namespace) -> None:
    async def connect(
        args: argparse.Namespace, reactor: Any, factory: Any, records: list[RequestRecord]
    ) -> tuple[Send, Callable[[], int]]:
        from txzmq2 import Message, ZmqEndpoint, ZmqEndpointType, ZmqREQConnection

        class Client(ZmqREQConnection):
            reconnectInterval = args.reconnect_ms

            def messageReceived(self, message: Message) -> None:
                # Count every reply on the wire, the late ones the connection drops included:
                # [requestId, b"", worker, number].
                if len(message) == 4 and message[3].isdigit():
                    number = int(message[3])
                    if number < len(records):
                        records[number].wire += 1
                super().messageReceived(message)

        client = Client(factory, ZmqEndpoint(ZmqEndpointType.connect, args.connect))
        await client.whenConnected(CONNECT_TIMEOUT)

        def send(payload: bytes) -> Any:
            return client.sendMsg(payload, timeout=args.timeout, retries=args.retries)

        return send, lambda: client.pendingRequests

    runClient(args, connect)


def runClient(args: argparse.Namespace, connect: Connect) -> None:
    """
    The client role around any request-reply client that ``connect`` makes: ``--lanes``
    sequential streams of numbered requests, and the commands on stdin (see the module).
    """

    async def main(reactor: Any, failures: _FailureCounter) -> None:
        from twisted.internet import stdio
        from twisted.internet.defer import Deferred, DeferredList
        from twisted.internet.task import deferLater
        from twisted.protocols.basic import LineReceiver

        from txzmq2 import ZmqFactory

        records: list[RequestRecord] = []
        marks: dict[str, float] = {}
        awaits: list[_Await] = []
        ready: Deferred[None] = Deferred()
        stopping = False
        factory = ZmqFactory(reactor)

        def ended(result: Any, record: RequestRecord) -> None:
            record.fired += 1
            record.ended = monotonic()
            if isinstance(result, list):
                record.outcome = OUTCOME_REPLY
                record.worker = result[0].decode()
                if not ready.called:
                    ready.callback(None)
                for waiting in list(awaits):
                    if record.sent >= waiting.since and waiting.worker in ("any", record.worker):
                        waiting.remaining -= 1
                        if waiting.remaining == 0:
                            awaits.remove(waiting)
                            commands.say({"served": waiting.worker, "by": record.worker})
            else:
                record.outcome = type(result.value).__name__

        async def lane() -> None:
            while not stopping:
                record = RequestRecord(len(records), monotonic())
                records.append(record)
                request = send(b"%d" % record.n)
                request.addBoth(ended, record)
                await request
                await deferLater(reactor, args.pace, lambda: None)

        lanes: list[Deferred[None]] = []
        finished: Deferred[None] = Deferred()

        async def stop() -> None:
            nonlocal stopping
            stopping = True
            # Every lane ends once its request has (within timeout * (retries + 1)).
            await DeferredList(lanes)
            summary = {
                "timeout": args.timeout,
                "retries": args.retries,
                "marks": marks,
                "requests": [asdict(record) for record in records],
                "pendingAtEnd": pending(),
                "loggedFailures": failures.count,
            }
            commands.say({"summary": summary})
            await factory.shutdown()
            commands.transport.loseConnection()

        class Commands(LineReceiver):
            delimiter = b"\n"

            def say(self, message: dict[str, Any]) -> None:
                self.transport.write(json.dumps(message).encode() + b"\n")

            def lineReceived(self, line: bytes) -> None:
                words = line.decode().split()
                if words[:1] == ["mark"]:
                    marks[words[1]] = monotonic()
                    self.say({"mark": words[1], "at": marks[words[1]]})
                elif words[:1] == ["await"]:
                    awaits.append(_Await(words[1], int(words[2]), monotonic()))
                elif words == ["stop"]:
                    Deferred.fromCoroutine(stop()).addErrback(finished.errback)
                else:
                    self.say({"error": f"unknown command {line!r}"})

            def connectionLost(self, reason: Any = None) -> None:
                if not finished.called:
                    finished.callback(None)

        commands = Commands()
        stdio.StandardIO(commands, reactor=reactor)
        send, pending = await connect(args, reactor, factory, records)
        for index in range(args.lanes):
            # Lane starts are spread over one pace, so their requests interleave evenly.
            lanes.append(deferLater(reactor, index * args.pace / args.lanes, lambda: None))
            lanes[-1].addCallback(lambda _: Deferred.fromCoroutine(lane()))
        await ready
        commands.say({"ready": "client"})
        await finished

    _react(args.reactor, main)


# -- flood --------------------------------------------------------------------------------------


def _flood(args: argparse.Namespace) -> None:
    reactor = _installReactor(args.reactor)
    from twisted.internet.defer import Deferred

    from txzmq2 import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqREQConnection

    failures = _FailureCounter()
    failures.start()
    fired: Counter[int] = Counter()
    outcomes: Counter[str] = Counter()
    times: dict[str, float] = {}
    timers: list[str] = []
    factory = ZmqFactory(reactor)
    factory.registerForShutdown()

    def ended(result: Any, number: int) -> None:
        fired[number] += 1
        outcomes[OUTCOME_REPLY if isinstance(result, list) else type(result.value).__name__] += 1

    async def main() -> None:
        client = ZmqREQConnection(factory, ZmqEndpoint(ZmqEndpointType.connect, args.connect))
        await client.whenConnected(CONNECT_TIMEOUT)
        payload = b"x" * args.size
        for number in range(args.count):
            client.sendMsg(payload, timeout=args.timeout).addBoth(ended, number)
        times["stop"] = monotonic()
        _say(
            {
                "stopping": {
                    "at": times["stop"],
                    "pending": client.pendingRequests,
                    "queued": client.sendQueueLength,
                    "lingerMs": factory.lingerPeriod,
                }
            }
        )
        reactor.stop()

    def start() -> None:
        Deferred.fromCoroutine(main()).addErrback(lambda failure: failure.printTraceback())

    def stopped() -> None:
        times["stopped"] = monotonic()
        # Every request's timer must have gone with it.
        timers.extend(repr(call) for call in reactor.getDelayedCalls() if call.active())

    reactor.addSystemEventTrigger("after", "shutdown", stopped)
    reactor.callWhenRunning(start)
    reactor.run()
    _say(
        {
            "summary": {
                "count": args.count,
                "outcomes": dict(outcomes),
                "unfired": args.count - len(fired),
                "firedMoreThanOnce": sum(1 for count in fired.values() if count > 1),
                "stopSeconds": times.get("stopped", monotonic()) - times.get("stop", 0.0),
                "timersLeft": timers,
                "loggedFailures": failures.count,
            }
        }
    )


# -- command line -------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.hosts", description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True)

    def role(name: str, run: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        sub = roles.add_parser(name)
        sub.set_defaults(run=run)
        sub.add_argument("--reactor", choices=("default", "asyncio"), default="default")
        sub.add_argument(
            "--reconnect-ms", type=int, default=100, help="ZMQ_RECONNECT_IVL (default 100)"
        )
        return sub

    broker = role("broker", _broker)
    broker.add_argument("--frontend", default="tcp://127.0.0.1:*", help="bind for clients")
    broker.add_argument("--backend", default="tcp://127.0.0.1:*", help="bind for workers")
    worker = role("worker", _worker)
    worker.add_argument("--name", required=True, help="tag of every reply")
    worker.add_argument("--connect", required=True, help="the broker's backend")
    worker.add_argument(
        "--hold-ms", type=int, default=0, help="hold each request this long before answering"
    )
    client = role("client", _client)
    client.add_argument("--connect", required=True, help="the broker's frontend")
    client.add_argument("--timeout", type=float, default=0.5, help="seconds per try")
    client.add_argument("--retries", type=int, default=3)
    client.add_argument("--lanes", type=int, default=1, help="concurrent request streams")
    client.add_argument("--pace", type=float, default=0.01, help="seconds between requests")
    flood = role("flood", _flood)
    flood.add_argument("--connect", required=True, help="a peer that never answers")
    flood.add_argument("--count", type=int, default=5000)
    flood.add_argument("--size", type=int, default=4096, help="request payload bytes")
    flood.add_argument("--timeout", type=float, default=60.0, help="of each request")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Run the role named on the command line."""
    args = _parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
