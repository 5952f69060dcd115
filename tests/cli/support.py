"""
Running ``txzmq2`` and ``twistd`` as a user would: in a subprocess, reading what they print
(without threads, every wait bounded), and talking to them with blocking pyzmq peers.

Each device is exercised the same way whether ``txzmq2 <device>`` or ``twistd
txzmq2-<device>`` runs it: :data:`EXERCISES`.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import IO, Any

import zmq

from tests.peers import blockingSocket

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 15.0
"""Longest any single wait on a subprocess lasts: a broken command fails, never hangs."""
TWISTD = Path(sys.executable).with_name("twistd")


def environment() -> dict[str, str]:
    """
    The subprocesses' environment: the checkout first on ``PYTHONPATH``, so ``twistd``
    finds ``twisted/plugins/`` of the code under test however txzmq2 was installed (an
    editable install made before the plugins existed does not expose them).
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def txzmq2(*arguments: str) -> list[str]:
    """The command line of ``python -m txzmq2 ARGUMENTS``."""
    return [sys.executable, "-m", "txzmq2", *arguments]


def run(
    *arguments: str, stdin: bytes = b"", timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``txzmq2 ARGUMENTS`` to its end."""
    return subprocess.run(
        txzmq2(*arguments),
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=timeout,
    )


def assertUsageError(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The command failed with ``status``, one line on stderr and no traceback; the line."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


class Process:
    """
    A command running in a subprocess. Its stdout and stderr are collected (as text) while
    a test waits for something in them; nothing else reads them, so no threads.

    :param argv: the command line.
    :param stdin: bytes to feed it (then end of file), or an open file to read from;
        ``None`` gives it an empty stdin.
    """

    def __init__(self, argv: list[str], stdin: bytes | IO[bytes] | None = None) -> None:
        self.argv = argv
        self.popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=environment(),
            stdin=subprocess.PIPE if isinstance(stdin, bytes) else (stdin or subprocess.DEVNULL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.output = {"stdout": "", "stderr": ""}
        self._selector = selectors.DefaultSelector()
        for name in self.output:
            self._selector.register(getattr(self.popen, name), selectors.EVENT_READ, name)
        if isinstance(stdin, bytes):
            assert self.popen.stdin is not None
            self.popen.stdin.write(stdin)  # small: fits the pipe whether read yet or not
            self.popen.stdin.close()

    @property
    def stdout(self) -> str:
        return self.output["stdout"]

    @property
    def stderr(self) -> str:
        return self.output["stderr"]

    def _read(self, timeout: float) -> None:
        for key, _ in self._selector.select(max(timeout, 0)):
            chunk = os.read(key.fd, 65536)
            if chunk:
                self.output[key.data] += chunk.decode(errors="replace")
            else:
                self._selector.unregister(key.fileobj)

    def _describe(self) -> str:
        return f"{' '.join(self.argv)}\n-- stdout:\n{self.stdout}\n-- stderr:\n{self.stderr}"

    def waitFor(
        self, pattern: str, stream: str = "stderr", timeout: float = TIMEOUT
    ) -> re.Match[str]:
        """Wait until ``pattern`` (a regular expression) matches in ``stream``."""
        deadline = monotonic() + timeout
        while True:
            match = re.search(pattern, self.output[stream], re.MULTILINE)
            if match is not None:
                return match
            if monotonic() > deadline or not self._selector.get_map():
                raise AssertionError(f"{pattern!r} never showed in {stream}: {self._describe()}")
            self._read(deadline - monotonic())

    def wait(self, timeout: float = TIMEOUT) -> int:
        """Wait until the process has ended (and closed its output); its exit status."""
        deadline = monotonic() + timeout
        while self._selector.get_map() and monotonic() < deadline:
            self._read(deadline - monotonic())
        try:
            return self.popen.wait(max(deadline - monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout} s: {self._describe()}") from None

    def stop(self, signum: int = signal.SIGINT, timeout: float = TIMEOUT) -> int:
        """Send ``signum``; the exit status once it has ended."""
        self.popen.send_signal(signum)
        return self.wait(timeout)

    def close(self) -> None:
        """Kill it if it still runs; release the pipes."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._selector.close()
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()


def boundAddress(process: Process, what: str, stream: str = "stderr") -> str:
    """
    The address a command logged it bound ``what`` to: a role of a device (``frontend``),
    or a one-liner's socket type (``ROUTER``).
    """
    match = process.waitFor(rf"\b{what}\b( \(\w+\))? bound to (\S+)$", stream)
    return match.group(2)


def runningDevice(process: Process, stream: str = "stderr") -> dict[str, str]:
    """Wait until a device runs; the addresses its frontend and backend were bound to."""
    process.waitFor(r": running$", stream)
    return {role: boundAddress(process, role, stream) for role in ("frontend", "backend")}


# -- talking to devices through blocking pyzmq peers -----------------------------------------


def exerciseBroker(context: Any, frontend: str, backend: str) -> None:
    """A REQ client's request reaches a REP server through the broker, and the reply back."""
    client = blockingSocket(context, zmq.REQ)
    server = blockingSocket(context, zmq.REP)
    client.connect(frontend)
    server.connect(backend)
    client.send_multipart([b"hello", b"1"])
    assert server.recv_multipart() == [b"hello", b"1"]
    server.send_multipart([b"world", b"1"])
    assert client.recv_multipart() == [b"world", b"1"]


def exerciseLoadBalancingBroker(context: Any, frontend: str, backend: str) -> None:
    """A worker that said READY gets a client's request and its reply goes back."""
    worker = blockingSocket(context, zmq.REQ)
    client = blockingSocket(context, zmq.REQ)
    worker.connect(backend)
    client.connect(frontend)
    worker.send(b"READY")
    client.send(b"job")
    envelope, empty, job = worker.recv_multipart()
    assert (empty, job) == (b"", b"job")
    worker.send_multipart([envelope, b"", b"done"])
    assert client.recv_multipart() == [b"done"]


def exerciseForwarder(context: Any, frontend: str, backend: str) -> None:
    """A subscription travels up to the publisher, and a publication down to the subscriber."""
    # An XPUB publisher sees the subscription arrive: it publishes only then, no guessing.
    publisher = blockingSocket(context, zmq.XPUB)
    subscriber = blockingSocket(context, zmq.SUB, subscribe=b"weather")
    publisher.connect(frontend)
    subscriber.connect(backend)
    assert publisher.recv() == b"\x01weather"
    publisher.send_multipart([b"traffic", b"jammed"])
    publisher.send_multipart([b"weather", b"sunny"])
    assert subscriber.recv_multipart() == [b"weather", b"sunny"]


def exerciseStreamer(context: Any, frontend: str, backend: str) -> None:
    """Pushed messages reach a puller, whole and in order."""
    pusher = blockingSocket(context, zmq.PUSH)
    puller = blockingSocket(context, zmq.PULL)
    pusher.connect(frontend)
    puller.connect(backend)
    for n in range(3):
        pusher.send_multipart([b"job", b"%d" % n])
    assert [puller.recv_multipart() for _ in range(3)] == [[b"job", b"%d" % n] for n in range(3)]


EXERCISES: dict[str, Callable[[Any, str, str], None]] = {
    "broker": exerciseBroker,
    "lbbroker": exerciseLoadBalancingBroker,
    "forwarder": exerciseForwarder,
    "streamer": exerciseStreamer,
}
"""Device -> a check that real messages go through it (frontend and backend addresses)."""
