"""
What every part of the suite shares: the cases, the specification of one measurement (handed
to a worker process as JSON), its result, the peer that runs in a process of its own, and a
blocking wait for a connection's handshake.

Every measurement runs in a fresh worker process (``python -m txzmq2.bench.worker``): a
Twisted reactor cannot be restarted, and ``ru_maxrss`` is a per-process peak, so one process
per measurement gives each its own reactor and its own memory figure.
"""

from __future__ import annotations

import gc
import json
import os
import re
import resource
import select
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import zmq

__all__ = [
    "BASELINE",
    "CALLGRIND",
    "CASES",
    "CLOCK_EVERY",
    "IMPLEMENTATIONS",
    "MODES",
    "TRANSPORTS",
    "Case",
    "Measurement",
    "PeerProcess",
    "Spec",
    "callgrindInstructions",
    "handshake",
    "notApplicable",
    "peakRssKb",
    "runBesidePeer",
    "summarise",
]

Kind = Literal["sequential", "pipelined", "push_pull", "pub_sub"]

IMPLEMENTATIONS = (
    "txzmq2",
    "txzmq2_pure",
    "pyzmq",
    "pyzmq_frames",
    "txzmq",
    "zmq_asyncio",
    "aiozmq",
)
"""
txzmq2 (on the native path when its extension is built); txzmq2 forced onto its
pure-Python path (``TXZMQ2_PURE_PYTHON=1``; measured only when the native path is in use,
else it is the first); the plain blocking pyzmq baseline (the simplest program for each
task, what every ratio is relative to); blocking pyzmq putting txzmq2's frames on the wire;
and the event-loop peers: txZMQ (Twisted), pyzmq's ``zmq.asyncio`` and aiozmq (asyncio).
txZMQ and aiozmq are optional (``txzmq2[bench]``).
"""
BASELINE = "pyzmq"
"""The implementation every ratio is relative to."""
TRANSPORTS = ("tcp", "ipc")
MODES = ("inprocess", "subprocess")

CONNECT_TIMEOUT = 10.0
"""Seconds a measuring side may take to connect (handshake, subscription) before it starts."""
PEER_START_TIMEOUT = 20.0
"""Seconds a peer process may take to start and report its endpoint."""
IDLE_END = 0.5
"""PUB/SUB: seconds without a message after which the subscriber stops counting (drops)."""
CLOCK_EVERY = 256
"""
Throughput loops read the clock once per this many messages (a power of two: the test is a
mask), not per message: the time of the last arrival before an idle end is then early by
at most this many messages, and a per-message clock read does not weigh on the loop.
"""
LATENCY_SAMPLE = 1000
"""How many evenly spaced order statistics of the latencies a measurement keeps (plots)."""


@dataclass(frozen=True)
class Case:
    """One benchmark case: a messaging pattern, a message size and how many to move."""

    name: str
    kind: Kind
    count: int
    quickCount: int
    size: int
    inflight: int = 1
    rpc: bool = False
    """Request-reply cases only: calls through ``txzmq2.rpc`` (msgpack), not raw frames."""
    description: str = ""


CASES: tuple[Case, ...] = (
    Case(
        "reqrep_sequential",
        "sequential",
        10_000,
        300,
        64,
        description="REQ/REP round trips, one at a time",
    ),
    Case(
        "reqrep_pipelined",
        "pipelined",
        50_000,
        2_000,
        64,
        inflight=100,
        description="requests with 100 outstanding (pyzmq: DEALER/ROUTER)",
    ),
    Case(
        "rpc_sequential",
        "sequential",
        10_000,
        300,
        64,
        rpc=True,
        description="RPC calls (msgpack), one at a time (pyzmq: REQ/REP, same wire format)",
    ),
    Case(
        "rpc_pipelined",
        "pipelined",
        50_000,
        2_000,
        64,
        inflight=100,
        rpc=True,
        description="RPC calls with 100 outstanding (pyzmq: DEALER/ROUTER, same wire format)",
    ),
    Case("push_pull_100B", "push_pull", 200_000, 10_000, 100, description="PUSH/PULL one-way"),
    Case("push_pull_64KiB", "push_pull", 20_000, 500, 65_536, description="PUSH/PULL one-way"),
    Case("pub_sub_100B", "pub_sub", 200_000, 10_000, 100, description="PUB/SUB one-way"),
)


