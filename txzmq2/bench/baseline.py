"""
The plain pyzmq baseline: the same work as :mod:`txzmq2.bench.cases`, written as a blocking
pyzmq program would be, with the far side in a second thread (``inprocess``) or a second
process (``subprocess``).

Sequential requests use REQ/REP; pipelined ones DEALER/ROUTER with the same envelope
txzmq2 sends (``[id, b"", payload]``). The RPC cases send the same calls as
``txzmq2.rpc`` does (its wire format, msgpack) and decode, dispatch and encode them as a
plain pyzmq RPC server would. Every blocking call has a receive or send timeout, so
every loop ends within the case's time bound.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from time import perf_counter
from typing import Any

import msgpack
import zmq

from txzmq2.bench.common import (
    CONNECT_TIMEOUT,
    IDLE_END,
    Measurement,
    PeerProcess,
    Spec,
    handshake,
    summarise,
)

__all__ = ["measure", "runServerSide"]

# The RPC cases speak txzmq2's RPC wire format (docs/rpc.md), msgpack bodies.
RPC_CALL = b"txzmq2-rpc/1 call msgpack"
RPC_REPLY = b"txzmq2-rpc/1 reply msgpack"
_SERVICE: dict[str, Callable[..., Any]] = {"echo": lambda data: data}

POLL_MS = 100
WARM_UP = 20
PROBE = b"probe"
DATA = b"data"


def runServerSide(
    context: zmq.Context[Any],
    spec: Spec,
    ready: Callable[[str], None],
    go: threading.Event,
    stop: threading.Event,
) -> None:
    """
    The far side of ``spec``'s case, until ``stop`` is set: an echo server (REP, or ROUTER
    for pipelined requests), or a PUSH or PUB socket that sends ``spec.count`` messages once
    ``go`` is set (a PUB publishes a probe every millisecond until then).

    :param ready: called with the bound endpoint once the socket is bound.
    """
    kind = spec.kind
    socketType = {
        "sequential": zmq.REP,
        "pipelined": zmq.ROUTER,
        "push_pull": zmq.PUSH,
        "pub_sub": zmq.PUB,
    }[kind]
    socket = context.socket(socketType)
    socket.linger = 100
    socket.rcvtimeo = socket.sndtimeo = POLL_MS
    try:
        socket.bind(spec.bindAddress())
        ready(socket.get_string(zmq.LAST_ENDPOINT))
        if kind in ("sequential", "pipelined"):
            answer = _answerCall if spec.rpc else _echo
            while not stop.is_set():
                try:
                    socket.send_multipart(answer(socket.recv_multipart()))
                except zmq.Again:
                    continue
            return
        while not go.wait(0.001):
            if stop.is_set():
                return
            if kind == "pub_sub":
                socket.send_multipart([PROBE, b""])
        payload = b"x" * spec.size
        sent = 0
        while sent < spec.count and not stop.is_set():
            try:
                if kind == "pub_sub":
                    socket.send_multipart([DATA, payload])
                else:
                    socket.send(payload)
            except zmq.Again:
                continue
            sent += 1
        stop.wait()
    finally:
        socket.close()


def _echo(frames: list[bytes]) -> list[bytes]:
    return frames


def _answerCall(frames: list[bytes]) -> list[bytes]:
    """An RPC call as a blocking pyzmq server would answer it: decode, dispatch, encode."""
    envelope, header, payload = frames[:-2], frames[-2], frames[-1]
    if header != RPC_CALL:
        raise ValueError(f"not an RPC call: {header!r}")
    method, args, kwargs = msgpack.unpackb(payload)
    return [*envelope, RPC_REPLY, msgpack.packb(_SERVICE[method](*args, **kwargs))]


def _callFrames(payload: bytes) -> list[bytes]:
    return [RPC_CALL, msgpack.packb(["echo", [payload], {}])]


def _plainFrames(payload: bytes) -> list[bytes]:
    return [payload]


def _callResult(frames: list[bytes]) -> Any:
    if frames[0] != RPC_REPLY:
        raise ValueError(f"not an RPC reply: {frames[0]!r}")
    return msgpack.unpackb(frames[1])


def _requests(socket: zmq.Socket[bytes], spec: Spec) -> tuple[int, list[float], bool]:
    payload = b"x" * spec.size
    latencies: list[float] = []
    deadline = perf_counter() + spec.timeout
    frames = _callFrames if spec.rpc else _plainFrames
    if spec.kind == "sequential":
        if spec.rpc:

            def exchange(payload: bytes) -> None:
                socket.send_multipart(_callFrames(payload))
                _callResult(socket.recv_multipart())

        else:

            def exchange(payload: bytes) -> None:
                socket.send(payload)
                socket.recv()

        for _ in range(WARM_UP):
            exchange(b"warm-up")
        for _ in range(spec.count):
            started = perf_counter()
            try:
                exchange(payload)
            except zmq.Again:
                return len(latencies), latencies, True
            latencies.append(perf_counter() - started)
            if started > deadline:
                return len(latencies), latencies, True
        return len(latencies), latencies, False

    sentAt: dict[bytes, float] = {}
    issued = 0

    def issue() -> None:
        nonlocal issued
        issued += 1
        requestId = issued.to_bytes(8, "big")
        sentAt[requestId] = perf_counter()
        socket.send_multipart([requestId, b"", *frames(payload)])

    for _ in range(WARM_UP):
        socket.send_multipart([b"warm-up", b"", *frames(b"warm-up")])
        socket.recv_multipart()
    for _ in range(min(spec.inflight, spec.count)):
        issue()
    while len(latencies) < spec.count:
        try:
            reply = socket.recv_multipart()
        except zmq.Again:
            return len(latencies), latencies, True
        if spec.rpc:
            _callResult(reply[2:])
        latencies.append(perf_counter() - sentAt.pop(reply[0]))
        if issued < spec.count:
            issue()
        if perf_counter() > deadline:
            return len(latencies), latencies, True
    return len(latencies), latencies, False


def _receive(
    socket: zmq.Socket[bytes], spec: Spec, go: Callable[[], None]
) -> tuple[int, float, bool]:
    """Count messages (PULL) or ``data`` publications (SUB) until all, idle, or deadline."""
    received = 0
    last = 0.0
    socket.rcvtimeo = int(IDLE_END * 1000)
    started = perf_counter()
    deadline = started + spec.timeout
    go()
    while received < spec.count:
        try:
            frames = socket.recv_multipart()
        except zmq.Again:
            # Idle: a PUB dropped the rest; for PUSH/PULL, something is wrong.
            return received, (last or perf_counter()) - started, spec.kind != "pub_sub"
        if spec.kind == "pub_sub" and frames[0] != DATA:
            continue
        received += 1
        last = perf_counter()
        if last > deadline:
            return received, last - started, True
    return received, last - started, False


def measure(spec: Spec) -> Measurement:
    """Run one pyzmq measurement: far side in a thread or a peer process, this thread measures."""
    context: zmq.Context[Any] = zmq.Context()
    go, stop = threading.Event(), threading.Event()
    peer: PeerProcess | None = None
    thread: threading.Thread | None = None
    try:
        if spec.mode == "subprocess":
            peer = PeerProcess(spec)
            address = peer.endpoint
            start = peer.go
        else:
            endpoints: queue.Queue[str] = queue.Queue()
            thread = threading.Thread(
                target=runServerSide,
                args=(context, spec, endpoints.put, go, stop),
                name="pyzmq-peer",
                daemon=True,
            )
            thread.start()
            address = endpoints.get(timeout=CONNECT_TIMEOUT)
            start = go.set
        latencies: list[float] | None = None
        if spec.kind in ("sequential", "pipelined"):
            socket = context.socket(zmq.REQ if spec.kind == "sequential" else zmq.DEALER)
            socket.rcvtimeo = int(spec.timeout * 1000)
            handshake(socket, lambda: socket.connect(address))
            started = perf_counter()
            completed, latencies, timedOut = _requests(socket, spec)
            elapsed = perf_counter() - started
        else:
            socket = context.socket(zmq.PULL if spec.kind == "push_pull" else zmq.SUB)
            if spec.kind == "pub_sub":
                socket.subscribe(DATA)
                socket.subscribe(PROBE)
                socket.connect(address)
                # The pyzmq handshake: the publisher sends probes until we see one.
                socket.rcvtimeo = int(CONNECT_TIMEOUT * 1000)
                while socket.recv_multipart()[0] != PROBE:
                    pass
            else:
                handshake(socket, lambda: socket.connect(address))
            completed, elapsed, timedOut = _receive(socket, spec, start)
        socket.close(linger=0)
        report = peer.stop() if peer is not None else None
        return summarise(spec, completed, elapsed, latencies, timedOut=timedOut, peer=report)
    finally:
        stop.set()
        if thread is not None:
            thread.join(5)
        if peer is not None:
            peer.kill()
        context.destroy(linger=0)
