"""
What the fault tests run on: host programs (:mod:`tests.faults.hosts`) as subprocesses the
reactor watches, and a private network of Linux network namespaces to put them in.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

__all__ = [
    "ROOT",
    "HostExited",
    "HostProcess",
    "Hosts",
    "Network",
    "NetworkUnavailable",
    "reactorName",
]

ROOT = Path(__file__).resolve().parent.parent.parent
"""The checkout: host programs run from here (``python -m tests.faults.hosts``)."""
LINE_TIMEOUT = 20.0
"""Default bound on waiting for a host's next line (process start included)."""
_STDERR_KEEP = 20_000


def reactorName() -> str:
    """The ``--reactor`` of host programs matching the one the tests run on."""
    from twisted.internet import reactor

    return "asyncio" if "asyncio" in type(reactor).__module__ else "default"


class HostExited(Exception):
    """A host process ended while a line from it was awaited."""


class HostProcess(ProcessProtocol):
    """
    One host program running as a subprocess: its stdout is read as JSON lines, its stdin
    takes commands.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.stderr = bytearray()
        self.exitCode: int | None = None
        self.exitSignal: int | None = None
        self.running = True
        self._endWaiters: list[Deferred[int | None]] = []
        self._buffer = b""
        self._lines: deque[dict[str, Any]] = deque()
        self._waiting: deque[Deferred[dict[str, Any]]] = deque()

    def __repr__(self) -> str:
        return f"<host {self.name}>"

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            try:
                message = json.loads(line)
            except ValueError:
                message = {"unparsed": line.decode(errors="replace")}
            if self._waiting:
                self._waiting.popleft().callback(message)
            else:
                self._lines.append(message)

    def errReceived(self, data: bytes) -> None:
        self.stderr += data
        del self.stderr[:-_STDERR_KEEP]

    def processEnded(self, reason: Failure) -> None:
        if isinstance(reason.value, (ProcessDone, ProcessTerminated)):
            self.exitCode = reason.value.exitCode
            self.exitSignal = getattr(reason.value, "signal", None)
        self.running = False
        waiting, self._waiting = self._waiting, deque()
        for waiter in waiting:
            waiter.errback(self._exited())
        endWaiters, self._endWaiters = self._endWaiters, []
        for endWaiter in endWaiters:
            endWaiter.callback(self.exitCode)

    def ended(self) -> Deferred[int | None]:
        """Fires with the exit code (``None`` after a signal) once the process has ended."""
        if not self.running:
            return succeed(self.exitCode)
        waiter: Deferred[int | None] = Deferred()
        self._endWaiters.append(waiter)
        return waiter

    def _exited(self) -> HostExited:
        return HostExited(
            f"{self.name} ended (exit code {self.exitCode}, signal {self.exitSignal}); "
            f"stderr:\n{self.stderr.decode(errors='replace')}"
        )

    def nextLine(self, timeout: float = LINE_TIMEOUT) -> Deferred[dict[str, Any]]:
        """
        The next JSON line the host prints. Fails with ``HostExited`` if the process ends
        first, and with ``AssertionError`` (the host's stderr attached) after ``timeout``.
        """
        from twisted.internet import reactor

        if self._lines:
            return succeed(self._lines.popleft())
        if not self.running:
            return fail(self._exited())
        waiter: Deferred[dict[str, Any]] = Deferred(self._waiting.remove)

        def timedOut(failure: Failure) -> Failure:
            if failure.check(TimeoutError):
                raise AssertionError(
                    f"{self.name} printed no line within {timeout} s; stderr:\n"
                    f"{self.stderr.decode(errors='replace')}"
                )
            return failure

        self._waiting.append(waiter)
        return waiter.addTimeout(timeout, reactor).addErrback(timedOut)

    async def expect(self, key: str, timeout: float = LINE_TIMEOUT) -> dict[str, Any]:
        """The next line, which must carry ``key`` (else ``AssertionError``)."""
        line = await self.nextLine(timeout)
        assert key in line, f"{self.name}: expected {key!r}, got {line}"
        return line

    def takeLines(self) -> list[dict[str, Any]]:
        """Every line received and not taken yet (by :meth:`nextLine` or this)."""
        lines, self._lines = list(self._lines), deque()
        return lines

    def command(self, *words: object) -> None:
        """Write one command line to the host's stdin."""
        assert self.transport is not None
        self.transport.write(" ".join(str(word) for word in words).encode() + b"\n")

    def kill(self, signalName: str = "KILL") -> Deferred[int | None]:
        """Send a signal (SIGKILL by default) if still running; fires once it has ended."""
        if self.running and self.transport is not None:
            try:
                self.transport.signalProcess(signalName)
            except OSError:
                pass  # it has just ended; processEnded is on its way
        return self.ended()


class Hosts:
    """
    Starts host programs (on the reactor the tests run on) and makes sure none outlives
    its test: :meth:`killAll` at teardown.
    """

    def __init__(self) -> None:
        self.started: list[HostProcess] = []

    def start(
        self,
        role: str,
        *arguments: str,
        name: str | None = None,
        prefix: Sequence[str] = (),
        module: str = "tests.faults.hosts",
    ) -> HostProcess:
        """
        Run ``python -m MODULE ROLE ARGUMENTS`` (behind ``prefix``, such as
        ``ip netns exec NS``).
        """
        from twisted.internet import reactor

        host = HostProcess(name or role)
        argv = [
            *prefix,
            sys.executable,
            "-m",
            module,
            role,
            "--reactor",
            reactorName(),
            *arguments,
        ]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
        reactor.spawnProcess(host, argv[0], argv, env=environment, path=str(ROOT))
        self.started.append(host)
        return host

    def killAll(self) -> Deferred[Any]:
        """SIGKILL every host still running; fires once all have ended."""
        return DeferredList([host.kill() for host in self.started])


class NetworkUnavailable(Exception):
    """Network namespaces cannot be made here (not root, no ``ip``, or the kernel refused)."""


class Network:
    """
    A private network: one network namespace per host, each with an ``eth0`` linked by a veth
    pair to a port of a Linux bridge (the switch) in a namespace of its own. Addresses are
    ``10.X.Y.n/24`` with ``X.Y`` random per network; names start with ``txz`` and a random
    tag, so concurrent runs never meet.

    Cutting a host's link sets its switch port down, as pulling the cable would: the host
    keeps its configuration and its sockets, and its packets go nowhere until the port
    is restored.

    :param hosts: the host names, short (each names a switch port: at most 15 bytes).
    """

    def __init__(self, hosts: Sequence[str]) -> None:
        tag = "txz" + secrets.token_hex(3)
        self.switch = f"{tag}-sw"
        self.namespaces = {host: f"{tag}-{host}" for host in hosts}
        prefix = f"10.{64 + secrets.randbelow(190)}.{secrets.randbelow(256)}"
        self.addresses = {host: f"{prefix}.{index}" for index, host in enumerate(hosts, 1)}
        self._made: list[str] = []
        self._ip = shutil.which("ip")

    def create(self) -> None:
        """
        Make the namespaces, the bridge and the links.

        :raises NetworkUnavailable: when that is impossible here (what is made is removed).
        """
        if os.geteuid() != 0:
            raise NetworkUnavailable("network namespaces need root (CI runs as root)")
        if self._ip is None:
            raise NetworkUnavailable("the `ip` command (iproute2) is not installed")
        try:
            self._namespace(self.switch)
            self._run("-n", self.switch, "link", "add", "switch", "type", "bridge")
            self._run("-n", self.switch, "link", "set", "switch", "up")
            for host, namespace in self.namespaces.items():
                self._namespace(namespace)
                self._run("-n", namespace, "link", "set", "lo", "up")
                self._run(
                    *("-n", namespace, "link", "add", "eth0", "type", "veth"),
                    *("peer", "name", host, "netns", self.switch),
                )
                self._run(
                    "-n", namespace, "addr", "add", f"{self.addresses[host]}/24", "dev", "eth0"
                )
                self._run("-n", namespace, "link", "set", "eth0", "up")
                self._run("-n", self.switch, "link", "set", host, "master", "switch")
                self._run("-n", self.switch, "link", "set", host, "up")
        except subprocess.CalledProcessError as error:
            self.destroy()
            raise NetworkUnavailable(
                f"cannot build the test network: `{' '.join(error.cmd)}` said "
                f"{error.stderr.strip()!r}"
            ) from None

    def _namespace(self, name: str) -> None:
        self._run("netns", "add", name)
        self._made.append(name)

    def _run(self, *arguments: str) -> None:
        assert self._ip is not None
        subprocess.run(
            [self._ip, *arguments], check=True, capture_output=True, text=True, timeout=10
        )

    def prefix(self, host: str) -> list[str]:
        """The command prefix that runs a program in ``host``'s namespace."""
        assert self._ip is not None
        return [self._ip, "netns", "exec", self.namespaces[host]]

    def cut(self, host: str) -> None:
        """Cut ``host``'s link: its switch port goes down (done when this returns)."""
        self._run("-n", self.switch, "link", "set", host, "down")

    def restore(self, host: str) -> None:
        """Restore ``host``'s link."""
        self._run("-n", self.switch, "link", "set", host, "up")

    def separate(self, one: str, other: str) -> None:
        """
        Cut the traffic between two hosts only (a blackhole route to each other on each
        side); both keep talking to everyone else.
        """
        for host, peer in ((one, other), (other, one)):
            self._run(
                *("-n", self.namespaces[host], "route", "add", "blackhole"),
                f"{self.addresses[peer]}/32",
            )

    def join(self, one: str, other: str) -> None:
        """Undo :meth:`separate`."""
        for host, peer in ((one, other), (other, one)):
            self._run(
                *("-n", self.namespaces[host], "route", "del", "blackhole"),
                f"{self.addresses[peer]}/32",
            )

    def destroy(self) -> None:
        """Remove every namespace made (with it, its links). Idempotent."""
        while self._made:
            namespace = self._made.pop()
            subprocess.run(
                [self._ip or "ip", "netns", "del", namespace], capture_output=True, timeout=10
            )