@dataclass(frozen=True)
class Spec:
    """Everything a worker (and its peer) needs to run one measurement."""

    case: str
    kind: Kind
    impl: str
    transport: str
    mode: str
    count: int
    size: int
    inflight: int
    timeout: float
    ipcDir: str
    rpc: bool = False

    def bindAddress(self) -> str:
        """Where the bound side binds: an OS-chosen loopback port, or a socket file."""
        if self.transport == "tcp":
            return "tcp://127.0.0.1:*"
        return f"ipc://{self.ipcDir}/{self.case}-{self.impl}-{self.mode}.sock"

    def toJson(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def fromJson(cls, text: str) -> Spec:
        return cls(**json.loads(text))


@dataclass
class Measurement:
    """
    The result of one measurement; its fields are the keys of ``--json`` output.

    Rates are per second of the measured window (from the start signal to the last message
    or reply); MB are 10**6 bytes of payload. Latencies are in microseconds, the stall in
    milliseconds (reactor-based implementations only: the longest gap between ticks of a
    1 ms LoopingCall, on the worker's reactor and, in subprocess mode, the peer's), RSS in
    KiB (``ru_maxrss``).
    """

    case: str
    transport: str
    mode: str
    impl: str
    count: int
    size: int
    completed: int = 0
    elapsed_s: float = 0.0
    msgs_per_s: float = 0.0
    mb_per_s: float = 0.0
    p50_us: float | None = None
    p99_us: float | None = None
    drops: int = 0
    timed_out: bool = False
    max_stall_ms: float | None = None
    peer_max_stall_ms: float | None = None
    rss_kb: int = 0
    peer_rss_kb: int | None = None
    ratio: float | None = None
    error: str | None = None
    skipped: str | None = None
    """Why this implementation has no figure for this case (not applicable; nothing ran)."""
    latency_sample_us: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, spec: Spec, **fields: Any) -> Measurement:
        """A measurement of ``spec``'s case, transport, mode, impl, count and size."""
        return cls(
            case=spec.case,
            transport=spec.transport,
            mode=spec.mode,
            impl=spec.impl,
            count=spec.count,
            size=spec.size,
            **fields,
        )

    def publicDict(self) -> dict[str, Any]:
        """The fields for ``--json`` output (without the latency sample)."""
        data = asdict(self)
        del data["latency_sample_us"]
        return data


def notApplicable(case: Case, impl: str) -> str | None:
    """Why ``impl`` cannot run ``case`` (then the case is reported as n/a for it), or None."""
    if case.rpc and impl in _NO_RPC:
        return _NO_RPC[impl]
    return None


# The RPC cases speak txzmq2's RPC wire format: blocking pyzmq can be made to, a library
# with no RPC layer (or another wire format: aiozmq.rpc) is left out of them.
_NO_RPC = {
    "txzmq": "txZMQ has no RPC layer",
    "zmq_asyncio": "zmq.asyncio has no RPC layer",
    "aiozmq": "aiozmq.rpc speaks another wire format",
}


def handshake(socket: zmq.Socket[Any], connect: Callable[[], object]) -> None:
    """
    Call ``connect`` (which connects ``socket``) and block until the handshake with the peer
    is done, as pyzmq's monitor reports it; for libraries that cannot say so themselves.

    :raises TimeoutError: when no handshake happens within :data:`CONNECT_TIMEOUT`.
    """
    # The monitor first: on loopback the handshake can finish before the next statement.
    monitor = socket.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    connect()
    try:
        if not monitor.poll(int(CONNECT_TIMEOUT * 1000)):
            raise TimeoutError(f"no handshake within {CONNECT_TIMEOUT} s")
        monitor.recv_multipart()
    finally:
        socket.disable_monitor()
        monitor.close()


def freezeStartupHeap() -> None:
    """
    Put everything alive now (the interpreter's, Twisted's and the suite's start-up
    objects) out of the garbage collector's reach, as a latency-sensitive service does once
    it has started (``gc.freeze()``). Otherwise the one full collection a flood triggers
    scans them all, which stalls the process 12-22 ms on the reference machine: longer than
    any pass of txzmq2's, and the same for every library measured.
    """
    gc.collect()
    gc.freeze()


