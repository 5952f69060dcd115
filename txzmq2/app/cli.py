"""
The ``txzmq2`` command (also ``python -m txzmq2``).

Every subcommand is one :class:`_Command` in :data:`_COMMANDS`: its name, a one-line
summary, a description, a function adding its arguments to an argparse parser, and a
function running it with the parsed arguments and returning the exit status. To add a
command, write those two functions and add an entry where it should appear in
``txzmq2 --help``.

Long-running commands (the devices, and the one-liners of :mod:`txzmq2.app._oneliners`) are
Twisted services run by :func:`_serve`: logs go to stderr through ``twisted.logger``, and
SIGINT or SIGTERM stops the service, closing its sockets with linger, and exits with 0.

Exit status: 0 on success, 1 when a command failed at its job (a request went unanswered),
2 for bad usage: an unknown option, a bad value, a malformed address or one libzmq refuses
(in use, no such interface). Bad usage is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any, NoReturn, cast

from txzmq2.app._oneliners import (
    OneLinerService,
    PubService,
    PullService,
    PushService,
    RepService,
    ReqService,
    SubService,
    splitFrames,
)
from txzmq2.app.service import (
    DEVICE_OPTIONS,
    DEVICES,
    PROXY_DEVICES,
    ZmqDeviceService,
    ZmqService,
    addressHelp,
    parseAddress,
)
from txzmq2.endpoint import ZmqEndpoint, ZmqEndpointType
from txzmq2.errors import ZmqEndpointError

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

__all__ = ["main"]


# -- demo and bench -------------------------------------------------------------------------


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


def _addDemoArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=_atLeast(1), default=5, help="round trips (default 5)")


def _runDemo(args: argparse.Namespace) -> NoReturn:
    from twisted.internet.task import react

    react(_demo, (args.rounds,))


def _versions() -> str:
    """``--version``: txzmq2's version, then those of what it runs on."""
    from txzmq2 import capabilities

    found = capabilities()
    return (
        f"txzmq2 {found.txzmq2} (pyzmq {found.pyzmq}, libzmq {found.libzmq}, "
        f"Twisted {found.twisted}, Python {found.python})"
    )


def _addInfoArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print it as one JSON object")


def _runInfo(args: argparse.Namespace) -> int:
    import json

    import zmq

    from txzmq2 import capabilities
    from txzmq2._capabilities import MECHANISMS, TRANSPORTS

    found = capabilities()
    if args.json:
        print(json.dumps(found.asDict()))
        return 0

    def present(names: tuple[str, ...], known: tuple[str, ...]) -> str:
        missing = [name for name in known if name not in names]
        return " ".join(names) + (f"  (not: {' '.join(missing)})" if missing else "")

    draft = "yes" if found.draftAPI else "no"
    if not found.draftAPI:
        draft += " (pyzmq without ZMQ_DRAFT_API)" if not zmq.DRAFT_API else " (libzmq without)"
    for label, value in (
        ("txzmq2", found.txzmq2),
        ("pyzmq", found.pyzmq),
        ("libzmq", found.libzmq),
        ("Twisted", found.twisted),
        ("Python", found.python),
        ("transports", present(found.transports, TRANSPORTS)),
        ("mechanisms", present(found.mechanisms, MECHANISMS)),
        ("draft API", draft),
    ):
        print(f"{label:<11}{value}")
    return 0


def _bench(argv: list[str]) -> int:
    # Imported only when asked for: the suite's imports are not the command's.
    from txzmq2.bench.runner import main as runBenchmarks

    return int(runBenchmarks(argv, prog="txzmq2 bench"))


def _runBench(args: argparse.Namespace) -> int:
    return _bench(args.arguments)


def _addKeygenArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory", type=Path, help="where the certificates go (created if missing)"
    )
    parser.add_argument(
        "name",
        type=_certificateName,
        help="the pair's name: NAME.key (public, to hand out) and NAME.key_secret (private)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace certificates of that name already there"
    )


def _certificateName(text: str) -> str:
    if not text or "/" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"not a file name: {text!r}")
    return text


