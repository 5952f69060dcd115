"""
The blocking pyzmq baselines: the same work as :mod:`txzmq2.bench.cases`, written as a
blocking pyzmq program would be, with the far side in a second thread (``inprocess``) or a
second process (``subprocess``). Every blocking call has a receive or send timeout, so every
loop ends within the case's time bound.

Two programs, one per implementation name:

- ``pyzmq``, the plain baseline every ratio is relative to: the simplest program for each
  task. REQ/REP with one frame for sequential requests, DEALER/ROUTER with one frame (replies
  come back in order, so latencies are matched first in, first out) for pipelined ones; PUSH
  and PUB send one frame and the receivers ``recv()`` it; the throughput loops read the
  clock once per :data:`~txzmq2.bench.common.CLOCK_EVERY` messages; latency is timed in the
  request cases only.
- ``pyzmq_frames``: the same loops putting txzmq2's frames on the wire: requests are
  ``[id, b"", payload]`` from a DEALER to a ROUTER, matched by id (what txzmq2's
  ``ZmqREQConnection`` sends); one-way cases are the same as ``pyzmq`` (txzmq2's
  PUSH and one-frame publish send one frame too).

The RPC cases send the same calls as ``txzmq2.rpc`` does (its wire format, msgpack) and
decode, dispatch and encode them as a plain pyzmq RPC server would.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from time import perf_counter
from typing import Any

import msgpack
import zmq

from txzmq2.bench.common import (
    CLOCK_EVERY,
    CONNECT_TIMEOUT,
    IDLE_END,
    Measurement,
    PeerProcess,
    Spec,
    handshake,
    summarise,
)

__all__ = ["DATA", "PROBE", "measure", "runServerSide"]

# The RPC cases speak txzmq2's RPC wire format (docs/rpc.md), msgpack bodies.
RPC_CALL = b"txzmq2-rpc/1 call msgpack"
RPC_REPLY = b"txzmq2-rpc/1 reply msgpack"
_SERVICE: dict[str, Callable[..., Any]] = {"echo": lambda data: data}

POLL_MS = 100
WARM_UP = 20
# One-frame publications, topic and body split by a NUL: what txzmq2's one-frame publish
# (``singleFrame``) and txZMQ put on the wire.
PROBE = b"probe\0"
DATA = b"data\0"
_CLOCK_MASK = CLOCK_EVERY - 1


def _framed(spec: Spec) -> bool:
    """Whether ``spec`` puts txzmq2's request frames on the wire (``pyzmq_frames``)."""
    return spec.impl == "pyzmq_frames"