def peakRssKb() -> int:
    """This process's peak resident set size, in KiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarise(
    spec: Spec,
    completed: int,
    elapsed: float,
    latencies: list[float] | None = None,
    *,
    timedOut: bool = False,
    stall: float | None = None,
    peer: dict[str, Any] | None = None,
) -> Measurement:
    """
    Turn raw figures (seconds) into a :class:`Measurement`.

    :param latencies: per-message latencies in seconds, for request-reply cases.
    :param stall: the worker reactor's longest stall in seconds (reactor-based only).
    :param peer: what a peer process reported when stopped (``rss_kb``, ``max_stall_s``).
    """
    result = Measurement.of(
        spec,
        completed=completed,
        elapsed_s=round(elapsed, 4),
        timed_out=timedOut,
        rss_kb=peakRssKb(),
    )
    if elapsed > 0:
        result.msgs_per_s = round(completed / elapsed, 1)
        result.mb_per_s = round(completed * spec.size / elapsed / 1e6, 2)
    if spec.kind == "pub_sub":
        result.drops = spec.count - completed
    if latencies:
        ordered = sorted(latencies)
        result.p50_us = round(_percentile(ordered, 0.50) * 1e6, 1)
        result.p99_us = round(_percentile(ordered, 0.99) * 1e6, 1)
        step = max(1, len(ordered) // LATENCY_SAMPLE)
        result.latency_sample_us = [round(value * 1e6, 1) for value in ordered[::step]]
    if stall is not None:
        result.max_stall_ms = round(stall * 1e3, 2)
    if peer is not None:
        result.peer_rss_kb = peer.get("rss_kb")
        if peer.get("max_stall_s") is not None:
            result.peer_max_stall_ms = round(peer["max_stall_s"] * 1e3, 2)
    return result


class PeerProcess:
    """
    The far side of a measurement in its own process (``python -m txzmq2.bench.peer``).

    The peer binds and prints ``{"endpoint": ...}``; it then obeys one command per line on
    its stdin: ``go`` (start sending, for PUSH and PUB peers) and ``stop`` (or end of file:
    print ``{"rss_kb": ..., "max_stall_s": ...}`` and exit). All calls here block; callers
    make them outside the measured window.
    """

    def __init__(self, spec: Spec) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "txzmq2.bench.peer", spec.toJson()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._buffer = b""
        try:
            self.endpoint: str = self._readLine(PEER_START_TIMEOUT)["endpoint"]
        except BaseException:
            self.kill()
            raise

    def go(self) -> None:
        """Tell the peer to start sending."""
        self._command("go")

    def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """Tell the peer to finish; return what it reports about itself."""
        try:
            self._command("stop")
            report = self._readLine(timeout)
            self._process.wait(timeout)
            return report
        finally:
            self.kill()

    def kill(self) -> None:
        """End the peer process if it is still running (idempotent)."""
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                stream.close()

    def _command(self, word: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(word.encode() + b"\n")
        self._process.stdin.flush()

    def _readLine(self, timeout: float) -> dict[str, Any]:
        # Unbuffered reads under select(): a peer that hangs cannot hang us beyond timeout.
        assert self._process.stdout is not None
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout)
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                state = "exited" if self._process.poll() is not None else "is silent"
                raise RuntimeError(f"benchmark peer {state} (expected a line within {timeout} s)")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        report: dict[str, Any] = json.loads(line)
        return report


CALLGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
"""The prefix that runs a command under valgrind's callgrind, counting instructions."""


def callgrindInstructions(stderr: str) -> int:
    """The instructions callgrind counted, from the ``stderr`` of a command run under it."""
    found = re.search(r"Collected : (\d+)", stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from valgrind:\n{stderr[-2000:]}")
    return int(found.group(1))


def runBesidePeer(
    peer: list[str],
    command: Callable[[str], list[str]],
    callgrind: bool = False,
    timeout: float = 600,
) -> tuple[str, int | None]:
    """
    Start ``peer`` (a command whose first line of output is the endpoint it bound), run
    ``command(endpoint)`` beside it, under callgrind when ``callgrind``, and wait for both
    to end. Returns the command's output and, under callgrind, the instructions it ran.
    """
    process = subprocess.Popen(peer, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        arguments = command(process.stdout.readline().strip())
        if callgrind:
            arguments = [*CALLGRIND, *arguments]
        run = subprocess.run(
            arguments, capture_output=True, text=True, timeout=timeout, check=True
        )
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return run.stdout, callgrindInstructions(run.stderr) if callgrind else None