def _runKeygen(args: argparse.Namespace) -> int:
    import zmq

    from txzmq2.auth import createCertificates, loadCertificate

    def fail(message: str) -> int:
        print(f"txzmq2 keygen: error: {message}", file=sys.stderr)
        return 1

    if not zmq.has("curve"):
        return fail("this libzmq was built without CURVE")
    directory: Path = args.directory
    if directory.exists() and not directory.is_dir():
        # Else creating it would fail with a bare "File exists".
        return fail(f"{directory} is not a directory")
    existing = [
        path
        for path in (directory / f"{args.name}.key", directory / f"{args.name}.key_secret")
        if path.exists()
    ]
    if existing and not args.force:
        return fail(f"{existing[0]} exists; --force replaces it")
    try:
        public, secret = createCertificates(directory, args.name)
    except OSError as error:
        return fail(f"cannot write to {directory}: {error.strerror or error}")
    publicKey, _ = loadCertificate(public)
    print(f"public certificate: {public}")
    print(f"secret certificate: {secret} (keep it private)")
    print(f"public key: {publicKey.decode('ascii')}")
    return 0


# -- argument types -------------------------------------------------------------------------


def _atLeast(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _address(default: ZmqEndpointType) -> Callable[[str], ZmqEndpoint]:
    def parse(text: str) -> ZmqEndpoint:
        try:
            return parseAddress(text, default)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


def _frames(text: str) -> bytes:
    # Arguments are bytes to ZeroMQ: as the shell gave them, whatever the locale.
    return os.fsencode(text)


def _separator(text: str) -> bytes:
    if not text:
        raise argparse.ArgumentTypeError("the separator cannot be empty")
    return os.fsencode(text)


# -- running services -----------------------------------------------------------------------


def _startLogging(quiet: bool) -> None:
    from twisted.logger import (
        FileLogObserver,
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
    )

    # zope interfaces are opaque to mypy: these provide ILogObserver and the predicate.
    observer: Any = FilteringLogObserver(
        cast(Any, FileLogObserver(sys.stderr, _formatEvent)),
        [cast(Any, LogLevelFilterPredicate(LogLevel.warn if quiet else LogLevel.info))],
    )
    # stdout is for the one-liners' messages: leave it alone.
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def _formatEvent(event: Any) -> str:
    from twisted.logger import eventAsText

    return eventAsText(event, includeSystem=False) + "\n"


def _serve(
    args: argparse.Namespace, service: ZmqService, whenDone: Deferred[int] | None = None
) -> int:
    """
    Run ``service`` on the global reactor until SIGINT or SIGTERM (exit status 0), or
    until ``whenDone`` fires with the exit status. Either way the service is stopped, and
    its sockets closed with linger, before this returns.
    """
    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor
    try:
        # Binds and connects now, so that a refused address is a usage error (exit 2).
        service.startService()
    except (ZmqEndpointError, ValueError) as error:
        args.parser.error(str(error))
    # Only now: a usage error is one line, with no log lines before it. What the service
    # logged while starting was kept by twisted.logger, and comes out first.
    _startLogging(args.quiet)
    status = 0
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True

    # Both run when the reactor stops, for whatever reason; the flag first.
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    if whenDone is not None:

        def done(result: int) -> None:
            nonlocal status
            if not stopping:  # else a signal came first: that is a clean stop
                status = result
                reactor.callWhenRunning(reactor.stop)

        whenDone.addCallback(done)
    reactor.run()
    return status


# -- devices --------------------------------------------------------------------------------


def _addDeviceArguments(device: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        address = _address(ZmqEndpointType.bind)
        parser.add_argument(
            "--frontend",
            metavar="ADDR",
            action="append",
            required=True,
            type=address,
            help=DEVICE_OPTIONS["frontend"],
        )
        parser.add_argument(
            "--backend",
            metavar="ADDR",
            action="append",
            required=True,
            type=address,
            help=DEVICE_OPTIONS["backend"],
        )
        if device in PROXY_DEVICES:
            parser.add_argument(
                "--capture",
                metavar="ADDR",
                type=address,
                help=DEVICE_OPTIONS["capture"],
            )
        parser.add_argument(
            "--linger",
            metavar="MS",
            type=_atLeast(0),
            help=DEVICE_OPTIONS["linger"],
        )
        _addQuiet(parser)

    return add


def _runDevice(args: argparse.Namespace) -> int:
    service = ZmqDeviceService(
        args.command,
        args.frontend,
        args.backend,
        capture=getattr(args, "capture", None),
        lingerPeriod=args.linger,
    )
    return _serve(args, service)


def _addQuiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")


def _deviceCommand(name: str) -> _Command:
    summary = DEVICES[name].split(":")[0]
    return _Command(
        name,
        summary,
        f"Run a ZeroMQ {DEVICES[name]}. Logs to stderr; stops on SIGINT or SIGTERM. "
        f"Addresses: {addressHelp(ZmqEndpointType.bind)}.",
        _addDeviceArguments(name),
        _runDevice,
    )


# -- one-liners -----------------------------------------------------------------------------

_FRAMES_HELP = (
    "Each line of stdin is one message: one frame, or frames split at each --separator. "
    "Each message received is printed on one line, frames joined by the separator "
    "(' | ' by default); a frame that would not read back as itself (empty, binary, "
    "containing the separator) is printed as a bytes literal, b'\\x00\\x01'. "
)


def _addOneLinerArguments(
    extra: Callable[[argparse.ArgumentParser], None],
) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "addresses",
            metavar="ADDR",
            nargs="+",
            type=_address(ZmqEndpointType.connect),
            help=addressHelp(ZmqEndpointType.connect),
        )
        parser.add_argument(
            "-s",
            "--separator",
            metavar="SEP",
            type=_separator,
            help="split input lines into frames at SEP, and print frames apart with it",
        )
        extra(parser)
        _addQuiet(parser)

    return add


def _countArgument(what: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-n",
            "--count",
            metavar="N",
            type=_atLeast(1),
            help=f"exit after {what} (default: run until SIGINT or SIGTERM)",
        )

    return add


def _timeoutArgument(what: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-t",
            "--timeout",
            metavar="SECONDS",
            type=_seconds,
            default=10.0,
            help=f"{what} (default 10)",
        )

    return add


def _addReqArguments(parser: argparse.ArgumentParser) -> None:
    _timeoutArgument("seconds to wait for each reply")(parser)


def _makeReq(args: argparse.Namespace) -> OneLinerService:
    return ReqService(args.addresses, args.timeout, separator=args.separator)


def _addRepArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-r",
        "--reply",
        metavar="TEXT",
        type=_frames,
        help="answer every request with TEXT (split at the separator) instead of its echo",
    )
    _countArgument("N replies")(parser)