def runServerSide(
    context: zmq.Context[Any],
    spec: Spec,
    ready: Callable[[str], None],
    go: threading.Event,
    stop: threading.Event,
) -> None:
    """
    The far side of ``spec``'s case, until ``stop`` is set: an echo server (REP for plain
    sequential requests, else ROUTER), or a PUSH or PUB socket that sends ``spec.count``
    messages once ``go`` is set (a PUB publishes a probe every millisecond until then).

    :param ready: called with the bound endpoint once the socket is bound.
    """
    kind = spec.kind
    plainRep = kind == "sequential" and not _framed(spec)
    socketType = {
        "sequential": zmq.REP if plainRep else zmq.ROUTER,
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
            _serveRequests(socket, spec, plainRep, stop)
            return
        while not go.wait(0.001):
            if stop.is_set():
                return
            if kind == "pub_sub":
                socket.send(PROBE)
        payload = (DATA if kind == "pub_sub" else b"") + b"x" * spec.size
        send = socket.send
        sent = 0
        while sent < spec.count and not stop.is_set():
            try:
                send(payload)
            except zmq.Again:
                continue
            sent += 1
        stop.wait()
    finally:
        socket.close()


def _serveRequests(
    socket: zmq.Socket[bytes], spec: Spec, plainRep: bool, stop: threading.Event
) -> None:
    """Answer requests until ``stop``: echo them, or answer RPC calls."""
    if plainRep and not spec.rpc:
        recv, send = socket.recv, socket.send
        while not stop.is_set():
            try:
                send(recv())
            except zmq.Again:
                continue
        return
    answer = _answerCall if spec.rpc else _echo
    while not stop.is_set():
        try:
            socket.send_multipart(answer(socket.recv_multipart()))
        except zmq.Again:
            continue


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


def _exchanger(socket: zmq.Socket[bytes], spec: Spec) -> Callable[[bytes], None]:
    """One sequential request and its reply, as ``spec``'s program makes it."""
    if _framed(spec):
        frames = _callFrames if spec.rpc else _plainFrames
        requestId = 0

        def exchangeFramed(payload: bytes) -> None:
            nonlocal requestId
            requestId += 1
            key = requestId.to_bytes(8, "big")
            socket.send_multipart([key, b"", *frames(payload)])
            reply = socket.recv_multipart()
            if reply[0] != key:
                raise ValueError(f"reply to {reply[0]!r}, expected {key!r}")
            if spec.rpc:
                _callResult(reply[2:])

        return exchangeFramed
    if spec.rpc:

        def call(payload: bytes) -> None:
            socket.send_multipart(_callFrames(payload))
            _callResult(socket.recv_multipart())

        return call
    send, recv = socket.send, socket.recv

    def exchange(payload: bytes) -> None:
        send(payload)
        recv()

    return exchange


def _sequential(socket: zmq.Socket[bytes], spec: Spec) -> tuple[int, list[float], bool]:
    payload = b"x" * spec.size
    latencies: list[float] = []
    deadline = perf_counter() + spec.timeout
    exchange = _exchanger(socket, spec)
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


def _pipelined(socket: zmq.Socket[bytes], spec: Spec) -> tuple[int, list[float], bool]:
    """
    ``spec.inflight`` requests outstanding. Plain: one frame each, the replies come back in
    the order sent (one DEALER, one ROUTER), so a queue of send times matches them; framed:
    txzmq2's ``[id, b"", payload]``, matched by id.
    """
    payload = b"x" * spec.size
    latencies: list[float] = []
    deadline = perf_counter() + spec.timeout
    framed = _framed(spec)
    body = (_callFrames if spec.rpc else _plainFrames)(payload)
    sentAt: dict[bytes, float] = {}
    inOrder: deque[float] = deque()
    issued = 0

    def issue() -> None:
        nonlocal issued
        issued += 1
        if framed:
            requestId = issued.to_bytes(8, "big")
            sentAt[requestId] = perf_counter()
            socket.send_multipart([requestId, b"", *body])
        else:
            inOrder.append(perf_counter())
            socket.send_multipart(body)

    warmUp = [b"warm-up", b""] if framed else []
    for _ in range(WARM_UP):
        socket.send_multipart([*warmUp, *(_callFrames if spec.rpc else _plainFrames)(b"x")])
        socket.recv_multipart()
    for _ in range(min(spec.inflight, spec.count)):
        issue()
    while len(latencies) < spec.count:
        try:
            reply = socket.recv_multipart()
        except zmq.Again:
            return len(latencies), latencies, True
        now = perf_counter()
        if framed:
            if spec.rpc:
                _callResult(reply[2:])
            latencies.append(now - sentAt.pop(reply[0]))
        else:
            if spec.rpc:
                _callResult(reply)
            latencies.append(now - inOrder.popleft())
        if issued < spec.count:
            issue()
        if now > deadline:
            return len(latencies), latencies, True
    return len(latencies), latencies, False


def _receive(
    socket: zmq.Socket[bytes], spec: Spec, go: Callable[[], None]
) -> tuple[int, float, bool]:
    """
    Count messages (PULL) or ``data`` publications (SUB) until all, idle, or deadline; the
    clock is read every :data:`~txzmq2.bench.common.CLOCK_EVERY` messages and at the end.
    """
    received = 0
    socket.rcvtimeo = int(IDLE_END * 1000)
    recv = socket.recv
    pubSub = spec.kind == "pub_sub"
    count = spec.count
    started = last = perf_counter()
    deadline = started + spec.timeout
    go()
    try:
        while received < count:
            frame = recv()
            if pubSub and not frame.startswith(DATA):
                continue
            received += 1
            if not received & _CLOCK_MASK:
                last = perf_counter()
                if last > deadline:
                    return received, last - started, True
    except zmq.Again:
        # Idle: a PUB dropped the rest; for PUSH/PULL, something is wrong.
        return received, last - started, not pubSub
    return received, perf_counter() - started, False


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
            plainReq = spec.kind == "sequential" and not _framed(spec)
            socket = context.socket(zmq.REQ if plainReq else zmq.DEALER)
            socket.rcvtimeo = int(spec.timeout * 1000)
            handshake(socket, lambda: socket.connect(address))
            requests = _sequential if spec.kind == "sequential" else _pipelined
            started = perf_counter()
            completed, latencies, timedOut = requests(socket, spec)
            elapsed = perf_counter() - started
        else:
            socket = context.socket(zmq.PULL if spec.kind == "push_pull" else zmq.SUB)
            if spec.kind == "pub_sub":
                socket.subscribe(DATA)
                socket.subscribe(PROBE)
                socket.connect(address)
                # The pyzmq handshake: the publisher sends probes until we see one.
                socket.rcvtimeo = int(CONNECT_TIMEOUT * 1000)
                while not socket.recv().startswith(PROBE):
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