def _makeRep(args: argparse.Namespace) -> OneLinerService:
    reply = None if args.reply is None else splitFrames(args.reply, args.separator)
    return RepService(args.addresses, reply, count=args.count, separator=args.separator)


def _addPubArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic", metavar="TOPIC", type=_frames, help="a first frame put before every message"
    )
    parser.add_argument(
        "-w",
        "--wait-subscriptions",
        metavar="N",
        type=_atLeast(0),
        default=0,
        help="hold messages until N subscriptions have arrived (what a PUB sends before "
        "anyone subscribed is lost); a subscriber counts once per topic",
    )
    _timeoutArgument(
        "seconds to wait for the subscriptions, and to deliver what is left at the end"
    )(parser)


def _makePub(args: argparse.Namespace) -> OneLinerService:
    return PubService(
        args.addresses,
        args.topic,
        args.wait_subscriptions,
        args.timeout,
        separator=args.separator,
    )


def _addSubArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic",
        metavar="TOPIC",
        dest="topics",
        action="append",
        type=_frames,
        default=[],
        help="subscribe to messages whose first frame starts with TOPIC (repeatable; "
        "default: every message)",
    )
    _countArgument("N messages")(parser)


def _makeSub(args: argparse.Namespace) -> OneLinerService:
    return SubService(args.addresses, args.topics, count=args.count, separator=args.separator)


def _addPushArguments(parser: argparse.ArgumentParser) -> None:
    _timeoutArgument("seconds to wait at the end for a peer, and to deliver every message")(parser)


def _makePush(args: argparse.Namespace) -> OneLinerService:
    return PushService(args.addresses, args.timeout, separator=args.separator)


def _addPullArguments(parser: argparse.ArgumentParser) -> None:
    _countArgument("N messages")(parser)


def _makePull(args: argparse.Namespace) -> OneLinerService:
    return PullService(args.addresses, count=args.count, separator=args.separator)


def _oneLinerCommand(
    name: str,
    summary: str,
    description: str,
    addArguments: Callable[[argparse.ArgumentParser], None],
    make: Callable[[argparse.Namespace], OneLinerService],
) -> _Command:
    def run(args: argparse.Namespace) -> int:
        service = make(args)
        return _serve(args, service, service.whenDone)

    return _Command(
        name,
        summary,
        f"{description} {_FRAMES_HELP}Logs go to stderr.",
        _addOneLinerArguments(addArguments),
        run,
    )


# -- txzmq2.ha ------------------------------------------------------------------------------


def _addBinaryStarArguments(parser: argparse.ArgumentParser) -> None:
    role = parser.add_mutually_exclusive_group(required=True)
    role.add_argument("--primary", action="store_true", help="this node is the primary")
    role.add_argument("--backup", action="store_true", help="this node is the backup")
    parser.add_argument(
        "--local",
        metavar="ADDR",
        required=True,
        type=_address(ZmqEndpointType.bind),
        help="where this node publishes its state to the peer (bound)",
    )
    parser.add_argument(
        "--remote",
        metavar="ADDR",
        required=True,
        type=_address(ZmqEndpointType.connect),
        help="where the peer publishes its state (connected)",
    )
    parser.add_argument(
        "--heartbeat",
        metavar="SECONDS",
        type=_seconds,
        default=1.0,
        help="seconds between state messages, the same on both nodes (default 1)",
    )
    parser.add_argument(
        "--device",
        choices=sorted(DEVICES),
        default="broker",
        help="the device this node runs (default broker)",
    )
    _addDeviceArguments("bstar")(parser)


def _runBinaryStar(args: argparse.Namespace) -> int:
    from txzmq2.app._ha import ZmqBinaryStarService

    service = ZmqBinaryStarService(
        args.device,
        args.frontend,
        args.backend,
        primary=args.primary,
        local=args.local,
        remote=args.remote,
        heartbeat=args.heartbeat,
        lingerPeriod=args.linger,
    )
    return _serve(args, service)


def _addTitanicArguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        metavar="ADDR",
        required=True,
        type=_address(ZmqEndpointType.connect),
        help="the Majordomo broker's address (connected)",
    )
    parser.add_argument(
        "--database", metavar="FILE", required=True, help="the SQLite file (made if missing)"
    )
    parser.add_argument(
        "--heartbeat",
        metavar="SECONDS",
        type=_seconds,
        default=2.5,
        help="the broker's heartbeat interval (default 2.5)",
    )
    parser.add_argument(
        "--dispatch-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=5.0,
        help="seconds a stored request waits for its service before it is sent again (default 5)",
    )
    _addQuiet(parser)


def _runTitanic(args: argparse.Namespace) -> int:
    from txzmq2.app._ha import ZmqTitanicService

    service = ZmqTitanicService(
        args.broker,
        args.database,
        heartbeatInterval=args.heartbeat,
        dispatchTimeout=args.dispatch_timeout,
    )
    return _serve(args, service)


# -- the command table ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Command:
    """One subcommand of ``txzmq2``."""

    name: str
    summary: str
    """One line, for ``txzmq2 --help``."""
    description: str
    """For ``txzmq2 NAME --help``."""
    addArguments: Callable[[argparse.ArgumentParser], None] | None
    """Adds the command's arguments to its parser; ``None`` when the command parses its
    own (it then gets everything after its name as ``args.arguments``)."""
    run: Callable[[argparse.Namespace], int]
    """Runs the command with its parsed arguments; returns the exit status."""


_COMMANDS: list[_Command] = [
    _Command(
        "info",
        "print the versions, and the transports, mechanisms and draft API libzmq has",
        "Print txzmq2's, pyzmq's, libzmq's, Twisted's and Python's versions and which "
        "transports, security mechanisms and draft socket types this libzmq has "
        "(txzmq2.capabilities() as text, or as JSON with --json). See "
        "docs/transports.md for a libzmq with more.",
        _addInfoArguments,
        _runInfo,
    ),
    _Command(
        "demo",
        "run a REP server and a REQ client on tcp loopback and time a few round trips",
        "Run a REP server and a REQ client on tcp loopback in one reactor, "
        "print a few request/reply round trips and their latency, and exit.",
        _addDemoArguments,
        _runDemo,
    ),
    *(_deviceCommand(name) for name in ("broker", "lbbroker", "forwarder", "streamer")),
    _oneLinerCommand(
        "req",
        "send each line of stdin as a request and print the replies",
        "Send each line of stdin as a request (REQ, several in flight) and print the "
        "replies in order. Exits when stdin has ended and every request is answered "
        "(status 0) or timed out (status 1).",
        _addReqArguments,
        _makeReq,
    ),
    _oneLinerCommand(
        "rep",
        "print each request and answer it (echo, or --reply)",
        "Answer requests (REP): print each one and reply with its own frames, or --reply. "
        "Runs until SIGINT or SIGTERM, or --count replies.",
        _addRepArguments,
        _makeRep,
    ),
    _oneLinerCommand(
        "pub",
        "publish each line of stdin",
        "Publish each line of stdin (PUB). Exits when stdin has ended, once what is "
        "queued has been delivered or --timeout has passed.",
        _addPubArguments,
        _makePub,
    ),
    _oneLinerCommand(
        "sub",
        "print the messages published to some topics",
        "Subscribe (SUB) and print each message, its topic frame included. "
        "Runs until SIGINT or SIGTERM, or --count messages.",
        _addSubArguments,
        _makeSub,
    ),
    _oneLinerCommand(
        "push",
        "push each line of stdin",
        "Push each line of stdin (PUSH). Exits when stdin has ended, once a peer has "
        "connected and everything was delivered (status 0), or after --timeout (status 1).",
        _addPushArguments,
        _makePush,
    ),
    _oneLinerCommand(
        "pull",
        "print each message pulled",
        "Pull (PULL) and print each message. Runs until SIGINT or SIGTERM, or --count messages.",
        _addPullArguments,
        _makePull,
    ),
    _Command(
        "bstar",
        "run a device as one node of a Binary Star (primary/backup) pair",
        "Run a device (--device, default broker) as the primary or the backup of a Binary "
        "Star pair: its frontend serves clients only while this node is active. The nodes "
        "tell each other their state every --heartbeat; the passive one takes over when "
        "the active one has been silent for two heartbeats and a client request reaches "
        "it. Logs to stderr; stops on SIGINT or SIGTERM. "
        f"Addresses: {addressHelp(ZmqEndpointType.bind)}.",
        _addBinaryStarArguments,
        _runBinaryStar,
    ),
    _Command(
        "titanic",
        "store requests for Majordomo services in SQLite and answer them later (9/TSP)",
        "Serve titanic.request, titanic.reply and titanic.close (9/TSP) through a "
        "Majordomo broker: requests are stored in --database (committed before the client "
        "hears of them) and sent to their services until answered, across restarts. Logs "
        "to stderr; stops on SIGINT or SIGTERM.",
        _addTitanicArguments,
        _runTitanic,
    ),
    _Command(
        "keygen",
        "create a CURVE key pair as certificate files",
        "Create a CURVE key pair as two certificate files in DIRECTORY: NAME.key holds the "
        "public key (copy it to the peers that must trust this one, e.g. a server's "
        "allow-list directory) and NAME.key_secret both keys (readable by its owner only). "
        "Prints the public key. Exit status 1 if the files exist (without --force) or "
        "cannot be written.",
        _addKeygenArguments,
        _runKeygen,
    ),
    _Command(
        "bench",
        "run the benchmark suite: txzmq2 against plain pyzmq (and txZMQ, with the "
        "bench extra); txzmq2 bench --help lists its options",
        "",
        None,
        _runBench,
    ),
]


class _Parser(argparse.ArgumentParser):
    """
    argparse, with a usage error on one line of stderr and exit status 2, and an unknown
    option reported as such (naming the command it was given to) before anything else.
    """

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is not None:
            # argparse checks required options before it looks at unknown ones, so that
            # "--frontnd X" would read "--frontend is required": the typo is the news.
            unknown = self._firstUnknownOption(args)
            if unknown is not None:
                self.error(f"unrecognized option {unknown}{self._suggestion(unknown)}")
        return super().parse_known_args(args, namespace)

    def _firstUnknownOption(self, args: Sequence[str]) -> str | None:
        """The first option in ``args`` this parser does not have, if any."""
        valueNext = False
        for argument in args:
            if argument == "--" or (self._subparsers is not None and argument[:1] != "-"):
                break  # the rest is positional, or a subcommand's own
            if valueNext:  # an option's value, even if it starts with "-"
                valueNext = False
                continue
            if argument[:1] != "-" or argument == "-" or _NUMBER.fullmatch(argument):
                continue
            name = argument.split("=", 1)[0] if argument.startswith("--") else argument[:2]
            matches = [o for o in self._option_string_actions if o.startswith(name)]
            if name not in self._option_string_actions and not (
                name.startswith("--") and matches  # an abbreviation (argparse checks it)
            ):
                return name
            action = self._option_string_actions.get(name) or (
                self._option_string_actions[matches[0]] if len(matches) == 1 else None
            )
            valueNext = (
                action is not None
                and action.nargs is None
                and "=" not in argument
                and len(argument) == len(name)  # not "-n5"
            )
        return None

    def _suggestion(self, unknown: str) -> str:
        from difflib import get_close_matches

        close = get_close_matches(unknown, list(self._option_string_actions), n=1)
        return f" (did you mean {close[0]}?)" if close else ""


_NUMBER = re.compile(r"-\d+(\.\d*)?|-\.\d+")
"""A negative number, which argparse takes for a value, not an option."""


def _documentation(page: str) -> str:
    """
    Where the documentation site has ``page`` (``"cli"``): under the Documentation URL of
    the installed distribution's metadata, which pyproject.toml writes in its one place.
    """
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("txzmq2").get_all("Project-URL") or []
    except PackageNotFoundError:  # run from a checkout that was never installed
        urls = []
    for entry in urls:
        label, _, url = entry.partition(",")
        if label.strip() == "Documentation":
            return f"{url.strip().rstrip('/')}/{page}.html"
    return f"docs/{page}.md"


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="txzmq2",
        description="ZeroMQ for Twisted: devices and one-liners for a live ZeroMQ system.",
        epilog="Exit status: 0 success (or stopped by SIGINT/SIGTERM), 1 failure, "
        f"2 bad usage (a bad option or address). See {_documentation('cli')}",
    )
    parser.add_argument("--version", action="version", version=_versions())
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        sub = commands.add_parser(
            command.name,
            help=command.summary,
            description=command.description,
            add_help=command.addArguments is not None,
        )
        sub.set_defaults(run=command.run, parser=sub)
        if command.addArguments is not None:
            command.addArguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Run the ``txzmq2`` command line; exits with its status (0, 1, or 2 on bad usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        sys.exit(_main(argv))
    except KeyboardInterrupt:
        # Ctrl-C before the reactor took over the signal: stop, without a traceback.
        sys.exit(130)


def _main(argv: list[str]) -> int:
    for command in _COMMANDS:
        if argv[:1] == [command.name] and command.addArguments is None:
            # Every argument after its name belongs to the command's own parser.
            return command.run(argparse.Namespace(command=command.name, arguments=argv[1:]))
    args, extra = _parser().parse_known_args(argv)
    if extra:
        # Reported by the command they were given to, not by "txzmq2".
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return int(args.run(args))
